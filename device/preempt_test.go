package device_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/trust"
)

// crunchRig is a plain device running crunch containers (testdata/crunch.c),
// with the order in which their log lines came.
type crunchRig struct {
	t    *testing.T
	d    *device.Device
	kind string
	mu   sync.Mutex
	log  []string // "name: text"
}

func newCrunchRig(t *testing.T, kind string, opts device.Options) *crunchRig {
	t.Helper()
	r := &crunchRig{t: t, kind: kind}
	opts.OnLog = func(l mgmt.LogLine) {
		r.mu.Lock()
		r.log = append(r.log, l.Container+": "+l.Text)
		r.mu.Unlock()
	}
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
		_ = d.Close(context.Background())
	})
	return r
}

// add installs and starts a crunch container of tenant with priority prio,
// activated by messages on crunch/NAME (the payload: u32 iterations).
func (r *crunchRig) add(name, tenant string, prio int) {
	r.t.Helper()
	file := "testdata/crunch.wasm"
	if r.kind == "ebpf" {
		file = "testdata/crunch.bpf.o"
	}
	code, err := os.ReadFile(file)
	if err != nil {
		r.t.Fatal(err)
	}
	m, err := meta.Parse(fmt.Appendf(nil, `name: %s
tenant: %s
version: 1
runtime: %s
schedule: {trigger: event, topics: ["crunch/%s"], budget: 10s, priority: %d}
limits: {memory: 64KiB}
endpoints:
  - {name: event, ops: [read]}
  - {name: log, ops: [write]}
`, name, tenant, r.kind, name, prio))
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

// kick sends name one message: an activation of n iterations.
func (r *crunchRig) kick(name string, n uint32) {
	r.t.Helper()
	if err := r.d.Bus().Publish("test", "crunch/"+name, binary.LittleEndian.AppendUint32(nil, n)); err != nil {
		r.t.Fatal(err)
	}
}

func (r *crunchRig) status(name string) mgmt.ContainerStatus {
	r.t.Helper()
	st, err := r.d.Status(name)
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

// started waits until name has taken its message (its activation began).
func (r *crunchRig) started(name string) {
	r.t.Helper()
	c, err := r.d.Container(name)
	if err != nil {
		r.t.Fatal(err)
	}
	waitFor(r.t, name+" to start", func() bool { return !c.Ready() })
}

func (r *crunchRig) logged() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

// long is an activation of a few hundred milliseconds of CPU on either
// engine: far longer than any preemption takes.
const long = 1 << 27

// A higher-priority container preempts lower-priority ones that compute:
// on one worker and on two, on both engines, its activations end before
// theirs; theirs are suspended, not faulted, and resume with their memory
// intact (crunch checks it); no message is lost.
func TestPreemptionByPriority(t *testing.T) {
	for _, kind := range []string{"wasm", "ebpf"} {
		for _, workers := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/%d-workers", kind, workers), func(t *testing.T) {
				r := newCrunchRig(t, kind, device.Options{Workers: workers})
				var lows []string
				for i := range workers {
					name := fmt.Sprintf("low%d", i)
					r.add(name, "globex", 1)
					lows = append(lows, name)
				}
				r.add("high", "acme", 10)
				for _, l := range lows {
					r.kick(l, long)
				}
				for _, l := range lows {
					r.started(l)
				}
				const highs = 3
				for i := range highs {
					r.kick("high", 1000)
					waitFor(t, "the high-priority activation", func() bool { return r.status("high").Activations == uint64(i+1) })
				}
				for _, l := range lows {
					waitFor(t, l+" to finish", func() bool { return r.status(l).Activations == 1 })
				}
				lines := r.logged()
				lastHigh := slices.Index(lines, fmt.Sprintf("high: crunch %d", highs))
				if lastHigh < 0 {
					t.Fatalf("high's last line missing: %q", lines)
				}
				preempted := uint64(0)
				for _, l := range lows {
					st := r.status(l)
					if st.Faults != 0 || st.ExitCode != 0 {
						t.Errorf("%s: %d faults, exit %d (3: its memory changed while suspended)", l, st.Faults, st.ExitCode)
					}
					preempted += st.Preemptions
					at := slices.Index(lines, l+": crunch 1")
					if at < 0 {
						t.Fatalf("%s's line missing: %q", l, lines)
					}
				}
				// With every worker busy with a low one, each high
				// activation took one's worker.
				if preempted < highs {
					t.Errorf("%d preemptions of the low containers for %d high activations", preempted, highs)
				}
				first := len(lines)
				for _, l := range lows {
					first = min(first, slices.Index(lines, l+": crunch 1"))
				}
				if lastHigh > first {
					t.Errorf("a high activation ended after a low one: %q", lines)
				}
				if st := r.status("high"); st.Faults != 0 || st.Preemptions != 0 {
					t.Errorf("high: %d faults, %d preemptions", st.Faults, st.Preemptions)
				}
			})
		}
	}
}

// A tenant's grant with max_cpu caps its containers' CPU share on the
// device; the share follows the grant when it is replaced or revoked,
// and survives a restart.
func TestGrantSetsTheCPUShare(t *testing.T) {
	td := newDevice(t)
	g := func(cpu int) []byte {
		c := meta.Ceiling{Tenant: "acme", MaxMemory: 64 * meta.KiB, MaxStorage: 4 * meta.KiB, MaxBudget: 10 * time.Millisecond,
			MinPeriod: 50 * time.Millisecond, MaxPriority: meta.DefaultMaxPriority, MaxCode: meta.DefaultMaxCode, MaxCPU: cpu}
		cj, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		g, err := trust.SignGrant(cj, pub(acmeKey), ownerKey)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	td.mustExec(ownerKey, device.VerbTenantAdd, "", g(25))
	if s := td.mg.Device().CPUShare("acme"); s != 25 {
		t.Fatalf("share %d%%, want 25%%", s)
	}
	td = td.reopen()
	if s := td.mg.Device().CPUShare("acme"); s != 25 {
		t.Fatalf("after a restart: share %d%%, want 25%%", s)
	}
	td.mustExec(ownerKey, device.VerbTenantAdd, "", g(0))
	if s := td.mg.Device().CPUShare("acme"); s != 0 {
		t.Fatalf("grant without max_cpu: share %d%%, want none", s)
	}
}

// A capped tenant's computing container is throttled (not faulted) and
// keeps its memory; a container of another tenant is not throttled.
func TestCPUShareThrottlesOnBothEngines(t *testing.T) {
	for _, kind := range []string{"wasm", "ebpf"} {
		t.Run(kind, func(t *testing.T) {
			r := newCrunchRig(t, kind, device.Options{Window: time.Millisecond}) // short windows: throttled however loaded the machine
			if err := r.d.SetCPUShare("globex", 25); err != nil {
				t.Fatal(err)
			}
			if err := r.d.SetCPUShare("globex", 101); !errors.Is(err, device.ErrInvalid) {
				t.Fatalf("share 101%%: %v", err)
			}
			r.add("capped", "globex", 1)
			r.add("free", "acme", 1)
			r.kick("capped", long/4)
			r.started("capped")
			waitFor(t, "capped to finish", func() bool { return r.status("capped").Activations == 1 })
			r.kick("free", long/4)
			waitFor(t, "free to finish", func() bool { return r.status("free").Activations == 1 })
			c, f := r.status("capped"), r.status("free")
			if c.ThrottledUS == 0 || c.Faults != 0 || c.ExitCode != 0 {
				t.Errorf("capped: throttled %d µs, %d faults, exit %d", c.ThrottledUS, c.Faults, c.ExitCode)
			}
			if f.ThrottledUS != 0 || f.Faults != 0 {
				t.Errorf("free: throttled %d µs, %d faults", f.ThrottledUS, f.Faults)
			}
			if c.CPUTimeUS == 0 || f.CPUTimeUS == 0 {
				t.Errorf("cpu_time_us: capped %d, free %d", c.CPUTimeUS, f.CPUTimeUS)
			}
		})
	}
}
