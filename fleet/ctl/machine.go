package ctl

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"time"
)

// Health of a container's current version, as a device reports it.
const (
	HealthPending = "pending"
	HealthHealthy = "healthy"
	HealthFailed  = "failed"
)

// Observation is what the controller last saw of one device, for the
// rollout's tenant and container.
type Observation struct {
	Online  bool
	Version uint64 // the container's version on the device; 0 when absent
	Image   string // its image digest, when reported
	Health  string // of that version: pending, healthy or failed
	Reason  string // why it failed
	// Error says why the desired version is not in force (it could not
	// be installed), when the device says so.
	Error string
	// Seq is the highest desired-state sequence of the tenant the device
	// accepted; RefusedSeq the last it refused, and Refused why.
	Seq        uint64
	RefusedSeq uint64
	Refused    string
}

// Observer gives the latest observation of a device; ok is false when the
// controller knows nothing of it.
type Observer func(device string) (obs Observation, ok bool)

// Target is a device chosen for a rollout, with what it runs now.
type Target struct {
	Device    string
	From      uint64 // 0: the container is not installed
	FromImage string
	FromSize  int
}

// NewRollout plans a rollout: targets spread over a canary wave and waves
// (PlanWaves), in an order fixed by the rollout id so that canaries differ
// between rollouts. Every job starts QUEUED; the first Step starts the
// canary.
func NewRollout(id, tenant, container string, version uint64, image string, imageSize int, selector string, p Params, targets []Target, now time.Time) (*Rollout, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("%w: no device matches", ErrInput)
	}
	order := slices.Clone(targets)
	key := func(t Target) string {
		h := sha256.Sum256([]byte(id + "\x00" + t.Device))
		return string(h[:8]) + t.Device
	}
	slices.SortFunc(order, func(a, b Target) int {
		ka, kb := key(a), key(b)
		switch {
		case ka < kb:
			return -1
		case ka > kb:
			return 1
		}
		return 0
	})
	r := &Rollout{Format: rolloutFormat, ID: id, Tenant: tenant, Container: container, Version: version,
		Image: image, ImageSize: imageSize, Selector: selector, Params: p, State: RolloutInProgress, Created: now, Updated: now}
	i := 0
	for w, size := range PlanWaves(len(order), p.Canary, p.Wave) {
		r.Waves = append(r.Waves, Wave{Size: size})
		for _, t := range order[i : i+size] {
			r.Jobs = append(r.Jobs, Job{Device: t.Device, Wave: w, State: JobQueued, From: t.From, FromImage: t.FromImage, FromSize: t.FromSize, Since: now})
		}
		i += size
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// Decision is what one Step asks the driver to do.
type Decision struct {
	Send    []string // publish the new version's desired state to these devices, then Sent
	Revert  []string // publish the previous version's desired state to these, then Reverted
	Changed bool     // the document changed: publish it
	Events  []Event
}

// Event is one line of a rollout's progress.
type Event struct {
	Time    time.Time      `json:"time"`
	Rollout string         `json:"rollout"`
	Kind    string         `json:"event"` // see the Ev constants
	Wave    int            `json:"wave"`
	Device  string         `json:"device,omitempty"`
	State   string         `json:"state,omitempty"`
	Reason  string         `json:"reason,omitempty"`
	Counts  map[string]int `json:"counts,omitempty"`
	Waves   int            `json:"waves"`
	Devices int            `json:"devices"`
}

// Event kinds.
const (
	EvStarted   = "rollout_started"
	EvWave      = "wave_started"
	EvDevice    = "device"
	EvWaveDone  = "wave_done"
	EvAborting  = "aborting"
	EvCompleted = "completed"
	EvAborted   = "aborted"
)

func (r *Rollout) event(now time.Time, kind string) Event {
	return Event{Time: now, Rollout: r.ID, Kind: kind, Wave: r.Wave, Waves: len(r.Waves), Devices: len(r.Jobs)}
}

func (r *Rollout) setJob(d *Decision, now time.Time, j *Job, state, reason string) {
	j.State, j.Reason, j.Since = state, reason, now
	d.Changed = true
	ev := r.event(now, EvDevice)
	ev.Wave, ev.Device, ev.State, ev.Reason = j.Wave, j.Device, state, reason
	d.Events = append(d.Events, ev)
}

// Step advances the rollout to now given what the devices report, and
// says what to publish. It never blocks and does no I/O.
func (r *Rollout) Step(now time.Time, observe Observer) Decision {
	var d Decision
	switch r.State {
	case RolloutInProgress:
		r.stepInProgress(&d, now, observe)
	case RolloutAborting:
		r.stepAborting(&d, now, observe)
	}
	if d.Changed {
		r.Updated = now
	}
	return d
}

// Sent records the sequence of the desired state that carried the new
// version to a device.
func (r *Rollout) Sent(device string, seq uint64) {
	if j := r.job(device); j != nil {
		j.Seq = seq
	}
}

// Reverted records the sequence of the desired state returning a device.
func (r *Rollout) Reverted(device string, seq uint64) {
	if j := r.job(device); j != nil {
		j.RevertSeq = seq
	}
}

func (r *Rollout) stepInProgress(d *Decision, now time.Time, observe Observer) {
	if r.Waves[r.Wave].Started.IsZero() {
		r.startWave(d, now)
	}
	// Follow every device sent the new version, in closed waves too: a
	// device pending when its wave closed may catch up, or fail, later.
	for i := range r.Jobs {
		j := &r.Jobs[i]
		if j.State != JobInProgress && j.State != JobPending || j.Seq == 0 {
			continue
		}
		obs, ok := observe(j.Device)
		if !ok {
			continue
		}
		switch {
		case obs.RefusedSeq >= j.Seq && obs.Refused != "":
			r.setJob(d, now, j, JobRejected, obs.Refused)
		case obs.Version == r.Version && (obs.Image == "" || obs.Image == r.Image) && obs.Health == HealthHealthy:
			r.setJob(d, now, j, JobSucceeded, "")
		case obs.Version == r.Version && (obs.Image == "" || obs.Image == r.Image) && obs.Health == HealthFailed:
			r.setJob(d, now, j, JobFailed, obs.Reason)
		case obs.Seq >= j.Seq && obs.Version != r.Version && obs.Error != "":
			r.setJob(d, now, j, JobFailed, obs.Error)
		case j.State == JobInProgress && obs.Online && now.Sub(j.Since) > r.Params.Timeout:
			r.setJob(d, now, j, JobTimedOut, fmt.Sprintf("not healthy after %v", r.Params.Timeout))
		}
	}
	failed, attempted, waveOpen := 0, 0, 0
	for i := range r.Jobs {
		j := &r.Jobs[i]
		if j.Wave > r.Wave {
			continue
		}
		if failedJob(j.State) {
			failed++
		}
		switch {
		case j.Wave < r.Wave && j.State != JobPending:
			attempted++
		case j.Wave == r.Wave:
			waveOpen++
		}
	}
	// No outcome of the rest of this wave could bring failures back under
	// the limit: abort now rather than after the wave.
	if r.Params.MaxFailures.exceededBy(failed, attempted+waveOpen) {
		r.abort(d, now, fmt.Sprintf("%d of %d devices failed in waves 0-%d, more than %v", failed, attempted+waveOpen, r.Wave, r.Params.MaxFailures))
		return
	}
	// The wave closes once each of its devices has an outcome or is offline.
	for i := range r.Jobs {
		j := &r.Jobs[i]
		if j.Wave != r.Wave || j.State != JobInProgress {
			continue
		}
		obs, ok := observe(j.Device)
		if ok && obs.Online || j.Seq == 0 {
			return
		}
	}
	for i := range r.Jobs {
		if j := &r.Jobs[i]; j.Wave == r.Wave && j.State == JobInProgress {
			r.setJob(d, now, j, JobPending, "offline")
		}
	}
	attempted = 0
	for _, j := range r.Jobs {
		if j.Wave <= r.Wave && j.State != JobPending {
			attempted++
		}
	}
	r.Waves[r.Wave].Ended = now
	d.Changed = true
	ev := r.event(now, EvWaveDone)
	ev.Counts = r.Counts()
	d.Events = append(d.Events, ev)
	if r.Params.MaxFailures.exceededBy(failed, attempted) {
		r.abort(d, now, fmt.Sprintf("%d of %d devices failed in waves 0-%d, more than %v", failed, attempted, r.Wave, r.Params.MaxFailures))
		return
	}
	if r.Wave == len(r.Waves)-1 {
		r.State = RolloutCompleted
		ev := r.event(now, EvCompleted)
		ev.Counts = r.Counts()
		d.Events = append(d.Events, ev)
		return
	}
	r.Wave++
	r.startWave(d, now)
}

func (r *Rollout) startWave(d *Decision, now time.Time) {
	r.Waves[r.Wave].Started = now
	d.Changed = true
	if r.Wave == 0 {
		d.Events = append(d.Events, r.event(now, EvStarted))
	}
	ev := r.event(now, EvWave)
	ev.Counts = map[string]int{"size": r.Waves[r.Wave].Size}
	d.Events = append(d.Events, ev)
	for i := range r.Jobs {
		if j := &r.Jobs[i]; j.Wave == r.Wave && j.State == JobQueued {
			j.State, j.Since = JobInProgress, now
			d.Send = append(d.Send, j.Device)
		}
	}
}

// Resumed prepares a rollout read back from the broker for a new driver:
// timeouts restart from now, and what the previous driver had decided but
// may not have published (a job without its sequence) is done again.
func (r *Rollout) Resumed(now time.Time) Decision {
	var d Decision
	for i := range r.Waves {
		if i <= r.Wave && r.Waves[i].Started.IsZero() {
			r.Waves[i].Started = now
		}
	}
	for i := range r.Jobs {
		j := &r.Jobs[i]
		j.Since = now
		switch {
		case r.State == RolloutInProgress && j.State == JobInProgress && j.Seq == 0:
			d.Send = append(d.Send, j.Device)
		case r.State == RolloutAborting && j.State == JobRollingBack && j.RevertSeq == 0:
			d.Revert = append(d.Revert, j.Device)
		}
	}
	return d
}

// Abort stops the rollout: devices not reached are canceled, every device
// sent the new version returns to the one it ran before.
func (r *Rollout) Abort(now time.Time, reason string) Decision {
	var d Decision
	if r.State == RolloutInProgress {
		r.abort(&d, now, reason)
		r.Updated = now
	}
	return d
}

func (r *Rollout) abort(d *Decision, now time.Time, reason string) {
	r.State, r.Reason = RolloutAborting, reason
	d.Changed = true
	ev := r.event(now, EvAborting)
	ev.Reason = reason
	d.Events = append(d.Events, ev)
	for i := range r.Jobs {
		j := &r.Jobs[i]
		switch {
		case j.State == JobQueued:
			r.setJob(d, now, j, JobCanceled, "")
		case j.Seq != 0 || j.State == JobInProgress:
			// IN_PROGRESS without a sequence: a controller we took over
			// from may have sent it; returning a device that never got
			// the new version is harmless.
			j.State, j.Since = JobRollingBack, now
			d.Revert = append(d.Revert, j.Device)
		}
	}
}

func (r *Rollout) stepAborting(d *Decision, now time.Time, observe Observer) {
	waiting := false
	for i := range r.Jobs {
		j := &r.Jobs[i]
		if j.State != JobRollingBack {
			continue
		}
		if j.RevertSeq == 0 {
			waiting = true // not published yet
			continue
		}
		obs, ok := observe(j.Device)
		if !ok {
			continue
		}
		switch {
		case obs.RefusedSeq >= j.RevertSeq && obs.Refused != "":
			r.setJob(d, now, j, JobRollbackFailed, obs.Refused)
		case obs.Seq >= j.RevertSeq && obs.Version == j.From && (j.FromImage == "" || obs.Image == "" || obs.Image == j.FromImage):
			r.setJob(d, now, j, JobRolledBack, "")
		case obs.Online && now.Sub(j.Since) > r.Params.Timeout:
			r.setJob(d, now, j, JobRollbackFailed, fmt.Sprintf("not back after %v", r.Params.Timeout))
		case obs.Online:
			waiting = true
		}
	}
	if waiting {
		return
	}
	// Offline devices still ROLLING_BACK return when they come back (their
	// retained desired state is the previous version); nothing waits.
	r.State = RolloutAborted
	d.Changed = true
	ev := r.event(now, EvAborted)
	ev.Reason, ev.Counts = r.Reason, r.Counts()
	d.Events = append(d.Events, ev)
}

// Refuse records that the desired state for a device could not be made
// (for example the one on the broker is not the tenant's): its job is
// REJECTED, or ROLLBACK_FAILED when it was returning.
func (r *Rollout) Refuse(device, reason string, now time.Time) Decision {
	var d Decision
	j := r.job(device)
	switch {
	case j == nil:
	case j.State == JobInProgress:
		r.setJob(&d, now, j, JobRejected, reason)
	case j.State == JobRollingBack:
		r.setJob(&d, now, j, JobRollbackFailed, reason)
	}
	if d.Changed {
		r.Updated = now
	}
	return d
}

// Adopt takes into account a copy of the rollout published by the
// controller this one took over from, after the copy it started from: a
// device that copy shows touched (sent the new version) and this one
// still has QUEUED or CANCELED is followed again, or returned when
// aborting.
func (r *Rollout) Adopt(old *Rollout, now time.Time) Decision {
	var d Decision
	if old.ID != r.ID || len(old.Jobs) != len(r.Jobs) {
		return d
	}
	for i := range r.Jobs {
		j, o := &r.Jobs[i], old.Jobs[i]
		if o.Device != j.Device || o.State == JobQueued || o.State == JobCanceled || (j.State != JobQueued && j.State != JobCanceled) {
			continue
		}
		switch r.State {
		case RolloutInProgress:
			j.State, j.Seq, j.Since = JobInProgress, o.Seq, now
			if j.Seq == 0 {
				d.Send = append(d.Send, j.Device)
			}
		case RolloutAborting, RolloutAborted:
			r.State = RolloutAborting
			j.State, j.Since = JobRollingBack, now
			d.Revert = append(d.Revert, j.Device)
		}
		d.Changed = true
	}
	if d.Changed {
		r.Updated = now
	}
	return d
}
