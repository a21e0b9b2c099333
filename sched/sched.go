// Package sched decides when containers run: periodic, event and once
// triggers, priorities, N workers (one by default, like one MCU core),
// preemption, time slices, tenant CPU shares, the watchdog bounding each
// activation and the fault policy deciding what a fault leads to.
//
// Scheduling is preemptive (SPEC section 5): the mechanism here hands out
// workers ("slots") to activations, each activation on a goroutine of its
// own; at the checkpoints the runtimes reach (runtime.Budget) a running
// activation is asked to give its worker up when the Order policy says
// ready work should take it, and waits, memory and stack kept, until the
// policy gives it a worker again. Which work runs first is the Order's
// business (order.go), what a fault leads to the fault Policy's
// (policy.go), how much a tenant may use the shares' (share.go).
package sched

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
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

// Owned is implemented by tasks that belong to a tenant (for CPU shares).
type Owned interface {
	Owner() string
}

// Accounter is implemented by tasks that count how often they were
// preempted and how long they waited throttled.
type Accounter interface {
	Preempted()
	Throttled(d time.Duration)
}

// Options configure a Scheduler.
type Options struct {
	Workers  int       // default 1
	Policy   Policy    // what a fault leads to; default ManifestPolicy
	Order    Order     // which work runs first; default PriorityRoundRobin
	Watchdog *Watchdog // default a new one
	// Quantum is the time slice among equal priorities (1-10 ms; default
	// DefaultQuantum).
	Quantum time.Duration
	// Window is the scheduling window of tenant CPU shares (1 ms - 10 s;
	// default DefaultWindow).
	Window time.Duration
	// OnHalt is told when the scheduler stops scheduling a task by itself
	// (fault policy, or a finished `once` task). It runs on a worker.
	OnHalt func(id string, a Action, f *runtime.Fault)
	// OnFault, when set, is told of every fault and the action decided.
	// It runs on a worker.
	OnFault func(id string, f *runtime.Fault, a Action)
	// OnStart, when set, is told when an activation starts and how long
	// after its release (its lateness). It runs on the activation's
	// goroutine: it must be quick.
	OnStart func(id string, late time.Duration)
}

// Defaults and bounds of Options.
const (
	DefaultQuantum = 10 * time.Millisecond
	MinQuantum     = time.Millisecond
	MaxQuantum     = 10 * time.Millisecond
	DefaultWindow  = 100 * time.Millisecond
	MinWindow      = time.Millisecond
	MaxWindow      = 10 * time.Second
	MaxWorkers     = 256
)

// ErrInvalid is the class of refused options and shares.
var ErrInvalid = errors.New("invalid scheduler setting")

// Check reports options out of range (zero values take their defaults).
func (o Options) Check() error {
	switch {
	case o.Workers < 0 || o.Workers > MaxWorkers:
		return fmt.Errorf("%w: %d workers (1-%d)", ErrInvalid, o.Workers, MaxWorkers)
	case o.Quantum != 0 && (o.Quantum < MinQuantum || o.Quantum > MaxQuantum):
		return fmt.Errorf("%w: quantum %v is outside %v-%v", ErrInvalid, o.Quantum, MinQuantum, MaxQuantum)
	case o.Window != 0 && (o.Window < MinWindow || o.Window > MaxWindow):
		return fmt.Errorf("%w: window %v is outside %v-%v", ErrInvalid, o.Window, MinWindow, MaxWindow)
	}
	return nil
}

// Entry states.
const (
	stateIdle      = iota // no activation in progress, not ready
	stateReady            // in the ready queue: a fresh activation waits for a worker
	stateRunning          // an activation holds a worker
	stateSuspended        // preempted: in the ready queue, waits to resume
	stateParked           // its tenant is over its share: waits for the next window
	stateBlocked          // in a host call that waits; holds no worker
)

type entry struct {
	s      *Scheduler
	id     string
	t      Task
	owner  string
	tenant *tenant // nil: no CPU share
	budget runtime.Budget
	wake   chan struct{} // the activation's goroutine waits here when suspended

	next    int64 // next periodic release (runtime.Now ns)
	period  int64 // the period next was computed with
	release int64 // release time of the queued activation
	seq     uint64
	prio    int
	timerIx int // index in the timer heap, -1 when not in it
	heapIx  int // index in the ready heap, -1 when not in it

	state      int
	inProgress bool // an activation has started and not ended
	holdsSlot  bool
	flagged    bool          // asked to yield, not answered yet
	sliceRan   int64         // CPU ns used of the current time slice
	charged    int64         // CPU ns of the activation in progress charged to the tenant
	slice0     time.Duration // the first slice of the activation starting
	parkedAt   int64
	removed    bool
	idle       chan struct{} // closed when a removed entry stops running
}

func (e *entry) item() Item { return Item{Priority: e.prio, Release: e.release, Seq: e.seq} }

// Scheduler runs tasks on workers.
type Scheduler struct {
	opts  Options
	order Order

	mu      sync.Mutex
	ctx     context.Context // Run's; nil before Run
	tasks   map[string]*entry
	ready   readyHeap
	timers  timerHeap
	seq     uint64
	closed  bool
	wake    chan struct{}
	free    int      // free worker slots
	running []*entry // entries holding a slot
	idle    []*worker
	wg      sync.WaitGroup // worker goroutines
	tenants map[string]*tenant
}

type worker struct{ next chan *entry }

// New returns a scheduler; Run starts it. Options out of range take their
// defaults (see Options.Check).
func New(opts Options) *Scheduler {
	if opts.Workers <= 0 || opts.Workers > MaxWorkers {
		opts.Workers = 1
	}
	if opts.Policy == nil {
		opts.Policy = ManifestPolicy{}
	}
	if opts.Order == nil {
		opts.Order = PriorityRoundRobin{}
	}
	if opts.Watchdog == nil {
		opts.Watchdog = NewWatchdog()
	}
	if opts.Quantum < MinQuantum || opts.Quantum > MaxQuantum {
		opts.Quantum = DefaultQuantum
	}
	if opts.Window < MinWindow || opts.Window > MaxWindow {
		opts.Window = DefaultWindow
	}
	s := &Scheduler{opts: opts, order: opts.Order, tasks: map[string]*entry{}, wake: make(chan struct{}, 1),
		free: opts.Workers, tenants: map[string]*tenant{}}
	s.ready.order = opts.Order
	return s
}

// Watchdog returns the scheduler's watchdog.
func (s *Scheduler) Watchdog() *Watchdog { return s.opts.Watchdog }

// Workers is the number of workers (activations running at once).
func (s *Scheduler) Workers() int { return s.opts.Workers }

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
	e := &entry{s: s, id: id, t: t, timerIx: -1, heapIx: -1, wake: make(chan struct{}, 1)}
	e.budget.SetGate(e)
	if o, ok := t.(Owned); ok {
		e.owner = o.Owner()
		e.tenant = s.tenants[e.owner]
	}
	s.tasks[id] = e
	now := runtime.Now()
	switch t.Schedule().Trigger {
	case meta.Periodic:
		e.next, e.period = now, int64(t.Schedule().Period)
		heap.Push(&s.timers, e)
		s.poke()
	case meta.Once:
		s.enqueueLocked(e, now)
	case meta.Event:
		if t.Ready() {
			s.enqueueLocked(e, now)
		}
	}
	return nil
}

// Remove stops scheduling id. The returned channel is closed once no
// activation of it is in progress. A running activation ends on its own
// (within its budget); one that is suspended, throttled or waiting in a
// host call is stopped at once (it ends at its next checkpoint, which is
// not a fault).
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
	if !e.inProgress {
		close(done)
		return done
	}
	e.idle = done
	switch e.state {
	case stateSuspended, stateParked, stateBlocked:
		e.budget.Stop()
		if e.state != stateBlocked {
			e.state = stateRunning // without a slot, only to its next checkpoint
			e.wake <- struct{}{}
		}
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
	if e.heapIx >= 0 {
		heap.Remove(&s.ready, e.heapIx)
	}
	if e.state == stateReady || (e.state == stateParked && !e.inProgress) {
		e.state = stateIdle
	}
}

// Release asks for an activation of an event task (a message arrived); it
// runs when the task has a message waiting (Ready). It never blocks for
// long and may be called from any goroutine.
func (s *Scheduler) Release(id string) {
	s.mu.Lock()
	// While the task runs, a release is not lost: the worker asks Ready()
	// when the activation ends (the message is still in the inbox).
	if e, ok := s.tasks[id]; ok && e.state == stateIdle && !e.inProgress && e.t.Ready() {
		s.enqueueLocked(e, runtime.Now())
	}
	s.mu.Unlock()
}

// Reschedule re-reads a task's schedule after a live metadata change: the
// period applies from the next release, the budget from the next
// activation, the priority at once (also to an activation in progress,
// which may then be preempted or resumed accordingly).
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
	if e.prio != sc.Priority && (e.state != stateIdle || e.inProgress) {
		e.prio = sc.Priority
		if e.heapIx >= 0 {
			heap.Fix(&s.ready, e.heapIx)
		}
		s.dispatchLocked()
	}
	s.poke()
}

// enqueueLocked makes e ready for a fresh activation.
func (s *Scheduler) enqueueLocked(e *entry, release int64) {
	s.seq++
	e.release, e.seq, e.prio = release, s.seq, e.t.Schedule().Priority
	e.state = stateReady
	s.pushLocked(e)
	s.dispatchLocked()
}

func (s *Scheduler) pushLocked(e *entry) { heap.Push(&s.ready, e) }

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run schedules until ctx ends, then stops the activations in progress
// (the running ones at their next checkpoint, the suspended ones at once)
// and returns when all have ended.
func (s *Scheduler) Run(ctx context.Context) {
	s.mu.Lock()
	s.ctx = ctx
	s.dispatchLocked()
	s.mu.Unlock()
	s.timerLoop(ctx)
	s.mu.Lock()
	s.closed = true
	for _, e := range s.tasks {
		if !e.inProgress {
			continue
		}
		e.budget.Stop()
		if e.state == stateSuspended || e.state == stateParked {
			if e.heapIx >= 0 {
				heap.Remove(&s.ready, e.heapIx)
			}
			e.state = stateRunning
			e.wake <- struct{}{}
		}
	}
	for _, w := range s.idle {
		w.next <- nil
	}
	s.idle = nil
	s.mu.Unlock()
	s.opts.Watchdog.StopAll()
	s.wg.Wait()
}

// fineWindow is how long before a release or window the timer loop
// stops waiting on Go's timer (millisecond resolution) and sleeps the rest
// in fineSleep: Go's timer's error and some slack for a loaded machine.
const fineWindow = 2 * time.Millisecond

// timerLoop releases periodic tasks when they are due and starts every
// scheduling window while a tenant has a CPU share.
func (s *Scheduler) timerLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	window := int64(s.opts.Window)
	nextWindow := int64(0)
	for {
		s.mu.Lock()
		now := runtime.Now()
		for len(s.timers) > 0 && s.timers[0].next <= now {
			e := s.timers[0]
			if e.state != stateIdle || e.inProgress {
				e.t.Missed()
			} else {
				s.enqueueLocked(e, e.next)
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
		if len(s.tenants) > 0 {
			if now >= nextWindow {
				if nextWindow != 0 {
					s.newWindowLocked(now)
				}
				nextWindow = now - now%window + window
			}
			wait = min(wait, time.Duration(nextWindow-now))
		} else {
			nextWindow = 0
		}
		s.mu.Unlock()
		if wait <= fineWindow {
			if ctx.Err() != nil {
				return
			}
			// The last stretch before a release, at the kernel's
			// resolution (finesleep_linux.go); a poke meanwhile waits
			// in s.wake for the next round.
			fineSleep(wait)
			continue
		}
		// Go's timer is late by up to a millisecond: it wakes fineWindow
		// early, and the rest is slept finely.
		timer.Reset(wait - fineWindow)
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-timer.C:
		}
	}
}

// dispatchLocked gives free workers to the ready work in the Order's
// order, then asks running activations to yield where ready work should
// take their place.
func (s *Scheduler) dispatchLocked() {
	if s.ctx == nil || s.closed {
		return
	}
	now := runtime.Now()
	for s.free > 0 && s.ready.Len() > 0 {
		e := heap.Pop(&s.ready).(*entry)
		if e.tenant != nil && e.tenant.over {
			s.parkLocked(e, now)
			continue
		}
		s.takeSlotLocked(e)
		if e.inProgress { // suspended: it resumes on its own goroutine
			e.wake <- struct{}{}
			continue
		}
		s.startLocked(e)
	}
	s.preemptLocked(now)
}

// takeSlotLocked gives e a worker.
func (s *Scheduler) takeSlotLocked(e *entry) {
	s.free--
	e.holdsSlot = true
	e.state = stateRunning
	s.running = append(s.running, e)
	if e.tenant != nil {
		e.tenant.running++
	}
	if !e.inProgress { // a fresh activation
		e.slice0 = s.sliceLocked(e)
		e.sliceRan, e.charged = 0, 0
	}
}

// releaseSlotLocked takes e's worker back.
func (s *Scheduler) releaseSlotLocked(e *entry) {
	if !e.holdsSlot {
		return
	}
	e.holdsSlot = false
	s.free++
	for i, r := range s.running {
		if r == e {
			s.running[i] = s.running[len(s.running)-1]
			s.running[len(s.running)-1] = nil
			s.running = s.running[:len(s.running)-1]
			break
		}
	}
	if e.tenant != nil {
		e.tenant.running--
	}
}

// startLocked starts a fresh activation of e, which holds a slot, on an
// idle worker goroutine or a new one.
func (s *Scheduler) startLocked(e *entry) {
	e.inProgress = true
	if n := len(s.idle); n > 0 {
		w := s.idle[n-1]
		s.idle = s.idle[:n-1]
		w.next <- e
		return
	}
	s.wg.Add(1)
	go s.work(&worker{next: make(chan *entry, 1)}, e)
}

// preemptLocked asks the running activation that the Order ranks last to
// yield when the first ready one should take its worker. While asked
// activations have not answered, it asks no more of them than there is
// ready work.
func (s *Scheduler) preemptLocked(now int64) {
	if s.free > 0 {
		return
	}
	for s.ready.Len() > 0 {
		top := s.ready.es[0]
		if top.tenant != nil && top.tenant.over {
			heap.Pop(&s.ready)
			s.parkLocked(top, now)
			continue
		}
		pending := 0
		var victim *entry
		for _, r := range s.running {
			if r.flagged {
				pending++
				continue
			}
			if s.order.Preempts(top.item(), r.item(), false) && (victim == nil || s.order.Before(victim.item(), r.item())) {
				victim = r
			}
		}
		if victim != nil && pending < s.ready.Len() {
			victim.flagged = true
			victim.budget.RequestYield()
		}
		return
	}
}

// work is a worker goroutine: it runs e, then whatever the scheduler hands
// it, and ends when it has been idle while enough others are.
func (s *Scheduler) work(w *worker, e *entry) {
	defer s.wg.Done()
	for e != nil {
		if e = s.activate(e); e != nil {
			continue
		}
		s.mu.Lock()
		if s.closed || len(s.idle) >= s.opts.Workers {
			s.mu.Unlock()
			return
		}
		s.idle = append(s.idle, w)
		s.mu.Unlock()
		e = <-w.next
	}
}

// nextLocked takes the first ready fresh activation for the calling
// worker when a slot is free for it (sparing a goroutine switch), after
// dispatching everything else.
func (s *Scheduler) nextLocked() *entry {
	if s.ctx == nil || s.closed {
		return nil
	}
	now := runtime.Now()
	for s.free > 0 && s.ready.Len() > 0 {
		e := s.ready.es[0]
		if e.tenant != nil && e.tenant.over {
			heap.Pop(&s.ready)
			s.parkLocked(e, now)
			continue
		}
		if e.inProgress {
			break
		}
		heap.Pop(&s.ready)
		s.takeSlotLocked(e)
		e.inProgress = true
		s.dispatchLocked()
		return e
	}
	s.dispatchLocked()
	return nil
}

// activate runs one activation of e, which holds a slot, records its end
// and returns the next fresh activation for the calling worker (nil: none).
func (s *Scheduler) activate(e *entry) *entry {
	wd := s.opts.Watchdog
	sc := e.t.Schedule()
	if s.opts.OnStart != nil {
		s.opts.OnStart(e.id, time.Duration(runtime.Now()-e.release))
	}
	wd.Begin(&e.budget, sc.Budget)
	e.budget.Grant(e.slice0)
	err := e.t.Activate(s.ctx, &e.budget)
	var f *runtime.Fault
	errors.As(err, &f)
	stopped := e.budget.Stopped()
	wd.End(&e.budget, f != nil && f.Kind == runtime.FaultBudget && !stopped)

	action := Continue
	switch {
	case f != nil:
		s.mu.Lock()
		removed := e.removed || s.closed
		s.mu.Unlock()
		if stopped && removed {
			break // cut short by removal or shutdown: not a fault
		}
		action = s.opts.Policy.OnFault(e.t.Schedule(), e.t.ConsecutiveFaults(), f)
		if s.opts.OnFault != nil {
			s.opts.OnFault(e.id, f, action)
		}
	case sc.Trigger == meta.Once:
		action = Done
	}

	s.mu.Lock()
	s.chargeLocked(e, e.budget.CPU()-time.Duration(e.charged))
	e.inProgress = false
	e.flagged = false
	e.budget.ClearYield()
	s.releaseSlotLocked(e)
	e.state = stateIdle
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
		s.seq++
		e.release, e.seq, e.prio, e.state = runtime.Now(), s.seq, e.t.Schedule().Priority, stateReady
		s.pushLocked(e)
	case trig == meta.Once && f != nil && action == Continue:
		s.seq++
		e.release, e.seq, e.prio, e.state = runtime.Now(), s.seq, e.t.Schedule().Priority, stateReady
		s.pushLocked(e) // the restart the policy chose
	}
	next := s.nextLocked()
	s.mu.Unlock()
	if !removed && action != Continue && s.opts.OnHalt != nil {
		s.opts.OnHalt(e.id, action, f)
	}
	return next
}

// readyHeap orders ready activations by the Order.
type readyHeap struct {
	order Order
	es    []*entry
}

func (h *readyHeap) Len() int           { return len(h.es) }
func (h *readyHeap) Less(i, j int) bool { return h.order.Before(h.es[i].item(), h.es[j].item()) }
func (h *readyHeap) Swap(i, j int) {
	h.es[i], h.es[j] = h.es[j], h.es[i]
	h.es[i].heapIx, h.es[j].heapIx = i, j
}
func (h *readyHeap) Push(x any) {
	e := x.(*entry)
	e.heapIx = len(h.es)
	h.es = append(h.es, e)
}
func (h *readyHeap) Pop() any {
	old := h.es
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.heapIx = -1
	h.es = old[:len(old)-1]
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
