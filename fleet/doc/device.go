package doc

import (
	"encoding/json"
	"time"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// Status is what a device says about itself on its status topic
// (retained; also its will, with Online false). Session is a number the
// device raises at every connection (like Sparkplug's birth/death
// sequence): an offline status whose Session is below the last online one
// seen is a late will of an older connection.
type Status struct {
	V       int               `json:"v"`
	ID      string            `json:"id"`
	Online  bool              `json:"online"`
	Labels  map[string]string `json:"labels"`
	Version string            `json:"version"` // the device's software version
	Session uint64            `json:"session"`
	Time    time.Time         `json:"time"` // when the device wrote it (its clock)
	// Heartbeat: how often the device publishes its reported state when
	// nothing changed, so a controller can tell a device that stopped
	// reporting (absent from devices before it was sent: DefaultHeartbeat).
	Heartbeat Duration `json:"heartbeat,omitempty"`
}

// DefaultHeartbeat is how often a device republishes its reported state
// unless told otherwise.
const DefaultHeartbeat = time.Minute

// Encode writes s as JSON.
func (s Status) Encode() ([]byte, error) {
	s.V = Version
	return json.Marshal(s)
}

// DecodeStatus reads a status message (unsigned; the broker's ACL is what
// keeps a device from writing another's).
func DecodeStatus(b []byte) (Status, error) {
	var s Status
	if len(b) == 0 {
		return s, malformed("status: empty message")
	}
	if len(b) > MaxStatusSize {
		return s, malformed("status: %d bytes, more than %d", len(b), MaxStatusSize)
	}
	if err := decodeLoose("status", b, &s); err != nil {
		return Status{}, err
	}
	if err := checkVersion("status", s.V); err != nil {
		return Status{}, err
	}
	if err := ValidID(s.ID); err != nil {
		return Status{}, err
	}
	if err := ValidLabels(s.Labels); err != nil {
		return Status{}, err
	}
	return s, nil
}

// Health of a container version on a fleet device.
const (
	HealthPending = "pending" // installed, not yet run --health without a fault
	HealthHealthy = "healthy" // ran its health window without a fault
	HealthFailed  = "failed"  // faulted, crash-looped or could not be installed
)

// Ref names one version of a container image.
type Ref struct {
	Version uint64 `json:"version"`
	Digest  string `json:"digest"`
}

// ContainerReport is one container on a device: the container object of
// `ps --json` plus what the fleet needs.
type ContainerReport struct {
	mgmt.ContainerStatus
	Digest   string `json:"digest,omitempty"`   // content address of the image in force ("" when not from the fleet)
	Health   string `json:"health,omitempty"`   // pending | healthy | failed (fleet-managed containers)
	Previous *Ref   `json:"previous,omitempty"` // the version it ran before the last update
	Rollout  string `json:"rollout,omitempty"`  // the rollout that asked for the version in force
	Error    string `json:"error,omitempty"`    // why the desired version is not in force, if it is not
}

// TenantReport is where a device stands with one tenant's documents.
type TenantReport struct {
	Tenant     string `json:"tenant"`
	GrantSeq   uint64 `json:"grant_seq"`   // last grant document accepted (0: none)
	DesiredSeq uint64 `json:"desired_seq"` // last desired state accepted (0: none)
	Revoked    bool   `json:"revoked,omitempty"`
	Error      string `json:"error,omitempty"` // why the last document was refused
	// RefusedSeq is the sequence of the last desired state refused (with
	// Error), so a controller can tell its own document was the one.
	RefusedSeq uint64 `json:"refused_seq,omitempty"`
}

// Refusal is a document or message the device refused, and why.
type Refusal struct {
	Time   time.Time `json:"time"`
	Topic  string    `json:"topic"`
	Reason string    `json:"reason"`
}

// MaxRefusals is how many recent refusals a reported state keeps.
const MaxRefusals = 16

// Reported is a device's reported state (retained): every container, its
// tenants' documents, and its recent refusals. Seq rises with every
// publication of one session.
type Reported struct {
	V          int               `json:"v"`
	ID         string            `json:"id"`
	Session    uint64            `json:"session"`
	Seq        uint64            `json:"seq"`
	Time       time.Time         `json:"time"`
	Containers []ContainerReport `json:"containers"`
	Tenants    []TenantReport    `json:"tenants"`
	Refusals   []Refusal         `json:"refusals,omitempty"`
	// Storage: the space where the device keeps its state and the kv
	// calls that failed, as `info --json` gives them.
	Storage *mgmt.StorageInfo `json:"storage,omitempty"`
}

// Encode writes r as JSON.
func (r Reported) Encode() ([]byte, error) {
	r.V = Version
	return json.Marshal(r)
}

// DecodeReported reads a reported state.
func DecodeReported(b []byte) (Reported, error) {
	var r Reported
	if len(b) == 0 {
		return r, malformed("reported: empty message")
	}
	if len(b) > MaxReportedSize {
		return r, malformed("reported: %d bytes, more than %d", len(b), MaxReportedSize)
	}
	if err := decodeLoose("reported", b, &r); err != nil {
		return Reported{}, err
	}
	if err := checkVersion("reported", r.V); err != nil {
		return Reported{}, err
	}
	if err := ValidID(r.ID); err != nil {
		return Reported{}, err
	}
	for _, c := range r.Containers {
		switch c.Health {
		case "", HealthPending, HealthHealthy, HealthFailed:
		default:
			return Reported{}, malformed("reported: container %q: health %q", c.Name, c.Health)
		}
	}
	return r, nil
}
