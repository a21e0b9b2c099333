package bench

import (
	"context"
	"errors"
	"fmt"
	goruntime "runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/container"
	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/runtime"
	"github.com/tinycontainer/tinycontainer/runtime/wasm"
	"github.com/tinycontainer/tinycontainer/sched"
)

// releases is an inbox of empty messages, one per release, so each
// scheduler release is exactly one activation.
type releases struct{ n atomic.Int64 }

func (r *releases) Next() (string, []byte, bool) {
	if r.n.Add(-1) < 0 {
		r.n.Add(1)
		return "", nil, false
	}
	return "bench", nil, true
}
func (r *releases) Len() int { return int(r.n.Load()) }

// staticInbox hands the same message to every activation.
type staticInbox struct{ payload []byte }

func (s staticInbox) Next() (string, []byte, bool) { return "bench", s.payload, true }
func (s staticInbox) Len() int                     { return 1 }

// direct runs a container's activations on the calling goroutine, locked
// to its thread, and measures them in thread CPU time.
type direct struct {
	d *device.Device
	c *container.Container
	b runtime.Budget
}

func newDirect(kind, name, file, extra string) (*direct, error) {
	d, err := device.New(context.Background(), device.Options{})
	if err != nil {
		return nil, err
	}
	m := manifest(name, kind, extra)
	if err := d.Install(context.Background(), m, guest(file)); err != nil {
		d.Close(context.Background())
		return nil, err
	}
	c, err := d.Container(name)
	if err != nil {
		return nil, err
	}
	return &direct{d: d, c: c}, nil
}

func (x *direct) close() { x.d.Close(context.Background()) }

// cpu runs one activation with payload and returns its thread CPU time.
func (x *direct) cpu(payload []byte) (time.Duration, error) {
	x.c.SetInbox(staticInbox{payload})
	x.b.Arm(time.Minute)
	return wasm.Measure(func() error { return x.c.Activate(context.Background(), &x.b) })
}

// perCall is the CPU time per endpoint call: an activation of n calls less
// an activation of none, best of a few runs.
func (x *direct) perCall(op abi.Op, n int) (float64, error) {
	best := -1.0
	for range 5 {
		empty, err := x.cpu(loopMsg(op, 0))
		if err != nil {
			return 0, err
		}
		full, err := x.cpu(loopMsg(op, uint32(n)))
		if err != nil {
			return 0, err
		}
		v := float64(full-empty) / float64(n)
		if best < 0 || v < best {
			best = v
		}
	}
	return best, nil
}

// EndpointCalls measures a permitted and a denied endpoint call for kind.
func EndpointCalls(kind string, o Options) ([]Result, error) {
	file := "hostloop.wasm"
	if kind == "ebpf" {
		file = "hostloop.bpf.o"
	}
	x, err := newDirect(kind, "hostloop", file, "")
	if err != nil {
		return nil, err
	}
	defer x.close()
	n := o.n(200000, 2000)
	ok, err := x.perCall(abi.OpRead, n)
	if err != nil {
		return nil, err
	}
	denied, err := x.perCall(abi.OpWrite, n)
	if err != nil {
		return nil, err
	}
	return []Result{
		{Name: kind + "/endpoint_call_permitted", Value: ok, Unit: "ns/call", Note: "tc.call read of actuator/led0: permission check, bounds checks, endpoint"},
		judged(Result{Name: kind + "/endpoint_call_denied", Value: denied, Unit: "ns/call", Target: "no slower than a permitted call",
			Note: "tc.call write not granted: EPERM, audited (folded per activation)"}, denied <= ok*1.05),
	}, nil
}

// ActivationOverhead measures a warm activation of a guest that does
// nothing, through the scheduler: release, handoff to a worker, budget,
// entry call, bookkeeping, completion.
func ActivationOverhead(kind string, o Options) (Result, error) {
	file := "nop.wasm"
	if kind == "ebpf" {
		file = "nop.bpf.o"
	}
	x, err := newDirect(kind, "nop", file, "")
	if err != nil {
		return Result{}, err
	}
	defer x.close()
	inbox := &releases{}
	x.c.SetInbox(inbox)
	done := make(chan struct{}, 1)
	s := sched.New(sched.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { s.Run(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()
	if err := s.Add("nop", signalling{x.c, done}); err != nil {
		return Result{}, err
	}
	n := o.n(20000, 200)
	samples := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		inbox.n.Add(1)
		s.Release("nop")
		<-done
		samples = append(samples, time.Since(t0))
	}
	p50 := percentile(samples, 0.5)
	return judged(Result{Name: kind + "/activation_warm", Value: float64(p50.Nanoseconds()) / 1000, Unit: "us (p50)",
		Target: "< 5 us", Note: fmt.Sprintf("release to completion of a no-op activation, scheduler + entry call; p99 %v", percentile(samples, 0.99).Round(100*time.Nanosecond))},
		p50 < 5*time.Microsecond), nil
}

// signalling tells a channel after each activation.
type signalling struct {
	*container.Container
	done chan struct{}
}

func (s signalling) Activate(ctx context.Context, b *runtime.Budget) error {
	err := s.Container.Activate(ctx, b)
	s.done <- struct{}{}
	return err
}

// Instantiation measures making a fresh instance of compiled code.
func Instantiation(kind string, o Options) (Result, error) {
	file, target := "idle.wasm", 20*time.Microsecond
	if kind == "ebpf" {
		file, target = "nop.bpf.o", time.Microsecond
	}
	d, err := device.New(context.Background(), device.Options{})
	if err != nil {
		return Result{}, err
	}
	defer d.Close(context.Background())
	rt := d.Runtime(runtime.Kind(kind))
	mod, err := rt.Compile(context.Background(), guest(file), runtime.Config{MemoryLimit: 64 << 10})
	if err != nil {
		return Result{}, err
	}
	defer mod.Close(context.Background())
	n := o.n(5000, 50)
	cpu, err := wasm.Measure(func() error {
		for range n {
			inst, err := mod.Instantiate(context.Background(), nopHost{})
			if err != nil {
				return err
			}
			inst.Close(context.Background())
		}
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	per := cpu / time.Duration(n)
	return judged(Result{Name: kind + "/instantiate", Value: float64(per.Nanoseconds()) / 1000, Unit: "us",
		Target: "< " + target.String(), Note: "CPU time per Instantiate+Close of " + file}, per < target), nil
}

// EBPFIdleMemory is the heap an idle eBPF instance holds: n instances of a
// guest without data sections, each run once (the stack is borrowed per
// activation, so it is not theirs to keep) and kept alive.
func EBPFIdleMemory(o Options) (Result, error) {
	d, err := device.New(context.Background(), device.Options{})
	if err != nil {
		return Result{}, err
	}
	defer d.Close(context.Background())
	mod, err := d.Runtime(runtime.EBPF).Compile(context.Background(), guest("nop.bpf.o"), runtime.Config{MemoryLimit: 64 << 10})
	if err != nil {
		return Result{}, err
	}
	defer mod.Close(context.Background())
	insts := make([]runtime.Instance, o.n(10000, 100))
	var before, after goruntime.MemStats
	goruntime.GC()
	goruntime.ReadMemStats(&before)
	for i := range insts {
		if insts[i], err = mod.Instantiate(context.Background(), nopHost{}); err != nil {
			return Result{}, err
		}
		if _, err := insts[i].Run(context.Background(), nil); err != nil {
			return Result{}, err
		}
	}
	goruntime.GC()
	goruntime.ReadMemStats(&after)
	per := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(len(insts))
	goruntime.KeepAlive(insts)
	return judged(Result{Name: "ebpf/idle_instance_bytes", Value: per, Unit: "bytes/instance", Target: "< 2 KiB + data",
		Note: fmt.Sprintf("%d idle instances of nop.bpf.o (no data), each run once; Go heap delta", len(insts))}, per < 2048), nil
}

type nopHost struct{}

func (nopHost) Open(runtime.Memory, uint32, uint32) int32                         { return -1 }
func (nopHost) Call(runtime.Memory, uint32, uint32, uint32, uint32, uint32) int32 { return -1 }
func (nopHost) Close(uint32) int32                                                { return -1 }
func (nopHost) CallName(string, abi.Op, []byte, int) int32                        { return -1 }

// Density installs n idle WebAssembly containers, runs each once (so each
// has a live instance with touched memory) and reports the resident
// memory each adds.
func Density(o Options) (Result, error) {
	n := o.n(1000, 50)
	d, err := device.New(context.Background(), device.Options{})
	if err != nil {
		return Result{}, err
	}
	defer d.Close(context.Background())
	code := guest("idle.wasm")
	// Warm up: compile once so the code cache is not counted per container.
	warm := manifest("warm", "wasm", "")
	if err := d.Install(context.Background(), warm, code); err != nil {
		return Result{}, err
	}
	goruntime.GC()
	debug.FreeOSMemory()
	before, err := rssKiB()
	if err != nil {
		return Result{}, err
	}
	var b runtime.Budget
	for i := range n {
		m := manifest(fmt.Sprintf("idle-%d", i), "wasm", "")
		if err := d.Install(context.Background(), m, code); err != nil {
			return Result{}, err
		}
		c, _ := d.Container(m.Name)
		b.Arm(time.Second)
		if err := c.Activate(context.Background(), &b); err != nil {
			return Result{}, err
		}
	}
	goruntime.GC()
	debug.FreeOSMemory()
	after, err := rssKiB()
	if err != nil {
		return Result{}, err
	}
	per := float64(after-before) / float64(n)
	return judged(Result{Name: "wasm/idle_container_rss", Value: per, Unit: "KiB/container", Target: "<= 24 KiB",
		Note: fmt.Sprintf("%d idle containers, each activated once; RSS delta", n)}, per <= 24), nil
}

// BudgetStop measures how much CPU time past its budget a runaway
// activation had used when it stopped (the watchdog's latency, in the
// currency budgets are in).
func BudgetStop(kind string, o Options) (Result, error) {
	file := "hostloop.wasm"
	if kind == "ebpf" {
		file = "hostloop.bpf.o"
	}
	x, err := newDirect(kind, "hostloop", file, "")
	if err != nil {
		return Result{}, err
	}
	defer x.close()
	// An endless stream of calls is a runaway the budget must cut.
	x.c.SetInbox(staticInbox{loopMsg(abi.OpRead, 1<<31)})
	n := o.n(200, 10)
	samples := make([]time.Duration, 0, n)
	for range n {
		x.b.Arm(time.Millisecond)
		err := x.c.Activate(context.Background(), &x.b)
		late := x.b.Overrun()
		var f *runtime.Fault
		if !errors.As(err, &f) || f.Kind != runtime.FaultBudget {
			return Result{}, fmt.Errorf("runaway not stopped for its budget: %v", err)
		}
		samples = append(samples, late)
	}
	p99 := percentile(samples, 0.99)
	return judged(Result{Name: kind + "/budget_stop_p99", Value: float64(p99.Nanoseconds()) / 1000, Unit: "us CPU past budget",
		Target: "< 1 ms", Note: fmt.Sprintf("runaway of endpoint calls with a 1 ms CPU budget, %d runs; p50 %v", n, percentile(samples, 0.5).Round(100*time.Nanosecond))},
		p99 < time.Millisecond), nil
}

// MessageLatency measures the time from a publish on the device's bus to
// the subscribed container's activation having handled it (it logs the
// payload; the log line is the finish mark).
func MessageLatency(o Options) (Result, error) {
	seen := make(chan struct{}, 1)
	r, err := newRig(device.Options{OnLog: func(mgmt.LogLine) { seen <- struct{}{} }})
	if err != nil {
		return Result{}, err
	}
	defer r.close()
	if err := r.install(manifest("echo", "wasm", "  - {name: log, ops: [write]}\n"), guest("echo.wasm")); err != nil {
		return Result{}, err
	}
	// Paced below the default rate ceiling of log (meta.DefaultLogRate per
	// second and container): back to back, the echo container's log calls
	// past it get EAGAIN and their messages leave no mark to wait for.
	n := o.n(2000, 100)
	pace := time.Second / time.Duration(meta.DefaultLogRate) * 5 / 4
	samples := make([]time.Duration, 0, n)
	payload := []byte("ping")
	next := time.Now()
	for range n {
		time.Sleep(time.Until(next))
		next = next.Add(pace)
		t0 := time.Now()
		if err := r.d.Bus().Publish("bench", "bench/echo", payload); err != nil {
			return Result{}, err
		}
		select {
		case <-seen:
		case <-time.After(10 * time.Second):
			return Result{}, errors.New("message not handled")
		}
		samples = append(samples, time.Since(t0))
	}
	return Result{Name: "msg/publish_to_activation_p50", Value: float64(percentile(samples, 0.5).Nanoseconds()) / 1000, Unit: "us",
		Note: fmt.Sprintf("publish on the bus to the event container's activation logging it; p99 %v, %d messages, one every %v",
			percentile(samples, 0.99).Round(100*time.Nanosecond), n, pace)}, nil
}
