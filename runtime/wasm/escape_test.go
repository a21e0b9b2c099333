package wasm

import (
	"context"
	"errors"
	goruntime "runtime"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// quietHost is a fakeHost whose log keeps nothing (a flood must not fill
// the test's memory).
type quietHost struct{ fakeHost }

func (h *quietHost) CallName(name string, op abi.Op, buf []byte, inLen int) int32 {
	if name == "log" && op == abi.OpWrite {
		return 0
	}
	return h.fakeHost.CallName(name, op, buf, inLen)
}

// escapeBudget is the CPU budget of the escape tests and maxOverrun what
// they may use past it: the escapes of issue 10 went past theirs by 0.7 s
// to over 120 s. CPU time, so a busy machine does not decide it.
const (
	escapeBudget = 20 * time.Millisecond
	maxOverrun   = 20 * time.Millisecond
)

// Regression tests of issue 10: host functions charge the work they do, so
// no loop of them outruns the budget.
func TestEscapesAreStopped(t *testing.T) {
	for _, c := range []struct {
		file  string
		limit uint64
	}{
		{"escape_random.wasm", 16 << 20},  // random_get over 16 MiB, in a loop
		{"escape_fdwrite.wasm", 64 << 10}, // fd_write flood to an unrated log
		{"escape_iovecs.wasm", 32 << 20},  // fd_write of millions of empty iovecs
	} {
		engines(t, func(t *testing.T, r *Runtime) {
			inst := instantiate(t, compile(t, r, c.file, c.limit), &quietHost{})
			b := budget(escapeBudget)
			_, err := inst.Run(context.Background(), b)
			if !errors.Is(err, runtime.ErrBudget) {
				t.Fatalf("%s: %v, want a budget fault", c.file, err)
			}
			if b.Overrun() > maxOverrun {
				t.Errorf("%s: ran %v of CPU past its %v budget", c.file, b.Overrun(), escapeBudget)
			}
		})
	}
}

// The random_get loop as a start function is stopped by the budget of
// instantiation, also in CPU time.
func TestEscapeInStartFunction(t *testing.T) {
	for _, interp := range []bool{false, true} {
		ctx := context.Background()
		r, err := New(ctx, Options{Interpreter: interp, InitBudget: escapeBudget})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(ctx)
		m := compile(t, r, "escape_random_start.wasm", 1<<20)
		goruntime.LockOSThread()
		cpu0, _ := runtime.ThreadCPU()
		_, err = m.Instantiate(ctx, &quietHost{})
		cpu1, _ := runtime.ThreadCPU()
		goruntime.UnlockOSThread()
		var f *runtime.Fault
		if !errors.As(err, &f) || f.Kind != runtime.FaultBudget {
			t.Fatalf("interpreter=%v: %v, want a budget fault", interp, err)
		}
		if used := cpu1 - cpu0; used > escapeBudget+maxOverrun {
			t.Errorf("interpreter=%v: the start function used %v of CPU, budget %v", interp, used, escapeBudget)
		}
	}
}

// parkGate suspends the activation at each gate call until the test lets
// it go on; the test learns of each suspension on parked.
type parkGate struct{ parked chan chan struct{} }

func (g *parkGate) Checkpoint(b *runtime.Budget, _ time.Duration) (time.Duration, <-chan struct{}) {
	b.ClearYield()
	wake := make(chan struct{})
	g.parked <- wake
	return 0, wake
}
func (g *parkGate) Block(*runtime.Budget, time.Duration)    {}
func (g *parkGate) Unblock(*runtime.Budget) <-chan struct{} { return nil }

// TestStartFunctionPreemptible is issue 10's gap "the start function runs
// under its own 100 ms budget and is not preemptible": made for an
// activation (runtime.WithBudget), the start function runs under the
// activation's budget, nested: the scheduler suspends it at its
// checkpoints and stops it like the activation, its CPU time is its own
// (not charged to the activation's budget) and its own limit still holds.
func TestStartFunctionPreemptible(t *testing.T) {
	for _, interp := range []bool{false, true} {
		ctx := context.Background()
		r, err := New(ctx, Options{Interpreter: interp, InitBudget: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(ctx)
		m := compile(t, r, "escape_random_start.wasm", 1<<20)

		// Suspended twice inside the start function, then stopped.
		g := &parkGate{parked: make(chan chan struct{})}
		var b runtime.Budget
		b.SetGate(g)
		b.Arm(time.Millisecond) // the activation's own budget: not what bounds the start
		b.RequestYield()
		errc := make(chan error, 1)
		go func() {
			_, err := m.Instantiate(runtime.WithBudget(ctx, &b), &quietHost{})
			errc <- err
		}()
		for i := range 3 {
			wake := <-g.parked
			switch i {
			case 2:
				b.Stop()
			default:
				b.RequestYield()
			}
			close(wake)
		}
		err = <-errc
		var f *runtime.Fault
		if !errors.As(err, &f) || f.Kind != runtime.FaultBudget || !b.Stopped() {
			t.Fatalf("interpreter=%v: %v, want the start function stopped", interp, err)
		}
		if b.Used() != 0 || b.CPU() == 0 {
			t.Errorf("interpreter=%v: activation charged %v, start function %v; want 0 and its CPU time", interp, b.Used(), b.CPU())
		}

		// Its own limit (InitBudget) still ends a start function that
		// never stops, and the activation's budget is unchanged.
		r2, err := New(ctx, Options{Interpreter: interp, InitBudget: escapeBudget})
		if err != nil {
			t.Fatal(err)
		}
		defer r2.Close(ctx)
		m2 := compile(t, r2, "escape_random_start.wasm", 1<<20)
		var b2 runtime.Budget
		b2.Arm(time.Hour)
		_, err = m2.Instantiate(runtime.WithBudget(ctx, &b2), &quietHost{})
		if !errors.As(err, &f) || f.Kind != runtime.FaultBudget || b2.Stopped() {
			t.Fatalf("interpreter=%v: %v, want a budget fault of the start function", interp, err)
		}
		if b2.Used() != 0 || b2.CPU() < escapeBudget || b2.CPU() > escapeBudget+maxOverrun {
			t.Errorf("interpreter=%v: activation charged %v, start function %v (its limit %v)", interp, b2.Used(), b2.CPU(), escapeBudget)
		}
	}
}
