package conformance

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
)

// The scheduling rules of SPEC section 5 (version 2), on every runtime:
// preemption by priority, budgets in CPU time, round-robin among equal
// priorities, tenant CPU shares. The probe's spin program loops until its
// budget stops it.

// schedRig is a device running probes under several names, each activated
// by messages on probe/NAME.
type schedRig struct {
	t     *testing.T
	tg    target
	d     *device.Device
	lines chan mgmt.LogLine
}

func newSchedRig(t *testing.T, tg target, opts device.Options) *schedRig {
	t.Helper()
	r := &schedRig{t: t, tg: tg, lines: make(chan mgmt.LogLine, 1024)}
	opts.Interpreter = tg.interpret
	opts.OnLog = func(l mgmt.LogLine) { r.lines <- l }
	ctx, cancel := context.WithCancel(context.Background())
	d, err := device.New(ctx, opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	r.d = d
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		d.Close(context.Background())
	})
	return r
}

func (r *schedRig) add(name, tenant string, prio int, budget time.Duration) {
	r.t.Helper()
	code, err := os.ReadFile(r.tg.file)
	if err != nil {
		r.t.Fatal(err)
	}
	m, err := meta.Parse(fmt.Appendf(nil, `name: %s
tenant: %s
version: 1
runtime: %s
schedule: {trigger: event, topics: ["probe/%s"], budget: %v, priority: %d, on_fault: restart, max_faults: 3}
limits: {memory: 64KiB}
endpoints:
  - {name: event, ops: [read]}
  - {name: log, ops: [write]}
  - {name: clock, ops: [read]}
`, name, tenant, r.tg.kind, name, budget, prio))
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.d.Install(context.Background(), m, code); err != nil {
		r.t.Fatal(err)
	}
	if err := r.d.Start(name); err != nil {
		r.t.Fatal(err)
	}
}

func (r *schedRig) send(name string, p prog) {
	r.t.Helper()
	if err := r.d.Bus().Publish("tester", "probe/"+name, p); err != nil {
		r.t.Fatal(err)
	}
}

func (r *schedRig) status(name string) mgmt.ContainerStatus {
	r.t.Helper()
	st, err := r.d.Status(name)
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

// started waits until name took its message.
func (r *schedRig) started(name string) {
	r.t.Helper()
	c, err := r.d.Container(name)
	if err != nil {
		r.t.Fatal(err)
	}
	r.wait(name+" to start", func() bool { return !c.Ready() })
}

func (r *schedRig) wait(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: timed out waiting for %s", r.tg.name, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// line waits for the next log line of name.
func (r *schedRig) line(name string) string {
	r.t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l := <-r.lines:
			if l.Container == name {
				return l.Text
			}
		case <-timeout:
			r.t.Fatalf("%s: no line from %s", r.tg.name, name)
		}
	}
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
		r.started("low")
		for i := range 5 {
			r.send("high", prog{}.open("clock"))
			if got := r.line("high"); !strings.HasPrefix(got, "0 ") {
				t.Fatalf("high's activation %d: %q", i, got)
			}
			if st := r.status("low"); st.Faults != 0 {
				// The low one is suspended, so it cannot have used its
				// budget while the high one ran.
				t.Fatalf("low faulted while high ran: %+v", st)
			}
		}
		r.wait("low's budget fault", func() bool { return r.status("low").Faults == 1 })
		low, high := r.status("low"), r.status("high")
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
		r.wait("both to fault for their budgets", func() bool { return r.status("a").Faults == 1 && r.status("b").Faults == 1 })
		for _, n := range []string{"a", "b"} {
			if st := r.status(n); st.Preemptions == 0 || st.LastFault != "budget" {
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
		if err := r.d.SetCPUShare("capped", 25); err != nil {
			t.Fatal(err)
		}
		r.add("hog", "capped", 5, 100*time.Millisecond)
		r.send("hog", prog{}.spin())
		r.wait("hog's budget fault", func() bool { return r.status("hog").Faults == 1 })
		st := r.status("hog")
		// (How long it waited depends on how much CPU the OS gave the
		// device meanwhile: no verdict on it.)
		if st.ThrottledUS == 0 || st.CPUTimeUS < 100_000 || st.LastFault != "budget" {
			t.Errorf("hog: throttled %d µs, CPU %d µs, last fault %q", st.ThrottledUS, st.CPUTimeUS, st.LastFault)
		}
	})
}
