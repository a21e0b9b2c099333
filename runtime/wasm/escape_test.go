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
