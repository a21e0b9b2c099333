package doc

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/trust"
)

// A rollout lives on tc/v1/rollout/{tenant}/{id} as one retained
// RolloutMessage with two signed parts:
//   - the Rollout: what the tenant asked for (image, devices in order,
//     waves, health window, abort threshold). Signed once by the tenant's
//     key when the rollout starts and never changed.
//   - the Progress: where it stands (state, current wave, each device's
//     progress and the version it ran before, the lease of the controller
//     driving it). Re-signed with the tenant's key at every change, with a
//     rising Seq, so that nobody without that key (a broker user, another
//     tenant) can forge an abort, a completion or a lease.
// Devices never read rollouts: a return to a previous version reaches a
// device as a tenant-signed desired state (DesiredContainer.Revert), which
// the device checks against its own record of what it ran before.

// Rollout is the signed, immutable part of a rollout.
type Rollout struct {
	V           int       `json:"v"`
	Tenant      string    `json:"tenant"`
	ID          string    `json:"id"`
	Seq         uint64    `json:"seq"`
	Devices     []string  `json:"devices"` // the devices it targets, in wave order
	Container   string    `json:"container"`
	To          Ref       `json:"to"`
	Size        int       `json:"size"` // bytes of the image at To.Digest
	Health      Duration  `json:"health"`
	Canary      float64   `json:"canary"`       // percent of Devices in the canary wave
	Wave        float64   `json:"wave"`         // percent of Devices in each later wave
	MaxFailures float64   `json:"max_failures"` // percent of attempted devices that aborts it
	Created     time.Time `json:"created"`
	// Timeout: a device online but neither healthy nor failed this long
	// after its wave started counts as failed (0: the controller's default).
	Timeout Duration `json:"timeout,omitempty"`
	// Selector is the label selector the devices were chosen by ("" for --all).
	Selector string `json:"selector,omitempty"`
}

func (r *Rollout) check() error {
	if err := checkVersion("rollout", r.V); err != nil {
		return err
	}
	if err := ValidTenant(r.Tenant); err != nil {
		return err
	}
	if err := ValidID(r.ID); err != nil {
		return fmt.Errorf("rollout: %w", err)
	}
	if r.Seq == 0 {
		return malformed("rollout: seq must be positive")
	}
	if err := checkDevices("rollout", r.Devices); err != nil {
		return err
	}
	if err := meta.ValidName(r.Container); err != nil {
		return malformed("rollout: container: %v", err)
	}
	if r.To.Version == 0 {
		return malformed("rollout: version must be positive")
	}
	if err := ValidDigest(r.To.Digest); err != nil {
		return fmt.Errorf("rollout: %w", err)
	}
	if r.Size <= 0 || r.Size > MaxImageSize {
		return malformed("rollout: size %d outside 1..%d", r.Size, MaxImageSize)
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"canary", r.Canary}, {"wave", r.Wave}, {"max_failures", r.MaxFailures}} {
		if !(p.v >= 0 && p.v <= 100) {
			return malformed("rollout: %s %v%% outside 0..100", p.name, p.v)
		}
	}
	if r.Wave == 0 {
		return malformed("rollout: wave must be above 0%%")
	}
	return nil
}

// SignRollout signs r with the tenant's key.
func SignRollout(r Rollout, tenant ed25519.PrivateKey) ([]byte, error) {
	r.V = Version
	if err := r.check(); err != nil {
		return nil, err
	}
	return sealed(trust.DocRollout, r, tenant)
}

// OpenRollout decodes a rollout and verifies it was signed by tenant.
func OpenRollout(b []byte, tenant ed25519.PublicKey) (*Rollout, error) {
	var r Rollout
	if _, err := unseal(trust.DocRollout, b, tenant, &r); err != nil {
		return nil, err
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Rollout states.
const (
	RolloutRunning  = "running"
	RolloutComplete = "complete"
	RolloutAborting = "aborting" // past max failures: returning its devices
	RolloutAborted  = "aborted"
)

// Device progress states within a rollout.
const (
	DevicePending   = "pending"   // not yet asked, or asked and not yet caught up (offline)
	DeviceUpdating  = "updating"  // desired state published, the new version not yet healthy
	DeviceHealthy   = "healthy"   // the new version ran its health window without a fault
	DeviceFailed    = "failed"    // the new version faulted or could not be installed
	DeviceReverting = "reverting" // asked to return to From
	DeviceReverted  = "reverted"  // back on From
)

// Lease says which controller drives a rollout. Expires is by the
// holder's clock, for people; another controller takes over (`fleet
// resume`) only once it has seen no renewal (a new Expires) for Duration,
// counted on its own clock: controllers' clocks need not agree.
type Lease struct {
	Holder  string    `json:"holder"`
	Expires time.Time `json:"expires"`
	// Duration: how long the lease lasts unrenewed (absent in rollouts of
	// controllers before it was carried: the default lease, 15s).
	Duration Duration `json:"duration,omitempty"`
	// Term rises by one at every takeover: a controller that sees a
	// higher term, or its own held by another, has lost the rollout.
	Term uint64 `json:"term,omitempty"`
}

// DeviceProgress is one device's place in a rollout.
type DeviceProgress struct {
	ID    string `json:"id"`
	Wave  int    `json:"wave"` // 0 is the canary
	State string `json:"state"`
	From  *Ref   `json:"from,omitempty"` // what it ran before (nil: the container was not installed)
	Error string `json:"error,omitempty"`
	// The controller's detail, in the words of AWS IoT Jobs (QUEUED,
	// IN_PROGRESS, SUCCEEDED, FAILED, REJECTED, TIMED_OUT, PENDING,
	// CANCELED, ROLLING_BACK, ROLLED_BACK, ROLLBACK_FAILED); see
	// docs/fleet.md.
	Job string `json:"job,omitempty"`
	// Seq and RevertSeq: the sequence numbers of the desired states that
	// carried the new version and the return to From to the device.
	Seq       uint64 `json:"seq,omitempty"`
	RevertSeq uint64 `json:"revert_seq,omitempty"`
	// FromSize is the size of From's image (a return needs it).
	FromSize int `json:"from_size,omitempty"`
}

// Progress is the signed, changing part of a rollout.
type Progress struct {
	V       int              `json:"v"`
	Tenant  string           `json:"tenant"`
	ID      string           `json:"id"`
	Seq     uint64           `json:"seq"`
	State   string           `json:"state"`
	Wave    int              `json:"wave"` // the wave being driven (0 is the canary)
	Waves   int              `json:"waves"`
	Lease   Lease            `json:"lease"`
	Devices []DeviceProgress `json:"devices"`
	Reason  string           `json:"reason,omitempty"` // why it aborted
	Updated time.Time        `json:"updated"`
}

func (p *Progress) check() error {
	if err := checkVersion("progress", p.V); err != nil {
		return err
	}
	if err := ValidTenant(p.Tenant); err != nil {
		return err
	}
	if err := ValidID(p.ID); err != nil {
		return fmt.Errorf("progress: %w", err)
	}
	if p.Seq == 0 {
		return malformed("progress: seq must be positive")
	}
	switch p.State {
	case RolloutRunning, RolloutComplete, RolloutAborting, RolloutAborted:
	default:
		return malformed("progress: state %q", p.State)
	}
	if len(p.Devices) > MaxDevices {
		return malformed("progress: %d devices, at most %d", len(p.Devices), MaxDevices)
	}
	for _, d := range p.Devices {
		if err := ValidID(d.ID); err != nil {
			return fmt.Errorf("progress: %w", err)
		}
		switch d.State {
		case DevicePending, DeviceUpdating, DeviceHealthy, DeviceFailed, DeviceReverting, DeviceReverted:
		default:
			return malformed("progress: device %s: state %q", d.ID, d.State)
		}
	}
	return nil
}

// SignProgress signs p with the tenant's key.
func SignProgress(p Progress, tenant ed25519.PrivateKey) ([]byte, error) {
	p.V = Version
	if err := p.check(); err != nil {
		return nil, err
	}
	return sealed(trust.DocProgress, p, tenant)
}

// OpenProgress decodes a rollout's progress and verifies it was signed by
// tenant.
func OpenProgress(b []byte, tenant ed25519.PublicKey) (*Progress, error) {
	var p Progress
	if _, err := unseal(trust.DocProgress, b, tenant, &p); err != nil {
		return nil, err
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	return &p, nil
}

// RolloutMessage is the retained payload of a rollout topic: the signed
// rollout and its signed progress, each a COSE_Sign1 document (base64 in
// the JSON).
type RolloutMessage struct {
	V        int    `json:"v"`
	Rollout  []byte `json:"rollout"`
	Progress []byte `json:"progress"`
}

// Encode writes m as JSON.
func (m RolloutMessage) Encode() ([]byte, error) {
	m.V = Version
	return json.Marshal(m)
}

// DecodeRolloutMessage splits a rollout topic's payload into its two
// signed parts (not yet verified: OpenRollout and OpenProgress do that).
func DecodeRolloutMessage(b []byte) (RolloutMessage, error) {
	var m RolloutMessage
	if len(b) == 0 {
		return m, malformed("rollout message: empty")
	}
	if len(b) > 2*MaxDocSize+MaxDocSize/2 {
		return m, malformed("rollout message: %d bytes, too large", len(b))
	}
	if err := decodeStrict("rollout message", b, &m); err != nil {
		return RolloutMessage{}, err
	}
	if err := checkVersion("rollout message", m.V); err != nil {
		return RolloutMessage{}, err
	}
	if len(m.Rollout) == 0 || len(m.Progress) == 0 {
		return RolloutMessage{}, malformed("rollout message: needs both the rollout and its progress")
	}
	return m, nil
}
