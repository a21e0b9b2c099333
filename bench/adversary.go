package bench

import (
	"context"
	"fmt"
	goruntime "runtime"
	"sync/atomic"
	"time"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/internal/adversary"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// The figures of hostile installs (issue 11): the rhythm of well-behaved
// containers while another tenant installs every adversarial shape, and
// the CPU time the costliest of those installs took.

// rhythm is the activations and missed releases of a set of containers.
type rhythm struct{ activations, missed uint64 }

func rhythmOf(d *device.Device, names []string) (rhythm, error) {
	var r rhythm
	for _, n := range names {
		st, err := d.Status(n)
		if err != nil {
			return r, err
		}
		if st.State != mgmt.StateRunning {
			return r, fmt.Errorf("%s is %s (%s)", n, st.State, st.LastFault)
		}
		r.activations += st.Activations
		r.missed += st.MissedDeadlines
	}
	return r, nil
}

// kept is the share of releases between a and b that got an activation.
func kept(a, b rhythm) float64 {
	act, missed := b.activations-a.activations, b.missed-a.missed
	return 100 * float64(act) / float64(max(act+missed, 1))
}

// AdversarialInstalls runs one container of each engine every 10 ms at
// priority 6 on one worker, first alone for a while, then for as long
// again while another goroutine installs every adversarial shape of both
// engines (internal/adversary: refused ones and ones at the bounds) over
// and over, removing each one that installs so that it compiles again.
// The figures: the share of the containers' releases that got an
// activation during the installs (and, in the note, alone), and the most
// CPU time one install took (its goroutine's thread).
func AdversarialInstalls(o Options) ([]Result, error) {
	r, err := newRig(device.Options{})
	if err != nil {
		return nil, err
	}
	defer r.close()
	names := []string{"tick-wasm", "tick-ebpf"}
	for i, code := range [][]byte{guest("idle.wasm"), guest("nop.bpf.o")} {
		kind := []string{"wasm", "ebpf"}[i]
		m := manifest(names[i], kind, "")
		m.Schedule = meta.Schedule{Trigger: meta.Periodic, Period: 10 * time.Millisecond, Budget: time.Millisecond, Priority: 6,
			OnFault: meta.Restart, MaxFaults: 3}
		if err := r.install(m, code); err != nil {
			return nil, err
		}
	}
	phase := time.Duration(o.n(8000, 1500)) * time.Millisecond
	time.Sleep(100 * time.Millisecond) // past the first releases
	a, err := rhythmOf(r.d, names)
	if err != nil {
		return nil, err
	}
	time.Sleep(phase)
	b, err := rhythmOf(r.d, names)
	if err != nil {
		return nil, err
	}
	alone := kept(a, b)

	type shape struct {
		kind string
		code []byte
	}
	var shapes []shape
	for _, s := range adversary.WasmShapes() {
		if s.Heavy && adversary.Race {
			// Seconds of compiling without the race detector, minutes
			// with it: the suite's TestRunQuick (under -race) waited
			// for one to end after the phase (141 s).
			continue
		}
		shapes = append(shapes, shape{"wasm", s.Make()})
	}
	for _, s := range adversary.BPFShapes() {
		shapes = append(shapes, shape{"ebpf", s.Make()})
	}
	var stop atomic.Bool
	type tally struct {
		installs, refused int
		worst             time.Duration
		err               error
	}
	done := make(chan tally)
	go func() {
		goruntime.LockOSThread() // the install's CPU time is its thread's
		defer goruntime.UnlockOSThread()
		var t tally
		for i := 0; !stop.Load(); i++ {
			s := shapes[i%len(shapes)]
			m := manifest(fmt.Sprintf("hostile%d", i), s.kind, "")
			m.Tenant, m.Limits.Memory = "mallory", 1<<20
			c0, _ := runtime.ThreadCPU()
			err := r.d.Install(context.Background(), m, s.code)
			c1, _ := runtime.ThreadCPU()
			t.installs++
			t.worst = max(t.worst, c1-c0)
			if err != nil {
				t.refused++
				continue
			}
			if err := r.d.Remove(context.Background(), m.Name); err != nil {
				t.err = err
				break
			}
		}
		done <- t
	}()
	c, err := rhythmOf(r.d, names)
	if err != nil {
		stop.Store(true)
		<-done
		return nil, err
	}
	time.Sleep(phase)
	e, err := rhythmOf(r.d, names)
	stop.Store(true)
	t := <-done
	if err == nil {
		err = t.err
	}
	if err != nil {
		return nil, err
	}
	during := kept(c, e)
	return []Result{
		judged(Result{Name: "sched/adversarial_installs_kept", Value: during, Unit: "% activations", Target: ">= 99%",
			Note: fmt.Sprintf("2 containers every 10 ms on one worker: %d activations, %d missed during %d installs of %d shapes (%d refused); alone %.1f%%",
				e.activations-c.activations, e.missed-c.missed, t.installs, len(shapes), t.refused, alone)}, during >= 99),
		judged(Result{Name: "sched/adversarial_install_cpu_max", Value: float64(t.worst.Microseconds()) / 1000, Unit: "ms CPU",
			Target: "<= 2000 ms", Note: "the costliest single install of those (its thread's CPU time)"}, t.worst <= 2*time.Second),
	}, nil
}
