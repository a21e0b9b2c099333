package device_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/device/devicetest"
	"github.com/tinycontainer/tinycontainer/internal/guests"
)

// crunchRig is a plain device running crunch containers
// (internal/guests/crunch.c) of one engine.
type crunchRig struct {
	*devicetest.Rig
	kind string
}

func newCrunchRig(t *testing.T, kind string, opts device.Options) *crunchRig {
	t.Helper()
	return &crunchRig{devicetest.Start(t, opts), kind}
}

// add installs and starts a crunch container of tenant with priority prio,
// activated by messages on crunch/NAME (the payload: u32 iterations).
func (r *crunchRig) add(name, tenant string, prio int) {
	r.T.Helper()
	code := guests.File("crunch.wasm")
	if r.kind == "ebpf" {
		code = guests.File("crunch.bpf.o")
	}
	r.Add(devicetest.EventManifest(name, tenant, r.kind, "crunch/"+name, fmt.Sprintf(", budget: 10s, priority: %d", prio), ""), code)
}

// kick sends name one message: an activation of n iterations.
func (r *crunchRig) kick(name string, n uint32) {
	r.T.Helper()
	r.Publish("crunch/"+name, binary.LittleEndian.AppendUint32(nil, n))
}

// long is the iterations of an activation of about cpu of CPU time on
// this rig's engine, measured on a container of its own (tenant
// "calibrate"): 1<<27 iterations are 300 ms with machine code, but
// interpreted on 32-bit ARM under qemu-user they took longer than the
// activation's 10 s budget.
func (r *crunchRig) long(cpu time.Duration) uint32 {
	r.T.Helper()
	const name = "calibrate"
	r.add(name, "calibrate", 1)
	n := uint32(1 << 16)
	for k := uint64(1); ; k++ {
		r.kick(name, n)
		devicetest.WaitFor(r.T, "the calibration activation", func() bool { return r.Status(name).Activations == k })
		// CPU time, summed over the activations so far (n doubles each
		// time, so the last is about half of it).
		if used := time.Duration(r.Status(name).CPUTimeUS) * time.Microsecond; used >= 20*time.Millisecond || n >= 1<<28 {
			return uint32(min(float64(n)*float64(cpu)/float64(used/2+1), 1<<30))
		}
		n *= 2
	}
}

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
				// Far longer than any preemption takes, and than the
				// test's own steps on a loaded machine.
				long := r.long(time.Second)
				for _, l := range lows {
					r.kick(l, long)
				}
				for _, l := range lows {
					r.Started(l)
				}
				const highs = 3
				for i := range highs {
					r.kick("high", 1000)
					waitFor(t, "the high-priority activation", func() bool { return r.Status("high").Activations == uint64(i+1) })
				}
				// A second of CPU each: on a loaded machine under
				// qemu-user, more than the rig's 30 s of wall time.
				deadline := time.Now().Add(5 * time.Minute)
				for _, l := range lows {
					for r.Status(l).Activations != 1 {
						if time.Now().After(deadline) {
							t.Fatalf("timed out waiting for %s to finish", l)
						}
						time.Sleep(5 * time.Millisecond)
					}
				}
				lines := r.Logged()
				lastHigh := slices.Index(lines, fmt.Sprintf("high: crunch %d", highs))
				if lastHigh < 0 {
					t.Fatalf("high's last line missing: %q", lines)
				}
				preempted := uint64(0)
				for _, l := range lows {
					st := r.Status(l)
					if st.Faults != 0 || st.ExitCode != 0 {
						t.Errorf("%s: %d faults, exit %d (3: its memory changed while suspended)", l, st.Faults, st.ExitCode)
					}
					preempted += st.Preemptions
					at := slices.Index(lines, l+": crunch 1")
					if at < 0 {
						t.Fatalf("%s's line missing: %q", l, lines)
					}
				}
				// The first high activation finds every worker busy with a
				// low one and takes one's worker. A later one may be
				// released after the previous high ended but before the
				// worker resumed its low one, and then runs without a
				// preemption (seen under load: 2 for 3): at least one, at
				// most one per high activation. With two workers there is a
				// second low container of the same priority: while a high
				// activation holds a worker, the suspended low one waits for
				// the running one's round-robin quantum to end, and that
				// rotation is a preemption too (seen under load: 4 for 3),
				// so there only the lower bound holds.
				if preempted < 1 || (workers == 1 && preempted > highs) {
					t.Errorf("%d preemptions of the low containers for %d high activations", preempted, highs)
				}
				first := len(lines)
				for _, l := range lows {
					first = min(first, slices.Index(lines, l+": crunch 1"))
				}
				if lastHigh > first {
					t.Errorf("a high activation ended after a low one: %q", lines)
				}
				if st := r.Status("high"); st.Faults != 0 || st.Preemptions != 0 {
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
		c := testCeiling("acme")
		c.MaxCPU = cpu
		return signGrant(t, c, acmeKey)
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
			if err := r.D.SetCPUShare("globex", 25); err != nil {
				t.Fatal(err)
			}
			if err := r.D.SetCPUShare("globex", 101); !errors.Is(err, device.ErrInvalid) {
				t.Fatalf("share 101%%: %v", err)
			}
			r.add("capped", "globex", 1)
			r.add("free", "acme", 1)
			long := r.long(300 * time.Millisecond)
			r.kick("capped", long/4)
			r.Started("capped")
			waitFor(t, "capped to finish", func() bool { return r.Status("capped").Activations == 1 })
			r.kick("free", long/4)
			waitFor(t, "free to finish", func() bool { return r.Status("free").Activations == 1 })
			c, f := r.Status("capped"), r.Status("free")
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
