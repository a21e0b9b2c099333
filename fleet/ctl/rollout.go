package ctl

import (
	"fmt"
	"time"

	"github.com/tinycontainer/tinycontainer/fleet/doc"
	"github.com/tinycontainer/tinycontainer/internal/lazyre"
	"github.com/tinycontainer/tinycontainer/meta"
)

// Rollout states, named after AWS IoT Jobs where they fit.
const (
	RolloutInProgress = "IN_PROGRESS"
	RolloutAborting   = "ABORTING" // returning touched devices to their previous version
	RolloutCompleted  = "COMPLETED"
	RolloutAborted    = "ABORTED"
)

// Job states: one per device of a rollout.
const (
	JobQueued         = "QUEUED"      // in a wave not started yet
	JobInProgress     = "IN_PROGRESS" // the new version is desired; not yet healthy
	JobSucceeded      = "SUCCEEDED"   // the new version ran healthy for the health window
	JobFailed         = "FAILED"      // the new version faulted, crash-looped or did not install
	JobRejected       = "REJECTED"    // the device refused the desired state (reason given)
	JobTimedOut       = "TIMED_OUT"   // online, but neither healthy nor failed in time
	JobPending        = "PENDING"     // offline when its wave closed: it catches up later
	JobCanceled       = "CANCELED"    // its wave never started (the rollout was aborted)
	JobRollingBack    = "ROLLING_BACK"
	JobRolledBack     = "ROLLED_BACK"     // back on the version it ran before
	JobRollbackFailed = "ROLLBACK_FAILED" // refused or failed the return (reason given)
)

// failedJob: the job counts against --max-failures.
func failedJob(s string) bool { return s == JobFailed || s == JobRejected || s == JobTimedOut }

// Params are a rollout's settings, as given to `fleet rollout`.
type Params struct {
	Canary      Percent       `json:"canary"`       // hundredths of a percent
	Wave        Percent       `json:"wave"`         // hundredths of a percent
	MaxFailures Percent       `json:"max_failures"` // hundredths of a percent
	Health      time.Duration `json:"health_ns"`    // healthy this long counts as updated
	Timeout     time.Duration `json:"timeout_ns"`   // an online device not healthy or failed by then: TIMED_OUT
	Lease       time.Duration `json:"lease_ns"`     // how long a driver's lease lasts unrenewed
}

// DefaultParams are the defaults of `fleet rollout`.
func DefaultParams() Params {
	return Params{Canary: 500, Wave: 2500, MaxFailures: 0, Health: 30 * time.Second,
		Timeout: 5 * time.Minute, Lease: 15 * time.Second}
}

// Validate checks the parameters.
func (p Params) Validate() error {
	switch {
	case p.Canary > 10000 || p.Wave > 10000 || p.MaxFailures > 10000:
		return fmt.Errorf("%w: percentages go from 0 to 100", ErrInput)
	case p.Wave == 0:
		return fmt.Errorf("%w: --wave must be more than 0%%", ErrInput)
	case p.Health < 0 || p.Health > 24*time.Hour:
		return fmt.Errorf("%w: --health must be from 0 to 24h", ErrInput)
	case p.Timeout <= 0 || p.Timeout > 7*24*time.Hour:
		return fmt.Errorf("%w: --timeout must be more than 0 and at most 168h", ErrInput)
	case p.Lease < time.Second || p.Lease > time.Hour:
		return fmt.Errorf("%w: --lease must be from 1s to 1h", ErrInput)
	}
	return nil
}

// Wave is one wave of a rollout (wave 0 is the canary).
type Wave struct {
	Size    int       `json:"size"`
	Started time.Time `json:"started,omitzero"`
	Ended   time.Time `json:"ended,omitzero"`
}

// Job is one device's part in a rollout.
type Job struct {
	Device    string    `json:"device"`
	Wave      int       `json:"wave"`
	State     string    `json:"state"`
	From      uint64    `json:"from_version"`         // the version it ran before; 0: none
	FromImage string    `json:"from_image,omitempty"` // that version's image digest, when known
	FromSize  int       `json:"from_size,omitempty"`  // that image's size in bytes, when known
	Seq       uint64    `json:"seq,omitempty"`        // sequence of the desired state sent for the new version
	RevertSeq uint64    `json:"revert_seq,omitempty"` // sequence of the desired state returning it
	Since     time.Time `json:"since,omitzero"`       // when it entered its state
	Reason    string    `json:"reason,omitempty"`
}

// Lease says which controller drives a rollout and until when. Term grows
// by one at every takeover, so a controller that sees a higher term, or
// its own term held by another, knows it lost the rollout.
type Lease struct {
	Holder string        `json:"holder"`
	Term   uint64        `json:"term"`
	Until  time.Time     `json:"until"`  // by the holder's clock: for people, never compared with another clock
	TTL    time.Duration `json:"ttl_ns"` // how long the lease lasts unrenewed, counted by whoever watches it
}

// Rollout is a rollout and its progress: the content of its retained
// message (tc/v1/rollout/{tenant}/{id}).
type Rollout struct {
	Format    int       `json:"format"`
	ID        string    `json:"id"`
	Tenant    string    `json:"tenant"`
	Container string    `json:"container"`
	Version   uint64    `json:"version"`
	Image     string    `json:"image"` // digest: the image is at tc/v1/img/{tenant}/{image}
	ImageSize int       `json:"image_size"`
	Selector  string    `json:"selector,omitempty"`
	Params    Params    `json:"params"`
	State     string    `json:"state"`
	Reason    string    `json:"reason,omitempty"`
	Wave      int       `json:"wave"` // the current wave
	Waves     []Wave    `json:"waves"`
	Jobs      []Job     `json:"jobs"`
	Lease     Lease     `json:"lease"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
}

const rolloutFormat = 1

var (
	deviceRE = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	digestRE = lazyre.New(`^[0-9a-f]{64}$`)
)

func (r *Rollout) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: rollout document: "+format, append([]any{ErrInput}, a...)...)
	}
	if r.Format != rolloutFormat {
		return bad("format %d, want %d", r.Format, rolloutFormat)
	}
	if doc.ValidID(r.ID) != nil {
		return bad("bad id %q", r.ID)
	}
	if doc.ValidTenant(r.Tenant) != nil || meta.ValidName(r.Container) != nil {
		return bad("bad tenant %q or container %q", r.Tenant, r.Container)
	}
	if !digestRE().MatchString(r.Image) || r.Version == 0 || r.ImageSize <= 0 || r.ImageSize > doc.MaxImageSize {
		return bad("bad image %q (version %d, %d bytes)", r.Image, r.Version, r.ImageSize)
	}
	if err := r.Params.Validate(); err != nil {
		return bad("%v", err)
	}
	switch r.State {
	case RolloutInProgress, RolloutAborting, RolloutCompleted, RolloutAborted:
	default:
		return bad("unknown state %q", r.State)
	}
	if len(r.Waves) == 0 || r.Wave < 0 || r.Wave >= len(r.Waves) {
		return bad("wave %d of %d", r.Wave, len(r.Waves))
	}
	total := 0
	for _, w := range r.Waves {
		if w.Size <= 0 {
			return bad("empty wave")
		}
		total += w.Size
	}
	if total != len(r.Jobs) {
		return bad("waves hold %d devices, jobs list %d", total, len(r.Jobs))
	}
	seen := make(map[string]bool, len(r.Jobs))
	count := make([]int, len(r.Waves))
	for _, j := range r.Jobs {
		if !deviceRE().MatchString(j.Device) || seen[j.Device] {
			return bad("bad or repeated device %q", j.Device)
		}
		seen[j.Device] = true
		if j.Wave < 0 || j.Wave >= len(r.Waves) {
			return bad("device %s in wave %d of %d", j.Device, j.Wave, len(r.Waves))
		}
		count[j.Wave]++
		switch j.State {
		case JobQueued, JobInProgress, JobSucceeded, JobFailed, JobRejected, JobTimedOut, JobPending,
			JobCanceled, JobRollingBack, JobRolledBack, JobRollbackFailed:
		default:
			return bad("device %s: unknown state %q", j.Device, j.State)
		}
		if j.FromImage != "" && !digestRE().MatchString(j.FromImage) {
			return bad("device %s: bad image digest", j.Device)
		}
	}
	for i, w := range r.Waves {
		if count[i] != w.Size {
			return bad("wave %d has %d devices, says %d", i, count[i], w.Size)
		}
	}
	return nil
}

// Done reports whether the rollout has ended.
func (r *Rollout) Done() bool { return r.State == RolloutCompleted || r.State == RolloutAborted }

// Counts are a rollout's jobs by state.
func (r *Rollout) Counts() map[string]int {
	c := make(map[string]int)
	for _, j := range r.Jobs {
		c[j.State]++
	}
	return c
}

// job returns the job of a device (nil when it has none).
func (r *Rollout) job(id string) *Job {
	for i := range r.Jobs {
		if r.Jobs[i].Device == id {
			return &r.Jobs[i]
		}
	}
	return nil
}
