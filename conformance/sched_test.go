package conformance

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/device/devicetest"
)

// The scheduling rules of SPEC section 5 (version 2), on every runtime:
// preemption by priority, budgets in CPU time, round-robin among equal
// priorities, tenant CPU shares. The probe's spin program loops until its
// budget stops it.

// schedRig is a device running probes under several names, each activated
// by messages on probe/NAME.
type schedRig struct {
	*devicetest.Rig
	tg target
}

func newSchedRig(t *testing.T, tg target, opts device.Options) *schedRig {
	t.Helper()
	opts.Interpreter = tg.interpret
	return &schedRig{devicetest.Start(t, opts), tg}
}

func (r *schedRig) add(name, tenant string, prio int, budget time.Duration) {
	r.T.Helper()
	code, err := os.ReadFile(r.tg.file)
	if err != nil {
		r.T.Fatal(err)
	}
	r.Add(devicetest.EventManifest(name, tenant, r.tg.kind, "probe/"+name,
		fmt.Sprintf(", budget: %v, priority: %d, on_fault: restart, max_faults: 3", budget, prio),
		"  - {name: clock, ops: [read]}\n"), code)
}

func (r *schedRig) send(name string, p prog) {
	r.T.Helper()
	r.Publish("probe/"+name, p)
}

// A higher-priority container preempts a lower one that computes: the
// lower one is suspended, not faulted, and its budget counts only the CPU
// time it used (it faults for its budget only after using all of it).
func TestPreemptionAndCPUBudget(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, tg target) {
		r := newSchedRig(t, tg, device.Options{})
		r.add("low", "t1", 1, time.Second)
		r.add("high", "t2", 9, 20*time.Millisecond)
		r.send("low", prog{}.spin())
		r.Started("low")
		for i := range 5 {
			r.send("high", prog{}.open("clock"))
			if got := r.NextLine("high"); !strings.HasPrefix(got, "0 ") {
				t.Fatalf("high's activation %d: %q", i, got)
			}
			if st := r.Status("low"); st.Faults != 0 {
				// The low one is suspended, so it cannot have used its
				// budget while the high one ran.
				t.Fatalf("low faulted while high ran: %+v", st)
			}
		}
		devicetest.WaitFor(t, "low's budget fault", func() bool { return r.Status("low").Faults == 1 })
		low, high := r.Status("low"), r.Status("high")
		// (A high release while the previous high activation ends runs
		// next without a new preemption: at least one, at most five.)
		if low.LastFault != "budget" || low.Preemptions == 0 || low.Preemptions > 5 || low.CPUTimeUS < 1_000_000 {
			t.Errorf("low: last fault %q, %d preemptions, %d µs of CPU (budget 1 s of CPU)", low.LastFault, low.Preemptions, low.CPUTimeUS)
		}
		if high.Activations != 5 || high.Faults != 0 || high.Preemptions != 0 {
			t.Errorf("high: %d activations, %d faults, %d preemptions", high.Activations, high.Faults, high.Preemptions)
		}
	})
}

// Equal priorities share the worker in time slices: both spinning
// containers are preempted by each other before either ends.
func TestRoundRobinAmongEqualPriorities(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, tg target) {
		r := newSchedRig(t, tg, device.Options{Quantum: time.Millisecond})
		r.add("a", "t1", 5, 300*time.Millisecond)
		r.add("b", "t1", 5, 300*time.Millisecond)
		r.send("a", prog{}.spin())
		r.send("b", prog{}.spin())
		devicetest.WaitFor(t, "both to fault for their budgets", func() bool { return r.Status("a").Faults == 1 && r.Status("b").Faults == 1 })
		for _, n := range []string{"a", "b"} {
			if st := r.Status(n); st.Preemptions == 0 || st.LastFault != "budget" {
				t.Errorf("%s: %d preemptions, last fault %q", n, st.Preemptions, st.LastFault)
			}
		}
	})
}

// A tenant over its CPU share waits for the next window: throttled, not
// faulted; its budget is still CPU time.
func TestTenantCPUShare(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, tg target) {
		// 1 ms windows: once the OS gives the thread the CPU, it uses the
		// 250 µs share of a window at once, however loaded the machine.
		r := newSchedRig(t, tg, device.Options{Window: time.Millisecond})
		if err := r.D.SetCPUShare("capped", 25); err != nil {
			t.Fatal(err)
		}
		r.add("hog", "capped", 5, 100*time.Millisecond)
		r.send("hog", prog{}.spin())
		devicetest.WaitFor(t, "hog's budget fault", func() bool { return r.Status("hog").Faults == 1 })
		st := r.Status("hog")
		// (How long it waited depends on how much CPU the OS gave the
		// device meanwhile: no verdict on it.)
		if st.ThrottledUS == 0 || st.CPUTimeUS < 100_000 || st.LastFault != "budget" {
			t.Errorf("hog: throttled %d µs, CPU %d µs, last fault %q", st.ThrottledUS, st.CPUTimeUS, st.LastFault)
		}
	})
}
