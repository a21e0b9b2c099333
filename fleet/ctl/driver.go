package ctl

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tinycontainer/tinycontainer/fleet/doc"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/trust"
)

// RolloutRequest is what `fleet rollout` asks for.
type RolloutRequest struct {
	Image    []byte // a signed image (pack)
	Key      ed25519.PrivateKey
	Selector Selector
	Params   Params
	ID       string // "" : CONTAINER-vVERSION-RANDOM
}

// Run is a rollout driven by this controller.
type Run struct {
	f      *Fleet
	r      *Rollout
	key    ed25519.PrivateKey
	pub    ed25519.PublicKey
	seal   *sealed
	holder string
	term   uint64
	topic  string

	dirty       bool
	copies      <-chan []byte // every copy of the rollout received
	lastChecked []byte
	claimed     time.Time // when this controller took the rollout over
	conns       uint64
	lastPub     time.Time
	published   []byte
	toSend      map[string]bool
	toRevert    map[string]bool
	events      []Event // not yet handed out
	Skipped     []Skip  // matching devices left out, and why
}

// Skip is a device a rollout leaves out.
type Skip struct {
	Device string `json:"device"`
	Reason string `json:"reason"`
}

// ID is the rollout's id.
func (run *Run) ID() string { return run.r.ID }

// Rollout returns the rollout as this driver last left it (do not modify).
func (run *Run) Rollout() *Rollout { return run.r }

// StartRollout plans a rollout of the image to the devices the selector
// matches, publishes the image and the rollout, and returns it ready to
// Drive. Devices already at the image's version or above are skipped.
func (f *Fleet) StartRollout(ctx context.Context, req RolloutRequest) (*Run, error) {
	pub := req.Key.Public().(ed25519.PublicKey)
	img, err := trust.OpenImage(req.Image)
	if err != nil {
		return nil, fmt.Errorf("%w: image: %w", ErrInput, err)
	}
	if err := img.Verify(pub); err != nil {
		return nil, fmt.Errorf("%w: the image is not signed by this key (%s signed it, the key is %s)", ErrInput, img.KeyID, trust.KeyID(pub))
	}
	m, err := meta.Parse(img.Manifest)
	if err != nil {
		return nil, fmt.Errorf("%w: image metadata: %w", ErrInput, err)
	}
	if len(req.Image) > doc.MaxImageSize {
		return nil, fmt.Errorf("%w: image of %d bytes, at most %d", ErrInput, len(req.Image), doc.MaxImageSize)
	}
	id := req.ID
	if id == "" {
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		id = fmt.Sprintf("%s-v%d-%s", m.Name, m.Version, hex.EncodeToString(b))
	}
	if err := doc.ValidID(id); err != nil {
		return nil, fmt.Errorf("%w: rollout id: %w", ErrInput, err)
	}
	if err := f.Watch(ctx, desiredFilter(m.Tenant), RolloutFilter(m.Tenant)); err != nil {
		return nil, err
	}
	run := &Run{f: f, key: req.Key, pub: pub, seal: &sealed{}, holder: f.ClientID(), topic: doc.RolloutTopic(m.Tenant, id),
		toSend: map[string]bool{}, toRevert: map[string]bool{}}
	f.mu.Lock()
	_, exists := f.rollouts[m.Tenant+"/"+id]
	f.mu.Unlock()
	if exists {
		return nil, fmt.Errorf("%w: rollout %s of %s already exists", ErrInput, id, m.Tenant)
	}
	observe := f.observe(m.Tenant, m.Name)
	var targets []Target
	for _, d := range f.Devices(req.Selector) {
		obs, _ := observe(d.ID)
		if obs.Version >= m.Version {
			run.Skipped = append(run.Skipped, Skip{d.ID, fmt.Sprintf("already at version %d", obs.Version)})
			continue
		}
		t := Target{Device: d.ID, From: obs.Version, FromImage: obs.Image}
		if prev, err := run.currentDesiredOf(d.ID, m.Tenant); err == nil && prev != nil {
			for _, c := range prev.Containers {
				if c.Name == m.Name && c.Version == obs.Version {
					t.FromImage, t.FromSize = c.Digest, c.Size
				}
			}
		}
		targets = append(targets, t)
	}
	digest := doc.Digest(req.Image)
	now := f.now()
	r, err := NewRollout(id, m.Tenant, m.Name, m.Version, digest, len(req.Image), req.Selector.String(), req.Params, targets, now)
	if err != nil {
		return nil, err
	}
	r.Claim(run.holder, now)
	run.r, run.term = r, r.Lease.Term
	run.copies = f.tap(r.ID)
	if err := f.publish(ctx, doc.ImageTopic(m.Tenant, digest), req.Image); err != nil {
		return nil, err
	}
	run.dirty = true
	if err := run.publishProgress(ctx, now); err != nil {
		return nil, err
	}
	return run, nil
}

func desiredFilter(tenant string) string { return doc.Root + "/dev/+/desired/" + tenant }

// currentDesired is the tenant's desired state retained for a device (nil
// when there is none), checked against the tenant's key.
func (run *Run) currentDesired(device string) (*doc.Desired, error) {
	return run.currentDesiredOf(device, run.r.Tenant)
}

func (run *Run) currentDesiredOf(device, tenant string) (*doc.Desired, error) {
	run.f.mu.Lock()
	b := run.f.desired[doc.DesiredTopic(device, tenant)]
	run.f.mu.Unlock()
	if b == nil {
		return nil, nil
	}
	d, err := doc.OpenDesired(b, run.pub)
	if err != nil {
		return nil, fmt.Errorf("the desired state on the broker does not open with this key: %w", err)
	}
	return d, nil
}

// ResumeRollout takes over the rollout id whose controller died: it waits
// for the lease to expire (failing with ErrLease if the holder renews it
// meanwhile), claims it and returns it ready to Drive. A rollout that has
// ended is returned as it is. tenant may be "" (any tenant).
func (f *Fleet) ResumeRollout(ctx context.Context, id, tenant string, key ed25519.PrivateKey, lease time.Duration) (*Run, error) {
	run, err := f.loadRun(ctx, id, tenant, key, lease)
	if err != nil || run.r.Done() {
		return run, err
	}
	// Wait out a live lease, watching for its renewal. Its duration is
	// counted on this controller's clock from the copy read above: the
	// holder's Until is by another machine's clock.
	w := watchLease(run.r.Lease, f.now())
	for run.r.Lease.Holder != run.holder {
		left := w.left(f.now())
		if left <= 0 {
			break
		}
		t := time.NewTimer(left + 10*time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-f.Changed():
		case <-t.C:
		}
		t.Stop()
		r, _, err := f.findRollout(id, run.r.Tenant, run.pub)
		if err != nil {
			return nil, err
		}
		if r.Done() {
			run.r = r
			return run, nil
		}
		if w.see(r.Lease, f.now()) {
			return nil, fmt.Errorf("%w: %s renewed its lease (term %d, for %v)", ErrLease, r.Lease.Holder, r.Lease.Term, r.Lease.TTL)
		}
	}
	return run, run.claim(ctx, f.now(), func(r *Rollout, now time.Time) Decision { return r.Resumed(now) })
}

// AbortRollout takes the rollout over at once (whoever drives it stops
// when it sees the higher term), aborts it and returns it ready to Drive
// the return of its devices.
func (f *Fleet) AbortRollout(ctx context.Context, id, tenant string, key ed25519.PrivateKey, lease time.Duration, reason string) (*Run, error) {
	run, err := f.loadRun(ctx, id, tenant, key, lease)
	if err != nil || run.r.Done() {
		return run, err
	}
	return run, run.claim(ctx, f.now(), func(r *Rollout, now time.Time) Decision {
		d := r.Resumed(now)
		a := r.Abort(now, reason)
		d.Revert = append(d.Revert, a.Revert...)
		d.Events = append(d.Events, a.Events...)
		return d
	})
}

func (f *Fleet) loadRun(ctx context.Context, id, tenant string, key ed25519.PrivateKey, lease time.Duration) (*Run, error) {
	// Every copy from here on is seen: one published by the controller
	// being replaced after the copy read below must not be missed.
	copies := f.tap(id)
	if err := f.Watch(ctx, RolloutFilter(tenant)); err != nil {
		return nil, err
	}
	pub := key.Public().(ed25519.PublicKey)
	r, seal, err := f.findRollout(id, tenant, pub)
	if err != nil {
		return nil, err
	}
	if lease > 0 {
		r.Params.Lease = lease
	}
	if err := f.Watch(ctx, desiredFilter(r.Tenant)); err != nil {
		return nil, err
	}
	return &Run{f: f, r: r, key: key, pub: pub, seal: seal, holder: f.ClientID(), topic: doc.RolloutTopic(r.Tenant, r.ID),
		toSend: map[string]bool{}, toRevert: map[string]bool{}, copies: copies}, nil
}

// claim takes the lease with the next term, applies then to the rollout
// and publishes it.
func (run *Run) claim(ctx context.Context, now time.Time, then func(*Rollout, time.Time) Decision) error {
	run.r.Claim(run.holder, now)
	run.claimed = now
	run.term = run.r.Lease.Term
	run.apply(then(run.r, now))
	run.dirty = true
	return run.publishProgress(ctx, now)
}

func (run *Run) apply(d Decision) {
	for _, id := range d.Send {
		run.toSend[id] = true
	}
	for _, id := range d.Revert {
		run.toRevert[id] = true
		delete(run.toSend, id)
	}
	run.events = append(run.events, d.Events...)
	if d.Changed {
		run.dirty = true
	}
}

// takeoverGrace: after taking a rollout over, a controller follows it at
// least this long, so that what the previous controller did in its last
// moments (before it saw the takeover) is seen and undone if need be.
const takeoverGrace = 1500 * time.Millisecond

// Drive runs the rollout until it ends, calling progress with each
// event. It returns the final state (RolloutCompleted or RolloutAborted),
// ErrLease when another controller took the rollout over, or the
// context's error. While the broker is away it waits; on its return the
// view catches up and the rollout goes on.
func (run *Run) Drive(ctx context.Context, progress func(Event)) (string, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	flush := func() {
		for _, e := range run.events {
			if progress != nil {
				progress(e)
			}
		}
		run.events = run.events[:0]
	}
	for {
		flush()
		if run.r.Done() && !run.dirty && len(run.toRevert) == 0 && run.f.now().Sub(run.claimed) >= takeoverGrace {
			return run.r.State, nil
		}
		select {
		case <-ctx.Done():
			return run.r.State, ctx.Err()
		case <-run.f.Changed():
		case <-tick.C:
		}
		if !run.f.Connected() {
			continue
		}
		if err := run.checkLease(); err != nil {
			flush()
			return run.r.State, err
		}
		now := run.f.now()
		run.apply(run.r.Step(now, run.f.observe(run.r.Tenant, run.r.Container)))
		if run.conns != run.f.Stats().Connections {
			// A new connection: the broker may have lost the rollout
			// (no persistence); publish it again.
			run.conns, run.dirty = run.f.Stats().Connections, true
		}
		if len(run.toSend) > 0 && run.dirty {
			// Write ahead: the rollout records a device IN_PROGRESS before
			// its desired state goes out, so a controller taking over
			// knows every device that may have been sent the new version.
			run.lastPub = time.Time{}
			if err := run.publishProgress(ctx, now); err != nil {
				continue
			}
		}
		run.sendPending(ctx, now)
		if !run.r.Done() && run.r.RenewDue(now) {
			run.r.Renew(now)
			run.dirty = true
		}
		if err := run.publishProgress(ctx, now); err != nil && !errors.Is(err, ErrBroker) {
			return run.r.State, err
		}
	}
}

// checkLease fails when a copy of the rollout on the broker shows another
// controller has taken it over.
func (run *Run) checkLease() error {
	// The latest copy first: one may have arrived between reading the
	// rollout and tapping its copies.
	run.f.mu.Lock()
	latest := run.f.rollouts[run.r.Tenant+"/"+run.r.ID]
	run.f.mu.Unlock()
	if latest != nil && !bytes.Equal(latest, run.lastChecked) {
		run.lastChecked = latest
		if err := run.checkCopy(latest); err != nil {
			return err
		}
	}
	for {
		var b []byte
		select {
		case b = <-run.copies:
		default:
			return nil
		}
		if err := run.checkCopy(b); err != nil {
			return err
		}
	}
}

func (run *Run) checkCopy(b []byte) error {
	if bytes.Equal(b, run.published) {
		return nil
	}
	r, _, err := openRollout(b, run.pub, run.r.Params.Lease)
	if err != nil {
		return nil // not the tenant's: the broker's ACL let someone else write it; ignore
	}
	if r.Lease.Supersedes(run.holder, run.term) {
		return fmt.Errorf("%w: %s took rollout %s over (term %d)", ErrLease, r.Lease.Holder, r.ID, r.Lease.Term)
	}
	if r.Lease.Term < run.term {
		// A straggler of the controller we took over from: it may have
		// sent devices the new version after the copy we started from.
		run.apply(run.r.Adopt(r, run.f.now()))
		run.published = b
		run.dirty = true // its copy replaced ours on the broker
	}
	return nil
}

// sendPending publishes the desired states decided but not yet published.
func (run *Run) sendPending(ctx context.Context, now time.Time) {
	for _, revert := range []bool{false, true} {
		set := run.toSend
		if revert {
			set = run.toRevert
		}
		for _, id := range slices.Sorted(mapKeys(set)) {
			seq, err := run.sendDesired(ctx, id, revert, now)
			switch {
			case errors.Is(err, ErrBroker):
				return // the broker is away: try again later
			case err != nil:
				run.apply(run.r.Refuse(id, err.Error(), now))
			case revert:
				run.r.Reverted(id, seq)
			default:
				run.r.Sent(id, seq)
			}
			delete(set, id)
			run.dirty = true
		}
	}
}

// sendDesired publishes the tenant's desired state for one device: what
// it was, with the rollout's container at the new version, or (revert)
// back at the version the device ran before (removed if it had none).
func (run *Run) sendDesired(ctx context.Context, device string, revert bool, now time.Time) (uint64, error) {
	r := run.r
	j := r.job(device)
	if j == nil {
		return 0, fmt.Errorf("%w: %s is not in the rollout", ErrInput, device)
	}
	prev, err := run.currentDesired(device)
	if err != nil {
		return 0, err
	}
	d := doc.Desired{Tenant: r.Tenant, Devices: []string{device}, Seq: uint64(now.UnixMilli())}
	if prev != nil {
		d.Seq = max(d.Seq, prev.Seq+1)
		for _, c := range prev.Containers {
			if c.Name != r.Container {
				d.Containers = append(d.Containers, c)
			}
		}
	}
	entry := doc.DesiredContainer{Name: r.Container, Version: r.Version, Digest: r.Image, Size: r.ImageSize,
		Health: doc.Duration(r.Params.Health), Rollout: r.ID}
	if revert {
		if j.From == 0 {
			entry.Name = "" // it had none: the return removes it
		} else {
			if j.FromImage == "" || j.FromSize == 0 {
				return 0, fmt.Errorf("version %d was not installed through the fleet: no image to return to", j.From)
			}
			entry = doc.DesiredContainer{Name: r.Container, Version: j.From, Digest: j.FromImage, Size: j.FromSize,
				Health: doc.Duration(r.Params.Health), Rollout: r.ID, Revert: &doc.Revert{From: doc.Ref{Version: r.Version, Digest: r.Image}}}
		}
	}
	if entry.Name != "" {
		d.Containers = append(d.Containers, entry)
	}
	b, err := doc.SignDesired(d, run.key)
	if err != nil {
		return 0, err
	}
	topic := doc.DesiredTopic(device, r.Tenant)
	if err := run.f.publish(ctx, topic, b); err != nil {
		return 0, err
	}
	run.f.mu.Lock()
	run.f.desired[topic] = b
	run.f.mu.Unlock()
	return d.Seq, nil
}

// publishProgress publishes the rollout when it changed: at once when its
// state or wave changed or it ended, otherwise at most twice a second.
func (run *Run) publishProgress(ctx context.Context, now time.Time) error {
	if !run.dirty {
		return nil
	}
	if now.Sub(run.lastPub) < 500*time.Millisecond && !run.r.Done() && !run.urgent() {
		return nil
	}
	b, err := run.seal.message(run.r, run.key)
	if err != nil {
		return err
	}
	if err := run.f.publish(ctx, run.topic, b); err != nil {
		return err
	}
	run.published, run.lastPub, run.dirty = b, now, false
	return nil
}

// urgent: a wave started or ended, or the rollout is aborting, since the
// last publication.
func (run *Run) urgent() bool {
	for _, e := range run.events {
		if e.Kind != EvDevice {
			return true
		}
	}
	return false
}
