package sched

// Item is what an ordering policy sees of a ready or running activation.
type Item struct {
	Priority int   // the schedule's priority, 0 (lowest) .. 15
	Release  int64 // when it was released (runtime.Now ns)
	Seq      uint64
}

// Order is the scheduling policy: the order in which ready work runs and
// whether ready work takes the worker of a running activation. It is kept
// apart from the mechanism that suspends and resumes activations (the
// Scheduler and runtime.Budget), as Tock keeps its schedulers apart from
// its kernel loop: a device can choose another Order, the suspension
// mechanism stays the same.
type Order interface {
	// Before reports whether ready activation a runs before ready b.
	Before(a, b Item) bool
	// Preempts reports whether ready should take the worker of running
	// now; sliceOver says running has used up its time slice.
	Preempts(ready, running Item, sliceOver bool) bool
}

// PriorityRoundRobin is the default Order (SPEC section 5): higher
// priority first and preemptive, as on an RTOS; among equal priorities,
// earlier release first, and a running activation that used up its time
// slice gives way to ready work of its own priority (round-robin).
type PriorityRoundRobin struct{}

var _ Order = PriorityRoundRobin{}

func (PriorityRoundRobin) Before(a, b Item) bool {
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	if a.Release != b.Release {
		return a.Release < b.Release
	}
	return a.Seq < b.Seq
}

func (PriorityRoundRobin) Preempts(ready, running Item, sliceOver bool) bool {
	return ready.Priority > running.Priority || (sliceOver && ready.Priority == running.Priority)
}

// RunToCompletion orders like PriorityRoundRobin but never preempts: a
// running activation keeps its worker until it ends or its budget does
// (the scheduler of version 1; kept for comparison and for devices that
// want it).
type RunToCompletion struct{}

var _ Order = RunToCompletion{}

func (RunToCompletion) Before(a, b Item) bool           { return PriorityRoundRobin{}.Before(a, b) }
func (RunToCompletion) Preempts(_, _ Item, _ bool) bool { return false }
