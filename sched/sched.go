// Package sched decides when containers run: periodic, event and once
// triggers, priorities, N workers (one by default, like one MCU core), the
// watchdog bounding each activation and the fault policy deciding what a
// fault leads to. Mechanism, watchdog and policy are separate pieces.
//
// Scheduling is non-preemptive by priority: when a worker is free it takes
// the ready activation of highest priority (earliest release first among
// equals); a running activation is never interrupted except by its budget.
package sched

import (
	"container/heap"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// Task is what the scheduler runs (a container).
type Task interface {
	Schedule() meta.Schedule
	// Activate runs one activation under b; a *runtime.Fault error is a fault.
	Activate(ctx context.Context, b *runtime.Budget) error
	// Ready reports whether an event task has a message waiting.
	Ready() bool
	// Missed counts a release that found the previous activation unfinished.
	Missed()
	// ConsecutiveFaults is the number of faults since the last clean run.
	ConsecutiveFaults() int
}

// Options configure a Scheduler.
type Options struct {
	Workers  int       // default 1
	Policy   Policy    // default ManifestPolicy
	Watchdog *Watchdog // default a new one
	// OnHalt is told when the scheduler stops scheduling a task by itself
	// (fault policy, or a finished `once` task). It runs on a worker.
	OnHalt func(id string, a Action, f *runtime.Fault)
	// OnFault, when set, is told of every fault and the action decided.
	// It runs on a worker.
	OnFault func(id string, f *runtime.Fault, a Action)
}

type entry struct {
	id      string
	t       Task
	budget  runtime.Budget
	next    int64 // next periodic release (runtime.Now ns)
	period  int64 // the period next was computed with
	release int64 // release time of the queued activation
	seq     uint64
	prio    int
	timerIx int // index in the timer heap, -1 when not in it
	queued  bool
	running bool
	removed bool
	idle    chan struct{} // closed when a removed entry stops running
}

// Scheduler runs tasks on workers.
type Scheduler struct {
	opts Options

	mu     sync.Mutex
	cond   *sync.Cond
	tasks  map[string]*entry
	ready  readyHeap
	timers timerHeap
	seq    uint64
	closed bool
	wake   chan struct{}
}

// New returns a scheduler; Run starts it.
func New(opts Options) *Scheduler {
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	if opts.Policy == nil {
		opts.Policy = ManifestPolicy{}
	}
	if opts.Watchdog == nil {
		opts.Watchdog = NewWatchdog()
	}
	s := &Scheduler{opts: opts, tasks: map[string]*entry{}, wake: make(chan struct{}, 1)}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// Watchdog returns the scheduler's watchdog.
func (s *Scheduler) Watchdog() *Watchdog { return s.opts.Watchdog }

// ErrExists is returned by Add for an id already scheduled.
var ErrExists = errors.New("already scheduled")

// Add starts scheduling t under id: a periodic task is released now and
// then every period, a once task now, an event task on Release.
func (s *Scheduler) Add(id string, t Task) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tasks[id]; ok {
		return ErrExists
	}
	e := &entry{id: id, t: t, timerIx: -1}
	s.tasks[id] = e
	now := runtime.Now()
	switch t.Schedule().Trigger {
	case meta.Periodic:
		e.next, e.period = now, int64(t.Schedule().Period)
		heap.Push(&s.timers, e)
		s.poke()
	case meta.Once:
		s.enqueue(e, now)
	case meta.Event:
		if t.Ready() {
			s.enqueue(e, now)
		}
	}
	return nil
}

// Remove stops scheduling id. The returned channel is closed once no
// activation of it is running.
func (s *Scheduler) Remove(id string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	done := make(chan struct{})
	e, ok := s.tasks[id]
	if !ok {
		close(done)
		return done
	}
	s.drop(e)
	if e.running {
		e.idle = done
	} else {
		close(done)
	}
	return done
}

// drop takes e out of every queue; mu held.
func (s *Scheduler) drop(e *entry) {
	e.removed = true
	delete(s.tasks, e.id)
	if e.timerIx >= 0 {
		heap.Remove(&s.timers, e.timerIx)
	}
	if e.queued {
		for i, r := range s.ready {
			if r == e {
				heap.Remove(&s.ready, i)
				break
			}
		}
		e.queued = false
	}
}

// Release asks for an activation of an event task (a message arrived); it
// runs when the task has a message waiting (Ready). It never blocks for
// long and may be called from any goroutine.
func (s *Scheduler) Release(id string) {
	s.mu.Lock()
	// While the task runs, a release is not lost: the worker asks Ready()
	// when the activation ends (the message is still in the inbox).
	if e, ok := s.tasks[id]; ok && !e.queued && !e.running && e.t.Ready() {
		s.enqueue(e, runtime.Now())
	}
	s.mu.Unlock()
}

// Reschedule re-reads a task's schedule after a live metadata change; the
// change applies from the next release.
func (s *Scheduler) Reschedule(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.tasks[id]
	if !ok {
		return
	}
	sc := e.t.Schedule()
	periodic := sc.Trigger == meta.Periodic
	switch {
	case periodic && e.timerIx < 0:
		e.next = runtime.Now()
		heap.Push(&s.timers, e)
	case periodic: // the next release follows the last one by the new period
		e.next = max(e.next-e.period+int64(sc.Period), runtime.Now())
		e.period = int64(sc.Period)
		heap.Fix(&s.timers, e.timerIx)
	case e.timerIx >= 0:
		heap.Remove(&s.timers, e.timerIx)
	}
	s.poke()
}

// enqueue makes e ready; mu held.
func (s *Scheduler) enqueue(e *entry, release int64) {
	s.seq++
	e.queued, e.release, e.seq, e.prio = true, release, s.seq, e.t.Schedule().Priority
	heap.Push(&s.ready, e)
	s.cond.Signal()
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run schedules until ctx ends, then waits for running activations (which
// the watchdog stops at their next checkpoint) and returns.
func (s *Scheduler) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range s.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.worker(ctx)
		}()
	}
	s.dispatch(ctx)
	s.mu.Lock()
	s.closed = true
	s.cond.Broadcast()
	s.mu.Unlock()
	s.opts.Watchdog.StopAll()
	wg.Wait()
}

// dispatch releases periodic tasks when they are due.
func (s *Scheduler) dispatch(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		now := runtime.Now()
		for len(s.timers) > 0 && s.timers[0].next <= now {
			e := s.timers[0]
			if e.queued || e.running {
				e.t.Missed()
			} else {
				s.enqueue(e, e.next)
			}
			period := int64(e.t.Schedule().Period)
			if period <= 0 {
				period = int64(time.Second)
			}
			e.next += period
			e.period = period
			if e.next <= now { // fell behind by whole periods: skip them, counted
				k := (now-e.next)/period + 1
				for range min(k, 1000) {
					e.t.Missed()
				}
				e.next += k * period
			}
			heap.Fix(&s.timers, 0)
		}
		wait := time.Hour
		if len(s.timers) > 0 {
			wait = time.Duration(s.timers[0].next - now)
		}
		s.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-timer.C:
		}
	}
}

func (s *Scheduler) worker(ctx context.Context) {
	wd := s.opts.Watchdog
	for {
		s.mu.Lock()
		for len(s.ready) == 0 && !s.closed {
			s.cond.Wait()
		}
		if s.closed {
			s.mu.Unlock()
			return
		}
		e := heap.Pop(&s.ready).(*entry)
		e.queued, e.running = false, true
		s.mu.Unlock()

		sc := e.t.Schedule()
		wd.Begin(&e.budget, sc.Budget)
		err := e.t.Activate(ctx, &e.budget)
		var f *runtime.Fault
		errors.As(err, &f)
		wd.End(&e.budget, f != nil && f.Kind == runtime.FaultBudget)

		action := Continue
		if f != nil {
			action = s.opts.Policy.OnFault(e.t.Schedule(), e.t.ConsecutiveFaults(), f)
			if s.opts.OnFault != nil {
				s.opts.OnFault(e.id, f, action)
			}
		} else if sc.Trigger == meta.Once {
			action = Done
		}

		s.mu.Lock()
		e.running = false
		removed := e.removed
		if !removed && action != Continue {
			s.drop(e)
		}
		if removed && e.idle != nil {
			close(e.idle)
		}
		switch trig := e.t.Schedule().Trigger; {
		case e.removed || s.closed:
		case trig == meta.Event && e.t.Ready():
			s.enqueue(e, runtime.Now())
		case trig == meta.Once && f != nil && action == Continue:
			s.enqueue(e, runtime.Now()) // the restart the policy chose
		}
		s.mu.Unlock()
		if !removed && action != Continue && s.opts.OnHalt != nil {
			s.opts.OnHalt(e.id, action, f)
		}
	}
}

// readyHeap orders ready activations: higher priority, then earlier
// release, then first come.
type readyHeap []*entry

func (h readyHeap) Len() int { return len(h) }
func (h readyHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if a.prio != b.prio {
		return a.prio > b.prio
	}
	if a.release != b.release {
		return a.release < b.release
	}
	return a.seq < b.seq
}
func (h readyHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *readyHeap) Push(x any)   { *h = append(*h, x.(*entry)) }
func (h *readyHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

// timerHeap orders periodic tasks by next release.
type timerHeap []*entry

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].next < h[j].next }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].timerIx, h[j].timerIx = i, j
}
func (h *timerHeap) Push(x any) {
	e := x.(*entry)
	e.timerIx = len(*h)
	*h = append(*h, e)
}
func (h *timerHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.timerIx = -1
	*h = old[:len(old)-1]
	return e
}
