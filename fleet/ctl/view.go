package ctl

import (
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tinycontainer/tinycontainer/fleet/doc"
	"github.com/tinycontainer/tinycontainer/mgmt"
)

// This file is the read API: what `fleet devices`, `fleet ps` and `fleet
// status` print, and what a fleet dashboard serves. Every call reads the
// live view (call Settle first for a settled one) and returns copies.

// Device is one device as the fleet sees it (`fleet devices --json`).
type Device struct {
	ID     string            `json:"id"`
	Labels map[string]string `json:"labels"`
	Online bool              `json:"online"`
	// LastSeen: for a device online, when this controller last heard from
	// it (its own clock); for one offline, the latest time the device
	// wrote in its status or reported state (its clock: all there is).
	LastSeen   time.Time `json:"last_seen"`
	Containers int       `json:"containers"`
	Version    string    `json:"version"` // the device's software version
	Session    uint64    `json:"session"`
	// Health: ok, warning (see Problems), silent (online by its status but
	// not heard from for more than two of its heartbeats, by this
	// controller's clock) or offline.
	Health   string   `json:"health"`
	Problems []string `json:"problems,omitempty"` // what makes it not ok, in words
	// Heartbeat: how often it republishes its reported state.
	Heartbeat string `json:"heartbeat,omitempty"`
	// Storage: the space where it keeps its state, and its kv errors.
	Storage *mgmt.StorageInfo `json:"storage,omitempty"`
	// Tenants: where the device stands with each tenant's documents.
	Tenants  []doc.TenantReport `json:"tenants,omitempty"`
	Refusals []doc.Refusal      `json:"refusals,omitempty"`
}

// Container is one container of one device: the container object of `ps
// --json` with the fleet's fields (digest, health, previous version,
// rollout, error) and the device.
type Container struct {
	Device string `json:"device"`
	doc.ContainerReport
}

// Devices returns the devices sel matches, by id. A device known only by
// its reported state (no status yet) is listed offline.
func (f *Fleet) Devices(sel Selector) []Device {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := map[string]bool{}
	for id := range f.status {
		ids[id] = true
	}
	for id := range f.reported {
		ids[id] = true
	}
	var out []Device
	now := f.now()
	for _, id := range slices.Sorted(mapKeys(ids)) {
		d := f.deviceLocked(id, now)
		if sel.Matches(d.Labels) {
			out = append(out, d)
		}
	}
	return out
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (f *Fleet) deviceLocked(id string, now time.Time) Device {
	d := Device{ID: id, Labels: map[string]string{}}
	heartbeat := doc.DefaultHeartbeat
	s, ok := f.status[id]
	if ok {
		d.Online, d.Version, d.Session = s.Online, s.Version, s.Session
		for k, v := range s.Labels {
			d.Labels[k] = v
		}
		d.LastSeen = s.Time
		if s.Heartbeat > 0 {
			heartbeat = time.Duration(s.Heartbeat)
		}
	}
	r, okR := f.reported[id]
	if okR {
		d.Containers = len(r.Containers)
		d.Tenants = slices.Clone(r.Tenants)
		d.Refusals = slices.Clone(r.Refusals)
		d.Storage = r.Storage
		if r.Time.After(d.LastSeen) {
			d.LastSeen = r.Time
		}
	}
	if d.Online && !s.seen.IsZero() {
		// Heard from by this controller: its own clock, never the
		// device's (which may be off by any amount).
		d.LastSeen = s.seen
	}
	d.LastSeen = d.LastSeen.UTC()
	d.Heartbeat = heartbeat.String()
	judge(&d, r, heartbeat, s.seen, now, f.opts.Settle)
	return d
}

// Containers returns every container of every device sel matches, by
// device then tenant then name.
func (f *Fleet) Containers(sel Selector) []Container {
	devs := f.Devices(sel)
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Container
	for _, d := range devs {
		r := f.reported[d.ID]
		cs := slices.Clone(r.Containers)
		slices.SortFunc(cs, func(a, b doc.ContainerReport) int {
			return strings.Compare(a.Tenant+"/"+a.Name, b.Tenant+"/"+b.Name)
		})
		for _, c := range cs {
			out = append(out, Container{Device: d.ID, ContainerReport: c})
		}
	}
	return out
}

// observe is the rollout's view of one device.
func (f *Fleet) observe(tenant, container string) Observer {
	return func(id string) (Observation, bool) {
		f.mu.Lock()
		defer f.mu.Unlock()
		s, okS := f.status[id]
		r, okR := f.reported[id]
		if !okS && !okR {
			return Observation{}, false
		}
		obs := Observation{Online: okS && s.Online}
		for _, c := range r.Containers {
			if c.Tenant == tenant && c.Name == container {
				obs.Version, obs.Image, obs.Health, obs.Error = c.Version, c.Digest, c.Health, c.Error
				obs.Reason = c.Error
				if obs.Reason == "" && c.LastFault != "" {
					obs.Reason = "fault: " + c.LastFault
				}
			}
		}
		for _, t := range r.Tenants {
			if t.Tenant == tenant {
				obs.Seq, obs.RefusedSeq, obs.Refused = t.DesiredSeq, t.RefusedSeq, t.Error
			}
		}
		return obs, true
	}
}

// RolloutStatus is a rollout with each device's job and what the device
// reports now (`fleet status --json`, and the dashboard's rollouts).
type RolloutStatus struct {
	ID        string         `json:"id"`
	Tenant    string         `json:"tenant"`
	Container string         `json:"container"`
	Version   uint64         `json:"version"`
	Image     string         `json:"image"`
	Selector  string         `json:"selector,omitempty"`
	State     string         `json:"state"`
	Reason    string         `json:"reason,omitempty"`
	Wave      int            `json:"wave"`
	Waves     []WaveStatus   `json:"waves"`
	Counts    map[string]int `json:"counts"` // devices by job state, as now seen
	Params    ParamsView     `json:"params"`
	Lease     LeaseView      `json:"lease"`
	Created   time.Time      `json:"created"`
	Updated   time.Time      `json:"updated"`
	Devices   []JobStatus    `json:"devices"`
	Verified  bool           `json:"verified"` // both parts checked against the tenant's key
}

// WaveStatus is one wave (0 is the canary).
type WaveStatus struct {
	Index  int            `json:"index"`
	Size   int            `json:"size"`
	Counts map[string]int `json:"counts"`
}

// ParamsView is a rollout's settings as people write them.
type ParamsView struct {
	Canary      string `json:"canary"`
	Wave        string `json:"wave"`
	MaxFailures string `json:"max_failures"`
	Health      string `json:"health"`
	Timeout     string `json:"timeout"`
}

// LeaseView says who drives the rollout. Expires is by the holder's
// clock; Live is judged by this controller's: the lease's duration has not
// passed since it saw the lease (or its latest renewal) arrive.
type LeaseView struct {
	Holder  string        `json:"holder"`
	Term    uint64        `json:"term"`
	Expires time.Time     `json:"expires"`
	TTL     time.Duration `json:"ttl_ns"`
	Live    bool          `json:"live"`
}

// JobStatus is one device's job: the state the rollout recorded and the
// state as the device reports it now (a device pending when its wave
// closed shows SUCCEEDED once it has caught up).
type JobStatus struct {
	Device   string `json:"device"`
	Wave     int    `json:"wave"`
	State    string `json:"state"`    // as now seen
	Recorded string `json:"recorded"` // as the rollout recorded it
	Reason   string `json:"reason,omitempty"`
	From     uint64 `json:"from_version"`
	Running  uint64 `json:"running_version"` // 0: absent or unknown
	Health   string `json:"health,omitempty"`
	Online   bool   `json:"online"`
}

// Status builds r's status from what the devices report now.
func (f *Fleet) Status(r *Rollout, verified bool) RolloutStatus {
	now := f.now()
	f.mu.Lock()
	w, seen := f.leases[r.Tenant+"/"+r.ID]
	f.mu.Unlock()
	st := RolloutStatus{
		ID: r.ID, Tenant: r.Tenant, Container: r.Container, Version: r.Version, Image: r.Image, Selector: r.Selector,
		State: r.State, Reason: r.Reason, Wave: r.Wave, Counts: map[string]int{}, Created: r.Created, Updated: r.Updated,
		Params: ParamsView{Canary: r.Params.Canary.String(), Wave: r.Params.Wave.String(), MaxFailures: r.Params.MaxFailures.String(),
			Health: r.Params.Health.String(), Timeout: r.Params.Timeout.String()},
		Lease:    LeaseView{Holder: r.Lease.Holder, Term: r.Lease.Term, Expires: r.Lease.Until, TTL: r.Lease.TTL, Live: !r.Done() && (r.Lease.Holder == f.ClientID() || seen && w.lease == r.Lease && w.left(now) > 0)},
		Verified: verified,
	}
	for i, w := range r.Waves {
		st.Waves = append(st.Waves, WaveStatus{Index: i, Size: w.Size, Counts: map[string]int{}})
	}
	observe := f.observe(r.Tenant, r.Container)
	for _, j := range r.Jobs {
		js := JobStatus{Device: j.Device, Wave: j.Wave, State: j.State, Recorded: j.State, Reason: j.Reason, From: j.From}
		if obs, ok := observe(j.Device); ok {
			js.Online, js.Running, js.Health = obs.Online, obs.Version, obs.Health
			js.State = liveState(r, j, obs)
		}
		st.Devices = append(st.Devices, js)
		st.Counts[js.State]++
		st.Waves[j.Wave].Counts[js.State]++
	}
	return st
}

// liveState is a job's state given what its device reports now: devices
// catch up after their wave (or the rollout) is over.
func liveState(r *Rollout, j Job, obs Observation) string {
	onNew := obs.Version == r.Version && (obs.Image == "" || obs.Image == r.Image)
	switch j.State {
	case JobPending, JobInProgress:
		switch {
		case onNew && obs.Health == HealthHealthy:
			return JobSucceeded
		case onNew && obs.Health == HealthFailed:
			return JobFailed
		}
	case JobRollingBack:
		if obs.Seq >= j.RevertSeq && obs.Version == j.From && !onNew {
			return JobRolledBack
		}
	}
	return j.State
}

// Rollouts returns every rollout the view holds (watch the rollout
// filters first, see WatchRollouts), newest first; those that do not
// decode are skipped and counted in the second result.
func (f *Fleet) Rollouts() ([]*Rollout, int) {
	f.mu.Lock()
	raw := make([][]byte, 0, len(f.rollouts))
	for _, b := range f.rollouts {
		raw = append(raw, b)
	}
	f.mu.Unlock()
	var out []*Rollout
	bad := 0
	for _, b := range raw {
		r, err := OpenRollout(b, nil)
		if err != nil {
			bad++
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *Rollout) int { return b.Created.Compare(a.Created) })
	return out, bad
}

// RolloutFilter matches the rollouts of tenant ("" for every tenant).
func RolloutFilter(tenant string) string {
	if tenant == "" {
		return doc.Root + "/rollout/+/+"
	}
	return doc.RolloutFilter(tenant)
}

// FindRollout returns the rollout id (of tenant, or of any tenant when
// tenant is ""), checked against pub when pub is not nil. It watches the
// rollout's topics first.
func (f *Fleet) findRollout(id, tenant string, pub ed25519.PublicKey) (*Rollout, *sealed, error) {
	if err := doc.ValidID(id); err != nil {
		return nil, nil, fmt.Errorf("%w: rollout id: %w", ErrInput, err)
	}
	f.mu.Lock()
	var found []string
	for k := range f.rollouts {
		t, rid, _ := strings.Cut(k, "/")
		if rid == id && (tenant == "" || t == tenant) {
			found = append(found, k)
		}
	}
	var b []byte
	if len(found) == 1 {
		b = f.rollouts[found[0]]
	}
	f.mu.Unlock()
	switch {
	case len(found) == 0:
		return nil, nil, fmt.Errorf("%w: no rollout %s on the broker", ErrNotFound, id)
	case len(found) > 1:
		return nil, nil, fmt.Errorf("%w: rollout %s exists for several tenants (%s): name the tenant", ErrInput, id, strings.Join(found, ", "))
	}
	return openRollout(b, pub, DefaultParams().Lease)
}

// Rollout returns one rollout's status: the rollout id of tenant (any
// tenant when ""), checked against pub when given.
func (f *Fleet) Rollout(id, tenant string, pub ed25519.PublicKey) (RolloutStatus, error) {
	r, _, err := f.findRollout(id, tenant, pub)
	if err != nil {
		return RolloutStatus{}, err
	}
	return f.Status(r, pub != nil), nil
}

// Stats are the view's counters.
type Stats struct {
	Connected   bool   `json:"connected"`
	Connections uint64 `json:"connections"`
	Devices     int    `json:"devices"`
	Undecodable uint64 `json:"undecodable"` // messages on fleet topics that did not decode
	LastBad     string `json:"last_bad,omitempty"`
}

// Stats returns the view's counters.
func (f *Fleet) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Stats{Connected: f.cli.Conn() != nil, Connections: f.conns, Devices: len(f.status), Undecodable: f.bad, LastBad: f.badWhy}
}
