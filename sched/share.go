package sched

import (
	"fmt"
	"time"

	"github.com/tinycontainer/tinycontainer/runtime"
)

// tenant is one tenant's CPU share: what all its activations together may
// use per scheduling window, and what they used in the current one.
type tenant struct {
	name    string
	percent int
	cap     int64 // CPU ns per window (percent of window x workers)
	used    int64 // CPU ns used in the current window
	over    bool  // used >= cap: its activations wait for the next window
	running int   // its activations holding a worker
	parked  []*entry
}

// SetShare caps what tenant's tasks together use to percent % of the
// device's CPU capacity (window x workers) in every scheduling window;
// percent 0 removes the cap. Past the cap the tenant's activations wait
// for the next window (throttled, not faulted). Values outside 0-100 are
// refused.
func (s *Scheduler) SetShare(name string, percent int) error {
	if percent < 0 || percent > 100 {
		return fmt.Errorf("%w: CPU share %d%% is outside 1-100%%", ErrInvalid, percent)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenants[name]
	if percent == 0 || percent == 100 {
		if t == nil {
			return nil
		}
		delete(s.tenants, name)
		for _, e := range s.tasks {
			if e.tenant == t {
				e.tenant = nil
			}
		}
		s.unparkLocked(t, runtime.Now())
		s.dispatchLocked()
		s.poke()
		return nil
	}
	if t == nil {
		t = &tenant{name: name}
		s.tenants[name] = t
		for _, e := range s.tasks {
			if e.owner == name {
				e.tenant = t
				if e.holdsSlot {
					t.running++
				}
			}
		}
	}
	t.percent = percent
	t.cap = int64(percent) * int64(s.opts.Window) * int64(s.opts.Workers) / 100
	s.poke() // the window timer starts with the first cap
	return nil
}

// Share is the CPU share set for tenant (0: none).
func (s *Scheduler) Share(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tenants[name]; t != nil {
		return t.percent
	}
	return 0
}

// chargeLocked adds CPU time an activation of e used to its tenant.
func (s *Scheduler) chargeLocked(e *entry, ran time.Duration) {
	t := e.tenant
	if t == nil || ran <= 0 {
		return
	}
	e.charged += int64(ran)
	t.used += int64(ran)
	if t.used >= t.cap {
		t.over = true
	}
}

// parkLocked keeps e (ready, or an activation in progress) out of the
// ready queue until its tenant's next window.
func (s *Scheduler) parkLocked(e *entry, now int64) {
	e.state = stateParked
	e.parkedAt = now
	e.tenant.parked = append(e.tenant.parked, e)
}

// unparkLocked makes t's parked activations ready again, counting the time
// they spent throttled.
func (s *Scheduler) unparkLocked(t *tenant, now int64) {
	t.used, t.over = 0, false
	for _, e := range t.parked {
		if e.removed || e.state != stateParked {
			continue
		}
		if a, ok := e.t.(Accounter); ok {
			a.Throttled(time.Duration(now - e.parkedAt))
		}
		if e.inProgress {
			e.state = stateSuspended
		} else {
			e.state = stateReady
		}
		s.pushLocked(e)
	}
	clear(t.parked)
	t.parked = t.parked[:0]
}

// newWindowLocked starts a scheduling window: every tenant's use starts
// from zero and throttled work is ready again.
func (s *Scheduler) newWindowLocked(now int64) {
	for _, t := range s.tenants {
		s.unparkLocked(t, now)
	}
	s.dispatchLocked()
}

// sliceLocked is how much CPU time e may use before the scheduler wants to
// hear from it: its quantum, less when its tenant's share is nearly used
// (shared among the tenant's running activations).
func (s *Scheduler) sliceLocked(e *entry) time.Duration {
	q := s.opts.Quantum
	if t := e.tenant; t != nil {
		left := (t.cap - t.used) / int64(max(t.running, 1))
		q = min(q, max(time.Duration(left), minSlice))
	}
	return q
}

// minSlice is the shortest slice granted: below it the bookkeeping would
// cost more than the precision gains.
const minSlice = 50 * time.Microsecond
