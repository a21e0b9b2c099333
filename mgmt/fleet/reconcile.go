package fleet

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/fleet/doc"
	"github.com/tinycontainer/tinycontainer/internal/mqttc"
	"github.com/tinycontainer/tinycontainer/mgmt"
)

// reconcileWith brings tenant's containers to the accepted desired state d:
// installs, upgrades or reverts each listed container (fetching images
// first), removes the tenant's containers it does not list.
func (a *Agent) reconcileWith(tenant string, d *doc.Desired) {
	topic := doc.DesiredTopic(a.opts.ID, tenant)
	key, _ := a.mg.TenantKey(tenant)
	keyID, verify := device.FleetVerifier(key)
	listed := map[string]bool{}
	for _, c := range d.Containers {
		listed[c.Name] = true
		a.reconcileOne(topic, tenant, c)
	}
	for _, st := range a.mg.Device().List() {
		if st.Tenant != tenant || listed[st.Name] {
			continue
		}
		if err := a.mg.FleetRemove(a.ctx, keyID, verify, tenant, st.Name); err != nil {
			a.refuse(topic, tenant, fmt.Errorf("remove %s: %w", st.Name, err))
			continue
		}
		delete(a.st.Containers, st.Name)
		delete(a.pending, st.Name)
		a.save()
		a.dirty = true
		a.log.Info("fleet: container removed", "container", st.Name, "tenant", tenant)
	}
}

func (a *Agent) reconcileOne(topic, tenant string, c doc.DesiredContainer) {
	want := c.Ref()
	rec := a.st.Containers[c.Name]
	cur, installed := a.installed(c.Name)
	if installed && cur.Tenant != tenant {
		a.refuse(topic, tenant, fmt.Errorf("%w: %s belongs to tenant %q", mgmt.ErrDenied, c.Name, cur.Tenant))
		return
	}
	if installed && cur.Version == want.Version && (rec == nil || rec.Current != want) {
		// The version asked for is installed but not on the fleet's record:
		// the device stopped between installing it and recording it, or it
		// was installed before the fleet managed this tenant. Same image:
		// adopt it; another image under the same version: refuse.
		if dg, err := a.mg.ImageDigest(c.Name); err == nil && dg == c.Digest {
			rec = a.ensureRecord(c.Name, tenant, rec, false, cur)
			if rec.Current.Version != 0 && rec.Current != want {
				p := rec.Current
				rec.Previous = &p
			}
			rec.Current, rec.Health, rec.Window, rec.Rollout, rec.Error, rec.Failed = want, doc.HealthPending, c.Health, c.Rollout, "", nil
			a.pending[c.Name] = &pendingHealth{since: time.Now(), faults: cur.Faults}
			a.save()
			a.dirty = true
			return
		}
	}
	if rec != nil && installed && rec.Current == want && cur.Version == want.Version {
		if cur.State != mgmt.StateRunning && rec.Health != doc.HealthFailed {
			_ = a.mg.Device().Start(c.Name) // a device restart brings it back stopped only if it was stopped
		}
		return // in force
	}
	if rec != nil && rec.Failed != nil && *rec.Failed == want {
		return // failed here before: not tried again (a new version or a revert is needed)
	}
	revert := false
	if r := c.Revert; r != nil {
		// A return is allowed only to the exact version this device ran
		// before the one being left, as its own record says.
		switch {
		case rec == nil || rec.Previous == nil:
			a.refuse(topic, tenant, fmt.Errorf("%w: revert of %s to version %d refused: this device has no previous version on record", mgmt.ErrDenied, c.Name, c.Version))
			return
		case *rec.Previous != want:
			a.refuse(topic, tenant, fmt.Errorf("%w: revert of %s to version %d (%.12s) refused: the version before was %d (%.12s)", mgmt.ErrDenied, c.Name, c.Version, c.Digest, rec.Previous.Version, rec.Previous.Digest))
			return
		case rec.Current != r.From && (rec.Failed == nil || *rec.Failed != r.From):
			a.refuse(topic, tenant, fmt.Errorf("%w: revert of %s from version %d refused: this device is on version %d", mgmt.ErrDenied, c.Name, r.From.Version, rec.Current.Version))
			return
		}
		revert = installed && cur.Version > c.Version
	} else if installed && cur.Version > c.Version {
		a.refuse(topic, tenant, fmt.Errorf("%w: %s: version %d is below the installed %d (only a revert to the exact previous version goes back)", mgmt.ErrConflict, c.Name, c.Version, cur.Version))
		return
	} else if installed && cur.Version == c.Version && rec != nil && rec.Current.Digest != "" && rec.Current.Digest != c.Digest {
		a.refuse(topic, tenant, fmt.Errorf("%w: %s: version %d is installed from another image (%.12s)", mgmt.ErrConflict, c.Name, c.Version, rec.Current.Digest))
		return
	}
	img, ok := a.images[c.Digest]
	if !ok {
		a.wantImage(tenant, c.Digest)
		a.ensureRecord(c.Name, tenant, rec, installed, cur).Health = doc.HealthPending
		a.dirty = true
		return
	}
	delete(a.images, c.Digest)
	if len(img) != c.Size {
		a.fail(c.Name, tenant, want, fmt.Errorf("%w: image of %d bytes, the desired state says %d", doc.ErrMalformed, len(img), c.Size))
		a.refuse(topic, tenant, fmt.Errorf("%s: image size mismatch", c.Name))
		return
	}
	rec = a.ensureRecord(c.Name, tenant, rec, installed, cur)
	before := rec.Current
	st, err := a.mg.FleetDeploy(a.ctx, img, device.FleetWant{Tenant: tenant, Name: c.Name, Version: c.Version, Revert: revert})
	if err != nil {
		a.fail(c.Name, tenant, want, err)
		a.refuse(topic, tenant, fmt.Errorf("%s version %d: %w", c.Name, c.Version, err))
		return
	}
	if revert {
		rec.Previous = nil // one step back, no further
	} else if installed && before.Version != 0 && before != want {
		p := before
		rec.Previous = &p
	}
	rec.Current, rec.Health, rec.Window, rec.Rollout, rec.Error, rec.Failed = want, doc.HealthPending, c.Health, c.Rollout, "", nil
	a.pending[c.Name] = &pendingHealth{since: time.Now(), faults: st.Faults}
	a.save()
	a.dirty = true
	a.log.Info("fleet: container installed", "container", c.Name, "tenant", tenant, "version", c.Version, "revert", revert)
}

// installed returns the container of that name, if any.
func (a *Agent) installed(name string) (mgmt.ContainerStatus, bool) {
	st, err := a.mg.Device().Status(name)
	return st, err == nil
}

// ensureRecord returns the fleet record of a container, making one for a
// container installed before the fleet managed it (its version is then
// the one a revert could return to).
func (a *Agent) ensureRecord(name, tenant string, rec *record, installed bool, cur mgmt.ContainerStatus) *record {
	if rec != nil {
		return rec
	}
	rec = &record{Tenant: tenant, Health: doc.HealthPending}
	if installed {
		rec.Current = doc.Ref{Version: cur.Version}
		if dg, err := a.mg.ImageDigest(name); err == nil {
			rec.Current.Digest = dg
		}
	}
	a.st.Containers[name] = rec
	return rec
}

// fail records that a version could not be installed: the container
// stays on the version it had (FleetDeploy changes nothing on failure).
func (a *Agent) fail(name, tenant string, want doc.Ref, err error) {
	rec := a.st.Containers[name]
	if rec == nil {
		rec = &record{Tenant: tenant}
		a.st.Containers[name] = rec
	}
	f := want
	rec.Failed, rec.Health, rec.Error = &f, doc.HealthFailed, err.Error()
	delete(a.pending, name)
	a.save()
	a.dirty = true
}

// wantImage asks for an image: its retained topic is subscribed to (the
// image arrives once, and again after a reconnect until it is installed).
func (a *Agent) wantImage(tenant, digest string) {
	a.mu.Lock()
	a.wantImg[digest] = doc.ImageTopic(tenant, digest)
	a.mu.Unlock()
	a.syncImageSubs()
}

func (a *Agent) unwantImage(digest string) {
	a.mu.Lock()
	topic, ok := a.wantImg[digest]
	delete(a.wantImg, digest)
	a.mu.Unlock()
	if !ok || a.subConn == nil || !a.subImg[digest] {
		return
	}
	delete(a.subImg, digest)
	ctx, cancel := context.WithTimeout(a.ctx, 10*time.Second)
	defer cancel()
	_ = a.subConn.Unsubscribe(ctx, []string{topic})
}

// syncImageSubs subscribes the live connection to every wanted image
// (a new connection starts with none).
func (a *Agent) syncImageSubs() {
	if a.cli == nil {
		return // at start: done once connected
	}
	c := a.cli.Conn()
	if c != a.subConn {
		a.subConn, a.subImg = c, map[string]bool{}
	}
	if c == nil {
		return
	}
	a.mu.Lock()
	var filters []mqttc.Filter
	var digests []string
	for dg, topic := range a.wantImg {
		if !a.subImg[dg] {
			filters = append(filters, mqttc.Filter{Topic: topic, QoS: 1})
			digests = append(digests, dg)
		}
	}
	a.mu.Unlock()
	if len(filters) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(a.ctx, 10*time.Second)
	defer cancel()
	refused, err := c.Subscribe(ctx, filters)
	if err != nil {
		a.log.Warn("fleet: image subscription failed (retried)", "err", err)
		return
	}
	for i, dg := range digests {
		a.subImg[dg] = true // a refused one is not asked again on this connection
		if refused[i] != nil {
			a.refuse(filters[i].Topic, "", refused[i])
		}
	}
}

// checkHealth moves pending versions to healthy once they ran their
// window without a fault, or to failed at their first fault.
func (a *Agent) checkHealth() {
	now := time.Now()
	for name, p := range a.pending {
		rec := a.st.Containers[name]
		st, err := a.mg.Device().Status(name)
		if rec == nil || err != nil {
			delete(a.pending, name)
			continue
		}
		switch {
		case st.Faults > p.faults || st.State == mgmt.StateFaulted:
			f := rec.Current
			rec.Health, rec.Failed = doc.HealthFailed, &f
			rec.Error = fmt.Sprintf("faulted (%s) within its health window", st.LastFault)
			if st.State == mgmt.StateFaulted {
				rec.Error = fmt.Sprintf("faulted (%s) and stopped", st.LastFault)
			}
		case now.Sub(p.since) >= time.Duration(rec.Window):
			rec.Health = doc.HealthHealthy
		default:
			continue
		}
		delete(a.pending, name)
		a.save()
		a.dirty = true
		a.log.Info("fleet: health", "container", name, "version", rec.Current.Version, "health", rec.Health)
	}
	for name, rec := range a.st.Containers {
		// After a restart, a version still pending starts its window again.
		if rec.Health == doc.HealthPending && a.pending[name] == nil && rec.Current.Version != 0 {
			if st, err := a.mg.Device().Status(name); err == nil && st.Version == rec.Current.Version {
				a.pending[name] = &pendingHealth{since: now, faults: st.Faults}
			}
		}
	}
}

// report builds the reported state.
func (a *Agent) report() doc.Reported {
	a.seq++
	r := doc.Reported{ID: a.opts.ID, Session: a.currentSession(), Seq: a.seq, Time: time.Now().UTC(),
		Containers: []doc.ContainerReport{}, Tenants: []doc.TenantReport{}, Refusals: slices.Clone(a.refusals),
		Storage: a.mg.Device().Info().Storage}
	for _, st := range a.mg.Device().List() {
		cr := doc.ContainerReport{ContainerStatus: st}
		if rec := a.st.Containers[st.Name]; rec != nil {
			cr.Health, cr.Previous, cr.Rollout, cr.Error = rec.Health, rec.Previous, rec.Rollout, rec.Error
			if rec.Current.Version == st.Version {
				cr.Digest = rec.Current.Digest
			}
		}
		r.Containers = append(r.Containers, cr)
	}
	tenants := map[string]bool{}
	for t := range a.st.Grants {
		tenants[t] = true
	}
	for t := range a.st.Desired {
		tenants[t] = true
	}
	for t := range a.tenantErr {
		tenants[t] = true
	}
	for _, t := range slices.Sorted(maps.Keys(tenants)) {
		r.Tenants = append(r.Tenants, doc.TenantReport{Tenant: t, GrantSeq: a.st.Grants[t].Seq,
			DesiredSeq: a.st.Desired[t].Seq, Revoked: a.st.Revoked[t], Error: a.tenantErr[t], RefusedSeq: a.refused[t]})
	}
	return r
}

// publishReported publishes the reported state when it changed, or as a
// heartbeat.
func (a *Agent) publishReported() {
	if !a.dirty && time.Since(a.lastPub) < a.opts.Heartbeat {
		return
	}
	c := a.cli.Conn()
	if c == nil {
		return // published again once connected
	}
	b, err := a.report().Encode()
	if err != nil {
		a.log.Error("fleet: reported state not encoded", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(a.ctx, 10*time.Second)
	defer cancel()
	if err := c.Publish(ctx, mqttc.Message{Topic: doc.ReportedTopic(a.opts.ID), Payload: b, QoS: 1, Retain: true}); err != nil {
		if !errors.Is(err, context.Canceled) {
			a.log.Warn("fleet: reported state not published", "err", err)
		}
		return
	}
	a.dirty = false
	a.lastPub = time.Now()
}
