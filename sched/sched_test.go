package sched

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/internal/testwait"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/runtime"
)

type fakeTask struct {
	mu          sync.Mutex
	sched       meta.Schedule
	run         func(b *runtime.Budget) error
	activations atomic.Int64
	missed      atomic.Int64
	consecutive atomic.Int64
	ready       atomic.Int64 // pending event messages
	order       *[]string
	name        string
}

func (f *fakeTask) Schedule() meta.Schedule {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sched
}

func (f *fakeTask) setSchedule(s meta.Schedule) {
	f.mu.Lock()
	f.sched = s
	f.mu.Unlock()
}

func (f *fakeTask) Activate(_ context.Context, b *runtime.Budget) error {
	f.activations.Add(1)
	if f.ready.Load() > 0 {
		f.ready.Add(-1)
	}
	if f.order != nil {
		f.mu.Lock()
		*f.order = append(*f.order, f.name)
		f.mu.Unlock()
	}
	var err error
	if f.run != nil {
		err = f.run(b)
	}
	if err != nil {
		f.consecutive.Add(1)
	} else {
		f.consecutive.Store(0)
	}
	return err
}
func (f *fakeTask) Ready() bool            { return f.ready.Load() > 0 }
func (f *fakeTask) Missed()                { f.missed.Add(1) }
func (f *fakeTask) ConsecutiveFaults() int { return int(f.consecutive.Load()) }

func periodic(p time.Duration) meta.Schedule {
	return meta.Schedule{Trigger: meta.Periodic, Period: p, Budget: time.Millisecond, MaxFaults: 3, OnFault: meta.Restart}
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, what, cond)
}

func start(t testing.TB, opts Options) *Scheduler {
	s := New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

func TestPeriodicTaskRunsEveryPeriod(t *testing.T) {
	s := start(t, Options{})
	f := &fakeTask{sched: periodic(5 * time.Millisecond)}
	if err := s.Add("a", f); err != nil {
		t.Fatal(err)
	}
	if err := s.Add("a", f); !errors.Is(err, ErrExists) {
		t.Fatalf("second add: %v", err)
	}
	eventually(t, "10 activations", func() bool { return f.activations.Load() >= 10 })
}

func TestRunawayIsStoppedAndOthersKeepGoing(t *testing.T) {
	halted := make(chan Action, 1)
	s := start(t, Options{OnHalt: func(id string, a Action, f *runtime.Fault) { halted <- a }})
	spin := &fakeTask{sched: periodic(2 * time.Millisecond), run: func(b *runtime.Budget) error {
		for !b.Checkpoint() { // what a runtime checkpoint does
		}
		return &runtime.Fault{Kind: runtime.FaultBudget, Err: runtime.ErrBudget}
	}}
	good := &fakeTask{sched: periodic(2 * time.Millisecond)}
	s.Add("spin", spin)
	s.Add("good", good)
	if a := <-halted; a != Fault {
		t.Fatalf("action %v, want fault", a)
	}
	if n := spin.activations.Load(); n != 3 {
		t.Fatalf("runaway ran %d times, want max_faults=3", n)
	}
	before := good.activations.Load()
	eventually(t, "the good task to go on", func() bool { return good.activations.Load() > before+5 })
	n, _, _, worst := s.Watchdog().Overshoot()
	if n != 3 || worst <= 0 {
		t.Fatalf("watchdog saw %d overruns, worst %v", n, worst)
	}
}

func TestOnFaultStop(t *testing.T) {
	halted := make(chan Action, 1)
	s := start(t, Options{OnHalt: func(string, Action, *runtime.Fault) { halted <- Stop }})
	sc := periodic(time.Millisecond)
	sc.OnFault = meta.Stop
	f := &fakeTask{sched: sc, run: func(*runtime.Budget) error { return &runtime.Fault{Kind: runtime.FaultTrap} }}
	s.Add("f", f)
	<-halted
	if f.activations.Load() != 1 {
		t.Fatalf("ran %d times after on_fault: stop", f.activations.Load())
	}
}

func TestPolicyTable(t *testing.T) {
	p := ManifestPolicy{}
	restart := meta.Schedule{OnFault: meta.Restart, MaxFaults: 3}
	stop := meta.Schedule{OnFault: meta.Stop, MaxFaults: 3}
	cases := []struct {
		s    meta.Schedule
		n    int
		want Action
	}{
		{restart, 1, Continue}, {restart, 2, Continue}, {restart, 3, Fault}, {restart, 9, Fault},
		{stop, 1, Stop}, {stop, 3, Fault},
	}
	for _, c := range cases {
		if got := p.OnFault(c.s, c.n, &runtime.Fault{}); got != c.want {
			t.Errorf("%s after %d faults: %v, want %v", c.s.OnFault, c.n, got, c.want)
		}
	}
}

func TestOnceRunsOnce(t *testing.T) {
	halted := make(chan Action, 1)
	s := start(t, Options{OnHalt: func(_ string, a Action, _ *runtime.Fault) { halted <- a }})
	f := &fakeTask{sched: meta.Schedule{Trigger: meta.Once, Budget: time.Millisecond}}
	s.Add("o", f)
	if a := <-halted; a != Done {
		t.Fatalf("action %v", a)
	}
	if f.activations.Load() != 1 {
		t.Fatal("not exactly one activation")
	}
}

func TestEventTaskRunsOncePerMessage(t *testing.T) {
	s := start(t, Options{})
	f := &fakeTask{sched: meta.Schedule{Trigger: meta.Event, Budget: time.Millisecond}}
	s.Add("e", f)
	f.ready.Store(5)
	s.Release("e")
	eventually(t, "5 activations", func() bool { return f.activations.Load() == 5 })
	f.ready.Store(1)
	s.Release("e")
	eventually(t, "6 activations", func() bool { return f.activations.Load() == 6 })
}

func TestPriorityOrder(t *testing.T) {
	s := New(Options{}) // not running yet: everything queues up
	var order []string
	for _, p := range []struct {
		name string
		prio int
	}{{"low", 1}, {"high", 9}, {"mid", 5}} {
		f := &fakeTask{name: p.name, order: &order, sched: meta.Schedule{Trigger: meta.Once, Priority: p.prio, Budget: time.Millisecond}}
		s.Add(p.name, f)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	eventually(t, "three runs", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.tasks) == 0
	})
	cancel()
	<-done
	if len(order) != 3 || order[0] != "high" || order[1] != "mid" || order[2] != "low" {
		t.Fatalf("order = %v", order)
	}
}

func TestMissedDeadlines(t *testing.T) {
	s := start(t, Options{})
	slow := &fakeTask{sched: periodic(time.Millisecond), run: func(*runtime.Budget) error {
		time.Sleep(5 * time.Millisecond)
		return nil
	}}
	s.Add("slow", slow)
	eventually(t, "missed deadlines", func() bool { return slow.missed.Load() >= 3 })
}

func TestRemoveWaitsForTheRunningActivation(t *testing.T) {
	s := start(t, Options{})
	release := make(chan struct{})
	var running atomic.Bool
	f := &fakeTask{sched: periodic(time.Millisecond), run: func(*runtime.Budget) error {
		running.Store(true)
		<-release
		running.Store(false)
		return nil
	}}
	s.Add("f", f)
	eventually(t, "the activation to start", running.Load)
	done := s.Remove("f")
	select {
	case <-done:
		t.Fatal("Remove finished while the activation runs")
	default:
	}
	close(release)
	<-done
	n := f.activations.Load()
	time.Sleep(10 * time.Millisecond) // no further release may come
	if f.activations.Load() != n {
		t.Fatal("removed task ran again")
	}
}

func TestRescheduleChangesThePeriod(t *testing.T) {
	s := start(t, Options{})
	f := &fakeTask{sched: periodic(time.Hour)}
	s.Add("f", f)
	eventually(t, "the first activation", func() bool { return f.activations.Load() == 1 })
	f.setSchedule(periodic(time.Millisecond))
	s.Reschedule("f")
	eventually(t, "the faster period", func() bool { return f.activations.Load() > 5 })
}

func TestManyWorkersHammer(t *testing.T) {
	s := start(t, Options{Workers: 4})
	var tasks []*fakeTask
	for i := range 50 {
		f := &fakeTask{sched: periodic(time.Duration(1+i%3) * time.Millisecond)}
		tasks = append(tasks, f)
		s.Add(string(rune('A'+i)), f)
	}
	for i := range 50 {
		if i%2 == 0 {
			<-s.Remove(string(rune('A' + i)))
		}
	}
	for i, f := range tasks {
		if i%2 == 1 {
			eventually(t, "activations", func() bool { return f.activations.Load() > 2 })
		}
	}
}

// A message that arrives while the task runs is not lost: the worker asks
// Ready() when the activation ends (regression: the activation-overhead
// benchmark hung when its release raced the end of an activation), and an
// event task never runs without a message (regression: a remembered release
// ran it with an empty inbox, which reset its fault count).
func TestReleaseDuringActivationIsNotLost(t *testing.T) {
	s := start(t, Options{})
	gate := make(chan struct{})
	var running atomic.Bool
	f := &fakeTask{sched: meta.Schedule{Trigger: meta.Event, Budget: time.Millisecond}, run: func(*runtime.Budget) error {
		running.Store(true)
		<-gate
		running.Store(false)
		return nil
	}}
	s.Add("e", f)
	f.ready.Add(1)
	s.Release("e")
	eventually(t, "the first activation", running.Load)
	f.ready.Add(1) // a message arrives while it runs
	s.Release("e")
	gate <- struct{}{}
	eventually(t, "the second activation", func() bool { return f.activations.Load() == 2 })
	gate <- struct{}{}
	s.Release("e") // no message: no activation
	time.Sleep(5 * time.Millisecond)
	if n := f.activations.Load(); n != 2 {
		t.Fatalf("%d activations for 2 messages", n)
	}
}

// A once task that faults is restarted by the policy until it succeeds or
// reaches max_faults (regression: it was left running and never retried).
func TestOnceTaskRestartsAfterAFault(t *testing.T) {
	halted := make(chan Action, 1)
	s := start(t, Options{OnHalt: func(_ string, a Action, _ *runtime.Fault) { halted <- a }})
	var n atomic.Int64
	f := &fakeTask{sched: meta.Schedule{Trigger: meta.Once, Budget: time.Millisecond, OnFault: meta.Restart, MaxFaults: 3},
		run: func(*runtime.Budget) error {
			if n.Add(1) < 3 {
				return &runtime.Fault{Kind: runtime.FaultTrap}
			}
			return nil
		}}
	s.Add("o", f)
	if a := <-halted; a != Done {
		t.Fatalf("action %v, want done after two restarts", a)
	}
	if f.activations.Load() != 3 {
		t.Fatalf("%d activations, want 3", f.activations.Load())
	}
}
