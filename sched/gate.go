package sched

import (
	"time"

	"github.com/tinycontainer/tinycontainer/runtime"
)

// The scheduler's side of the suspension mechanism: an entry is the Gate
// of its budget, called from its activation's goroutine at checkpoints
// (runtime.Budget). The Order decides; these functions only carry it out.

var _ runtime.Gate = (*entry)(nil)

// Checkpoint answers an activation that was asked to yield or used up its
// slice: it goes on, or gives its worker up (suspended by ready work the
// Order ranks first, or throttled by its tenant's share) and waits.
func (e *entry) Checkpoint(b *runtime.Budget, ran time.Duration) (time.Duration, <-chan struct{}) {
	s := e.s
	s.mu.Lock()
	defer s.mu.Unlock()
	b.ClearYield()
	e.flagged = false
	s.chargeLocked(e, ran)
	e.sliceRan += int64(ran)
	if e.removed || s.closed || !e.holdsSlot {
		return 0, nil // it is stopped or ends soon: no more waiting
	}
	now := runtime.Now()
	sliceOver := e.sliceRan >= int64(s.opts.Quantum)
	if sliceOver {
		e.sliceRan = 0
	}
	switch {
	case e.tenant != nil && e.tenant.over:
		s.releaseSlotLocked(e)
		s.parkLocked(e, now)
		s.dispatchLocked()
		return s.opts.Quantum, e.wake
	case s.ready.Len() > 0 && s.order.Preempts(s.ready.es[0].item(), e.item(), sliceOver):
		if sliceOver && s.ready.es[0].prio == e.prio {
			// its turn is over: behind the work of its priority
			s.seq++
			e.release, e.seq = now, s.seq
		}
		// Counted before its worker goes to the work that preempts it,
		// which may otherwise run (and end) before the count is made.
		if a, ok := e.t.(Accounter); ok {
			a.Preempted()
		}
		s.releaseSlotLocked(e)
		e.state = stateSuspended
		s.pushLocked(e)
		s.dispatchLocked()
		return s.opts.Quantum, e.wake
	}
	return s.sliceLocked(e), nil
}

// Block gives the worker of an activation that waits in a host call to
// other ready work.
func (e *entry) Block(_ *runtime.Budget, ran time.Duration) {
	s := e.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chargeLocked(e, ran)
	e.sliceRan += int64(ran)
	if !e.holdsSlot {
		return
	}
	e.flagged = false
	e.budget.ClearYield()
	s.releaseSlotLocked(e)
	e.state = stateBlocked
	s.dispatchLocked()
}

// Unblock finds the activation a worker when its host call is done: at
// once when one is free and no ready work ranks first, else it waits in
// the ready queue like a suspended activation.
func (e *entry) Unblock(*runtime.Budget) <-chan struct{} {
	s := e.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.removed || s.closed || e.state != stateBlocked {
		if e.state == stateBlocked {
			e.state = stateRunning // stopped: only to its next checkpoint
		}
		return nil
	}
	if s.free > 0 && (s.ready.Len() == 0 || !s.order.Before(s.ready.es[0].item(), e.item())) {
		s.takeSlotLocked(e)
		return nil
	}
	e.state = stateSuspended
	s.pushLocked(e)
	s.dispatchLocked()
	return e.wake
}
