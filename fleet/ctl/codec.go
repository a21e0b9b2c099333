package ctl

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/tinycontainer/tinycontainer/fleet/doc"
	"github.com/tinycontainer/tinycontainer/trust"
)

// A rollout travels as doc.RolloutMessage: the tenant-signed, immutable
// doc.Rollout (what was asked) and the tenant-signed doc.Progress (where
// it stands), re-signed at every change. This file converts between them
// and the controller's Rollout.

var rolloutStates = map[string]string{
	RolloutInProgress: doc.RolloutRunning, RolloutAborting: doc.RolloutAborting,
	RolloutCompleted: doc.RolloutComplete, RolloutAborted: doc.RolloutAborted,
}

var jobStates = map[string]string{
	JobQueued: doc.DevicePending, JobInProgress: doc.DeviceUpdating, JobSucceeded: doc.DeviceHealthy,
	JobFailed: doc.DeviceFailed, JobRejected: doc.DeviceFailed, JobTimedOut: doc.DeviceFailed,
	JobPending: doc.DevicePending, JobCanceled: doc.DevicePending, JobRollingBack: doc.DeviceReverting,
	JobRolledBack: doc.DeviceReverted, JobRollbackFailed: doc.DeviceReverting,
}

func percentOf(p Percent) float64 { return float64(p) / 100 }

func percentFrom(f float64) (Percent, error) {
	if !(f >= 0 && f <= 100) {
		return 0, fmt.Errorf("%w: percentage %v outside 0..100", ErrInput, f)
	}
	return Percent(math.Round(f * 100)), nil
}

// definition is the signed, immutable part.
func (r *Rollout) definition() doc.Rollout {
	devs := make([]string, len(r.Jobs))
	for i, j := range r.Jobs {
		devs[i] = j.Device
	}
	return doc.Rollout{
		Tenant: r.Tenant, ID: r.ID, Seq: 1, Devices: devs, Container: r.Container,
		To: doc.Ref{Version: r.Version, Digest: r.Image}, Size: r.ImageSize,
		Health: doc.Duration(r.Params.Health), Canary: percentOf(r.Params.Canary), Wave: percentOf(r.Params.Wave),
		MaxFailures: percentOf(r.Params.MaxFailures), Created: r.Created,
		Timeout: doc.Duration(min(r.Params.Timeout, doc.MaxHealth)), Selector: r.Selector,
	}
}

// progress is the changing part, with sequence seq.
func (r *Rollout) progress(seq uint64) doc.Progress {
	p := doc.Progress{
		Tenant: r.Tenant, ID: r.ID, Seq: seq, State: rolloutStates[r.State], Wave: r.Wave, Waves: len(r.Waves),
		Lease:  doc.Lease{Holder: r.Lease.Holder, Expires: r.Lease.Until, Duration: doc.Duration(r.Lease.TTL), Term: r.Lease.Term},
		Reason: r.Reason, Updated: r.Updated, Devices: make([]doc.DeviceProgress, len(r.Jobs)),
	}
	for i, j := range r.Jobs {
		dp := doc.DeviceProgress{ID: j.Device, Wave: j.Wave, State: jobStates[j.State], Error: j.Reason, Job: j.State,
			Seq: j.Seq, RevertSeq: j.RevertSeq, FromSize: j.FromSize}
		if j.From != 0 {
			dp.From = &doc.Ref{Version: j.From, Digest: j.FromImage}
		}
		p.Devices[i] = dp
	}
	return p
}

// fromDocs rebuilds a Rollout from its two parts, checking that they
// agree; lease gives the lease duration a new driver will use.
func fromDocs(def *doc.Rollout, p *doc.Progress, lease time.Duration) (*Rollout, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: rollout %s: "+format, append([]any{ErrInput, def.ID}, a...)...)
	}
	if p.ID != def.ID || p.Tenant != def.Tenant {
		return nil, bad("progress of %s/%s", p.Tenant, p.ID)
	}
	var err error
	params := DefaultParams()
	params.Health, params.Lease = time.Duration(def.Health), lease
	if def.Timeout > 0 {
		params.Timeout = time.Duration(def.Timeout)
	}
	if params.Canary, err = percentFrom(def.Canary); err != nil {
		return nil, err
	}
	if params.Wave, err = percentFrom(def.Wave); err != nil {
		return nil, err
	}
	if params.MaxFailures, err = percentFrom(def.MaxFailures); err != nil {
		return nil, err
	}
	if err := params.Validate(); err != nil {
		return nil, bad("%v", err)
	}
	if len(def.Devices) == 0 || len(def.Devices) > doc.MaxDevices {
		return nil, bad("%d devices", len(def.Devices))
	}
	state := ""
	for k, v := range rolloutStates {
		if v == p.State {
			state = k
		}
	}
	r := &Rollout{
		Format: rolloutFormat, ID: def.ID, Tenant: def.Tenant, Container: def.Container, Version: def.To.Version,
		Image: def.To.Digest, ImageSize: def.Size, Selector: def.Selector, Params: params, State: state,
		Reason: p.Reason, Wave: p.Wave, Created: def.Created, Updated: p.Updated,
		Lease: Lease{Holder: p.Lease.Holder, Term: p.Lease.Term, Until: p.Lease.Expires, TTL: time.Duration(p.Lease.Duration)},
	}
	sizes := PlanWaves(len(def.Devices), params.Canary, params.Wave)
	if r.Lease.TTL <= 0 {
		r.Lease.TTL = DefaultParams().Lease
	}
	if len(sizes) != p.Waves {
		return nil, bad("%d waves planned, progress says %d", len(sizes), p.Waves)
	}
	if len(p.Devices) != len(def.Devices) {
		return nil, bad("%d devices, progress lists %d", len(def.Devices), len(p.Devices))
	}
	for _, s := range sizes {
		r.Waves = append(r.Waves, Wave{Size: s})
	}
	w, left := 0, sizes[0]
	for i, id := range def.Devices {
		for left == 0 {
			w++
			left = sizes[w]
		}
		left--
		dp := p.Devices[i]
		if dp.ID != id || dp.Wave != w {
			return nil, bad("device %d is %s in wave %d, progress says %s in wave %d", i, id, w, dp.ID, dp.Wave)
		}
		j := Job{Device: id, Wave: w, State: dp.Job, Reason: dp.Error, Seq: dp.Seq, RevertSeq: dp.RevertSeq, FromSize: dp.FromSize}
		if _, ok := jobStates[j.State]; !ok {
			if j.State, err = jobFromDoc(dp); err != nil {
				return nil, bad("%v", err)
			}
		}
		if dp.From != nil {
			j.From, j.FromImage = dp.From.Version, dp.From.Digest
		}
		r.Jobs = append(r.Jobs, j)
	}
	for i := range r.Waves {
		if i < r.Wave {
			r.Waves[i].Ended = p.Updated
		}
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// jobFromDoc reads the coarse state a progress written without job words
// holds.
func jobFromDoc(dp doc.DeviceProgress) (string, error) {
	switch dp.State {
	case doc.DevicePending:
		if dp.Seq != 0 {
			return JobPending, nil
		}
		return JobQueued, nil
	case doc.DeviceUpdating:
		return JobInProgress, nil
	case doc.DeviceHealthy:
		return JobSucceeded, nil
	case doc.DeviceFailed:
		return JobFailed, nil
	case doc.DeviceReverting:
		return JobRollingBack, nil
	case doc.DeviceReverted:
		return JobRolledBack, nil
	}
	return "", fmt.Errorf("device %s: state %q", dp.ID, dp.State)
}

// sealed is a rollout ready to publish: its signed definition (made once)
// and the sequence of the last progress signed.
type sealed struct {
	definition []byte
	seq        uint64
}

// message signs r's progress with the next sequence and returns the
// retained payload of its topic.
func (s *sealed) message(r *Rollout, key ed25519.PrivateKey) ([]byte, error) {
	if s.definition == nil {
		b, err := doc.SignRollout(r.definition(), key)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInput, err)
		}
		s.definition = b
	}
	s.seq = max(s.seq+1, uint64(r.Updated.UnixMilli()))
	p, err := doc.SignProgress(r.progress(s.seq), key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInput, err)
	}
	return doc.RolloutMessage{Rollout: s.definition, Progress: p}.Encode()
}

// OpenRollout decodes the retained payload of a rollout topic. With pub,
// both parts must be signed by it; without, signatures are not checked
// (read verbs without the tenant's key: the broker's ACL is then what
// vouches for the content).
func OpenRollout(b []byte, pub ed25519.PublicKey) (*Rollout, error) {
	r, _, err := openRollout(b, pub, DefaultParams().Lease)
	return r, err
}

func openRollout(b []byte, pub ed25519.PublicKey, lease time.Duration) (*Rollout, *sealed, error) {
	m, err := doc.DecodeRolloutMessage(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInput, err)
	}
	var def *doc.Rollout
	var p *doc.Progress
	if pub != nil {
		if def, err = doc.OpenRollout(m.Rollout, pub); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrInput, err)
		}
		if p, err = doc.OpenProgress(m.Progress, pub); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrInput, err)
		}
	} else {
		def, p = new(doc.Rollout), new(doc.Progress)
		if err := unverified(trust.DocRollout, m.Rollout, def); err != nil {
			return nil, nil, err
		}
		if err := unverified(trust.DocProgress, m.Progress, p); err != nil {
			return nil, nil, err
		}
		if err := doc.ValidTenant(def.Tenant); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrInput, err)
		}
		if err := doc.ValidID(def.ID); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrInput, err)
		}
		if err := doc.ValidDigest(def.To.Digest); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrInput, err)
		}
	}
	r, err := fromDocs(def, p, lease)
	if err != nil {
		return nil, nil, err
	}
	return r, &sealed{definition: m.Rollout, seq: p.Seq}, nil
}

// unverified decodes a signed document's payload strictly without
// checking its signature.
func unverified(k trust.DocKind, b []byte, v any) error {
	d, err := trust.OpenDoc(k, b)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInput, err)
	}
	dec := json.NewDecoder(bytes.NewReader(d.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInput, k, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: %s: trailing data", ErrInput, k)
	}
	return nil
}
