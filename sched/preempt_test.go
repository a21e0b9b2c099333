package sched

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// spinTask computes until told to stop, reaching a checkpoint every few
// microseconds of work as a runtime's guest would. It checks that it never
// runs twice at once and counts what the scheduler tells it.
type spinTask struct {
	name  string
	owner string
	mu    sync.Mutex
	sched meta.Schedule
	// work is the iterations of one activation (0: until stop).
	work        int
	stop        atomic.Bool
	inside      atomic.Int32 // activations in progress (must stay <= 1)
	overlap     atomic.Bool
	activations atomic.Int64
	preempted   atomic.Int64
	throttled   atomic.Int64 // ns
	throttles   atomic.Int64
	faults      atomic.Int64
	stopped     atomic.Int64 // activations cut short by Budget.Stop
	checks      atomic.Int64
	used        atomic.Int64 // CPU ns charged, all activations
	overrun     atomic.Int64 // worst CPU ns past the budget
	// measure: the activation keeps its OS thread and records in gap the
	// worst CPU ns between the returns of two consecutive checkpoints.
	measure bool
	gap     atomic.Int64
	atStart func() // called as each activation starts
	exec    *atomic.Int32
	workers int32
	tooMany *atomic.Bool
	sink    uint64
}

func (f *spinTask) Schedule() meta.Schedule {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sched
}

func (f *spinTask) setSchedule(s meta.Schedule) {
	f.mu.Lock()
	f.sched = s
	f.mu.Unlock()
}

func (f *spinTask) enter() {
	if f.exec != nil && f.exec.Add(1) > f.workers {
		f.tooMany.Store(true)
	}
}

func (f *spinTask) leave() {
	if f.exec != nil {
		f.exec.Add(-1)
	}
}

func (f *spinTask) Activate(_ context.Context, b *runtime.Budget) (err error) {
	if f.inside.Add(1) > 1 {
		f.overlap.Store(true)
	}
	defer f.inside.Add(-1)
	if f.atStart != nil {
		f.atStart()
	}
	f.activations.Add(1)
	b.Begin()
	f.enter()
	defer func() {
		b.End()
		f.used.Add(int64(b.Used()))
		if o := int64(b.Overrun()); o > f.overrun.Load() {
			f.overrun.Store(o)
		}
		if err != nil {
			if b.Stopped() {
				f.stopped.Add(1)
			} else {
				f.faults.Add(1)
			}
		}
	}()
	var last time.Duration
	if f.measure {
		goruntime.LockOSThread()
		defer goruntime.UnlockOSThread()
		last, _ = runtime.ThreadCPU()
	}
	x := f.sink
	for i := 0; f.work == 0 || i < f.work; i++ {
		for range 200 { // a few microseconds between checkpoints
			x = x*6364136223846793005 + 1442695040888963407
		}
		f.leave()
		f.checks.Add(1)
		stop := b.Checkpoint()
		if c, ok := runtime.ThreadCPU(); ok && f.measure {
			if g := int64(c - last); g > f.gap.Load() {
				f.gap.Store(g)
			}
			last = c
		}
		if stop {
			f.sink = x
			return &runtime.Fault{Kind: runtime.FaultBudget, Err: runtime.ErrBudget}
		}
		f.enter()
		if f.stop.Load() {
			break
		}
	}
	f.sink = x
	f.leave()
	return nil
}

func (f *spinTask) Ready() bool            { return false }
func (f *spinTask) Missed()                {}
func (f *spinTask) ConsecutiveFaults() int { return 0 }
func (f *spinTask) Owner() string          { return f.owner }
func (f *spinTask) Preempted()             { f.preempted.Add(1) }
func (f *spinTask) Throttled(d time.Duration) {
	f.throttled.Add(int64(d))
	f.throttles.Add(1)
}

func once(prio int, budget time.Duration) meta.Schedule {
	return meta.Schedule{Trigger: meta.Once, Priority: prio, Budget: budget, OnFault: meta.Stop}
}

// A higher-priority activation takes the only worker from a lower one,
// which is suspended (not faulted) and resumes afterwards. The preemption
// is counted before the higher one starts (it was counted after the worker
// was handed over: a short activation could end first, as under qemu-user).
func TestPreemptionOnOneWorker(t *testing.T) {
	s := start(t, Options{})
	low := &spinTask{name: "low", sched: once(1, 10*time.Second)}
	s.Add("low", low)
	eventually(t, "low to run", func() bool { return low.inside.Load() == 1 })
	var countedFirst atomic.Int64
	high := &spinTask{name: "high", sched: once(9, 10*time.Second), work: 100,
		atStart: func() { countedFirst.Store(low.preempted.Load()) }}
	s.Add("high", high)
	eventually(t, "high to finish", func() bool { return high.activations.Load() == 1 && high.inside.Load() == 0 })
	if countedFirst.Load() != 1 {
		t.Fatalf("low's preemption counted %d times when high started; want 1", countedFirst.Load())
	}
	if low.inside.Load() != 1 || low.preempted.Load() != 1 {
		t.Fatalf("low: in progress %d, preempted %d; want suspended once", low.inside.Load(), low.preempted.Load())
	}
	low.stop.Store(true)
	eventually(t, "low to finish", func() bool { return low.inside.Load() == 0 })
	if low.faults.Load() != 0 || low.stopped.Load() != 0 || low.activations.Load() != 1 {
		t.Fatalf("low: %d faults, %d stopped, %d activations", low.faults.Load(), low.stopped.Load(), low.activations.Load())
	}
}

// Equal priorities share the worker in time slices (round-robin).
func TestRoundRobinAmongEquals(t *testing.T) {
	s := start(t, Options{Quantum: time.Millisecond})
	a := &spinTask{name: "a", sched: once(5, 10*time.Second)}
	b := &spinTask{name: "b", sched: once(5, 10*time.Second)}
	s.Add("a", a)
	s.Add("b", b)
	eventually(t, "both to take turns", func() bool { return a.preempted.Load() >= 3 && b.preempted.Load() >= 3 })
	if a.overlap.Load() || b.overlap.Load() {
		t.Fatal("an activation ran twice at once")
	}
	a.stop.Store(true)
	b.stop.Store(true)
	eventually(t, "both to finish", func() bool { return a.inside.Load() == 0 && b.inside.Load() == 0 })
	if a.faults.Load()+b.faults.Load() != 0 {
		t.Fatal("round-robin faulted an activation")
	}
}

// A higher priority is never round-robined with a lower one: the slice of
// a lone high-priority activation ends without a preemption.
func TestQuantumDoesNotYieldToLowerPriority(t *testing.T) {
	s := start(t, Options{Quantum: time.Millisecond})
	high := &spinTask{name: "high", sched: once(9, 10*time.Second)}
	s.Add("high", high)
	eventually(t, "high to run", func() bool { return high.inside.Load() == 1 })
	low := &spinTask{name: "low", sched: once(1, 10*time.Second), work: 10}
	s.Add("low", low)
	// ~0.2 µs of work per checkpoint: several 1 ms slices.
	eventually(t, "high to use a few slices", func() bool { return high.checks.Load() > 50000 })
	if low.activations.Load() != 0 || high.preempted.Load() != 0 {
		t.Fatalf("low ran %d times, high preempted %d times", low.activations.Load(), high.preempted.Load())
	}
	high.stop.Store(true)
	eventually(t, "low to run after", func() bool { return low.activations.Load() == 1 && low.inside.Load() == 0 })
}

// cpuSince is the CPU time the process has used.
func cpuSince(*spinTask) time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// A tenant over its CPU share waits for the next window: throttled, not
// faulted, and it goes on afterwards.
func TestCPUShareThrottles(t *testing.T) {
	s := start(t, Options{Window: 10 * time.Millisecond})
	if err := s.SetShare("capped", 101); !errors.Is(err, ErrInvalid) {
		t.Fatalf("share 101%%: %v", err)
	}
	if err := s.SetShare("capped", 25); err != nil {
		t.Fatal(err)
	}
	f := &spinTask{name: "f", owner: "capped", sched: once(5, 10*time.Second)}
	s.Add("f", f)
	eventually(t, "three throttled waits", func() bool { return f.throttles.Load() >= 3 })
	if f.throttled.Load() <= 0 || f.faults.Load() != 0 {
		t.Fatalf("throttled %v, faults %d", time.Duration(f.throttled.Load()), f.faults.Load())
	}
	// Lifting the cap lets it run on.
	if err := s.SetShare("capped", 0); err != nil {
		t.Fatal(err)
	}
	n := f.throttles.Load()
	f.stop.Store(true)
	eventually(t, "f to finish", func() bool { return f.inside.Load() == 0 })
	if f.faults.Load() != 0 || f.throttles.Load() > n+1 {
		t.Fatalf("after the cap was lifted: %d faults, %d more throttles", f.faults.Load(), f.throttles.Load()-n)
	}
}

// Options out of range are refused with a clear error.
func TestOptionsChecked(t *testing.T) {
	for _, o := range []Options{{Quantum: 500 * time.Microsecond}, {Quantum: 11 * time.Millisecond}, {Window: time.Minute}, {Workers: -1}} {
		if err := o.Check(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v", o, err)
		}
	}
	if err := (Options{Quantum: 5 * time.Millisecond, Window: time.Second, Workers: 4}).Check(); err != nil {
		t.Error(err)
	}
}

// suspendedLow starts a low-priority spinner and suspends it under a
// high-priority one that runs until stopped.
func suspendedLow(t *testing.T, s *Scheduler) (low, high *spinTask) {
	low = &spinTask{name: "low", sched: once(1, 10*time.Second)}
	s.Add("low", low)
	eventually(t, "low to run", func() bool { return low.inside.Load() == 1 })
	high = &spinTask{name: "high", sched: once(9, 10*time.Second)}
	s.Add("high", high)
	eventually(t, "low to be suspended", func() bool { return low.preempted.Load() == 1 && high.inside.Load() == 1 })
	return low, high
}

// Removing (stopping) a suspended container ends its activation at once,
// not as a fault, while the higher-priority one keeps the worker.
func TestRemoveWhileSuspended(t *testing.T) {
	var faults atomic.Int64
	s := start(t, Options{OnFault: func(string, *runtime.Fault, Action) { faults.Add(1) }})
	low, high := suspendedLow(t, s)
	<-s.Remove("low")
	if low.inside.Load() != 0 || low.stopped.Load() != 1 || faults.Load() != 0 {
		t.Fatalf("low: in progress %d, stopped %d; faults reported %d", low.inside.Load(), low.stopped.Load(), faults.Load())
	}
	if high.inside.Load() != 1 {
		t.Fatal("high lost its worker")
	}
	high.stop.Store(true)
	eventually(t, "high to finish", func() bool { return high.inside.Load() == 0 })
	if high.faults.Load() != 0 || high.stopped.Load() != 0 {
		t.Fatal("high was cut short")
	}
}

// Shutting the scheduler down with a suspended activation ends it.
func TestShutdownWhileSuspended(t *testing.T) {
	s := New(Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	low, high := suspendedLow(t, s)
	cancel()
	<-done
	if low.inside.Load() != 0 || high.inside.Load() != 0 || low.stopped.Load() != 1 || high.stopped.Load() != 1 {
		t.Fatalf("after shutdown: low in %d stopped %d, high in %d stopped %d",
			low.inside.Load(), low.stopped.Load(), high.inside.Load(), high.stopped.Load())
	}
}

// A live priority change applies at once, also to a suspended activation:
// raised above the running one, it takes the worker back.
func TestPriorityChangeWhileSuspended(t *testing.T) {
	s := start(t, Options{})
	low, high := suspendedLow(t, s)
	low.setSchedule(once(12, 10*time.Second))
	s.Reschedule("low")
	eventually(t, "high to be preempted by the raised low", func() bool { return high.preempted.Load() == 1 })
	low.stop.Store(true)
	eventually(t, "low to finish", func() bool { return low.inside.Load() == 0 })
	high.stop.Store(true)
	eventually(t, "high to finish", func() bool { return high.inside.Load() == 0 })
	if low.faults.Load()+high.faults.Load() != 0 {
		t.Fatal("a priority change faulted an activation")
	}
}

// A host call that waits gives its worker to other work and gets one back.
func TestWaitReleasesTheWorker(t *testing.T) {
	s := start(t, Options{})
	release := make(chan struct{})
	var waiting atomic.Bool
	w := &fakeTask{sched: once(9, 10*time.Second), run: func(b *runtime.Budget) error {
		b.Begin()
		defer b.End()
		b.Wait(func() {
			waiting.Store(true)
			<-release
		})
		if b.Checkpoint() {
			return &runtime.Fault{Kind: runtime.FaultBudget, Err: runtime.ErrBudget}
		}
		return nil
	}}
	s.Add("w", w)
	eventually(t, "the wait", waiting.Load)
	other := &spinTask{name: "other", sched: once(1, 10*time.Second), work: 10}
	s.Add("other", other)
	eventually(t, "the other to run meanwhile", func() bool { return other.activations.Load() == 1 && other.inside.Load() == 0 })
	close(release)
	eventually(t, "the waiter to finish", func() bool { return w.activations.Load() == 1 && w.consecutive.Load() == 0 && s.idleNow() })
}

// idleNow reports whether no activation is in progress.
func (s *Scheduler) idleNow() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.free == s.opts.Workers && s.ready.Len() == 0
}

// Many tasks of mixed priorities on one and several workers, added,
// removed and changed while they run: no activation runs twice at once,
// never more run than there are workers, no budget overrun goes
// unstopped, and the CPU time charged adds up.
func TestStressMixedPriorities(t *testing.T) {
	for _, workers := range []int{1, 3} {
		t.Run(fmt.Sprint(workers, "-workers"), func(t *testing.T) {
			var exec atomic.Int32
			var tooMany atomic.Bool
			s := start(t, Options{Workers: workers, Quantum: time.Millisecond, Window: 5 * time.Millisecond})
			s.SetShare("capped", 30)
			rng := rand.New(rand.NewPCG(1, uint64(workers)))
			cpu0 := cpuSince(nil)
			var tasks []*spinTask
			for i := range 40 {
				f := &spinTask{name: fmt.Sprint("t", i), exec: &exec, workers: int32(workers), tooMany: &tooMany, measure: true,
					work: 1 + rng.IntN(300), sched: meta.Schedule{Trigger: meta.Periodic, Period: time.Duration(2+rng.IntN(8)) * time.Millisecond,
						Priority: rng.IntN(16), Budget: time.Duration(1+rng.IntN(3)) * time.Millisecond, OnFault: meta.Restart}}
				if i%4 == 0 {
					f.owner = "capped"
				}
				tasks = append(tasks, f)
				s.Add(f.name, f)
			}
			total := func() (n int64) {
				for _, f := range tasks {
					n += f.activations.Load()
				}
				return n
			}
			for round := range 60 {
				f := tasks[rng.IntN(len(tasks))]
				switch round % 3 {
				case 0:
					sc := f.Schedule()
					sc.Priority = rng.IntN(16)
					f.setSchedule(sc)
					s.Reschedule(f.name)
				case 1:
					<-s.Remove(f.name)
					if f.inside.Load() != 0 {
						t.Fatalf("%s in progress after Remove", f.name)
					}
					s.Add(f.name, f)
				}
				n := total()
				eventually(t, "progress", func() bool { return total() > n+20 })
			}
			for _, f := range tasks {
				<-s.Remove(f.name)
			}
			cpu := cpuSince(nil) - cpu0
			var used int64
			for _, f := range tasks {
				if f.overlap.Load() {
					t.Errorf("%s ran twice at once", f.name)
				}
				// An activation ends at the first checkpoint after its
				// budget is used up: it overruns by at most the CPU time
				// between two checkpoints (that account and the one
				// before it, which can span two of the gaps measured),
				// plus the stretch before the clock starts, charged at
				// its wall time (400 µs at most). A checkpoint comes
				// every few µs of work natively; under qemu-user the
				// emulator's own work (translating code, delivering
				// signals), charged to the thread, sometimes puts
				// milliseconds of CPU between two of them: the bound
				// follows what was measured.
				gap := time.Duration(f.gap.Load())
				if o := time.Duration(f.overrun.Load()); o > max(2*time.Millisecond, 2*gap+500*time.Microsecond) {
					t.Errorf("%s ran %v past its budget (worst CPU between two checkpoints: %v)", f.name, o, gap)
				}
				used += f.used.Load()
			}
			if tooMany.Load() {
				t.Errorf("more activations ran at once than the %d workers", workers)
			}
			if time.Duration(used) > cpu {
				t.Errorf("activations were charged %v of CPU, the process used %v", time.Duration(used), cpu)
			}
			if used <= 0 {
				t.Error("no CPU time charged")
			}
		})
	}
}
