package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/tinycontainer/tinycontainer/bench/kernels"
	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/runtime"
	"github.com/tinycontainer/tinycontainer/runtime/wasm"
)

// BareHostCall is the cost of one no-op host function call from a guest
// loop under bare wazero: the yardstick of the endpoint-call targets.
func BareHostCall(o Options) (float64, error) {
	n := o.n(200000, 2000)
	best := time.Duration(-1)
	for range 5 {
		d, err := wasm.BareHostCall(context.Background(), n)
		if err != nil {
			return 0, err
		}
		if best < 0 || d < best {
			best = d
		}
	}
	return float64(best) / float64(n), nil
}

// judgeCalls adds the endpoint-call targets: a permitted WebAssembly call
// at most 1.3x a bare wazero host call, an eBPF one at most half of it.
func judgeCalls(rs []Result, bare float64) []Result {
	out := []Result{{Name: "wazero/bare_host_call", Value: bare, Unit: "ns/call", Note: "no-op Go host function from a guest loop, bare wazero"}}
	for _, r := range rs {
		switch r.Name {
		case "wasm/endpoint_call_permitted":
			r = judged(r, r.Value <= 1.3*bare)
			r.Target = fmt.Sprintf("<= 1.3x bare (%.1f)", 1.3*bare)
		case "ebpf/endpoint_call_permitted":
			r = judged(r, r.Value <= 0.5*bare)
			r.Target = fmt.Sprintf("<= 0.5x bare (%.1f)", 0.5*bare)
		}
		out = append(out, r)
	}
	return out
}

// Compute runs each compute kernel as a container under the watchdog and
// under bare wazero, alternating, and reports the median ratio.
func Compute(o Options) ([]Result, error) {
	d, err := device.New(context.Background(), device.Options{})
	if err != nil {
		return nil, err
	}
	defer d.Close(context.Background())
	var out []Result
	for _, name := range kernels.List() {
		code, err := kernels.Wasm(name)
		if err != nil {
			return nil, err
		}
		m := manifest("k-"+name, "wasm", "")
		m.Endpoints = nil
		if err := d.Install(context.Background(), m, code); err != nil {
			return nil, err
		}
		c, _ := d.Container(m.Name)
		var b runtime.Budget
		runs := o.n(20, 2)
		var ratios []float64
		var ours, bare time.Duration
		for range o.n(5, 1) {
			ours, err = wasm.Measure(func() error {
				for range runs {
					b.Arm(time.Minute)
					if err := c.Activate(context.Background(), &b); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if bare, err = wasm.RunBare(context.Background(), code, runs); err != nil {
				return nil, fmt.Errorf("%s bare: %w", name, err)
			}
			ratios = append(ratios, float64(ours)/float64(bare))
		}
		slices.Sort(ratios)
		r := ratios[len(ratios)/2]
		out = append(out, judged(Result{Name: "wasm/compute_" + name, Value: r, Unit: "x bare wazero", Target: "<= 1.3x",
			Note: fmt.Sprintf("under the watchdog %v vs bare %v per run (median of %d)", (ours / time.Duration(runs)).Round(time.Microsecond),
				(bare / time.Duration(runs)).Round(time.Microsecond), len(ratios))}, r <= 1.3))
	}
	return out, nil
}

// EBPFCompute runs the CRC32 kernel as an eBPF container against the same C
// source compiled to WebAssembly under bare wazero.
func EBPFCompute(o Options) (Result, error) {
	bpf, err := kernels.BPF("crc32")
	if err != nil {
		return Result{}, err
	}
	code, err := kernels.Wasm("crc32")
	if err != nil {
		return Result{}, err
	}
	d, err := device.New(context.Background(), device.Options{})
	if err != nil {
		return Result{}, err
	}
	defer d.Close(context.Background())
	m := manifest("k-crc32", "ebpf", "")
	m.Endpoints = nil
	m.Limits.Memory = 64 << 10
	if err := d.Install(context.Background(), m, bpf); err != nil {
		return Result{}, err
	}
	c, _ := d.Container(m.Name)
	var b runtime.Budget
	runs := o.n(20, 2)
	ours, err := wasm.Measure(func() error {
		for range runs {
			b.Arm(time.Minute)
			if err := c.Activate(context.Background(), &b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	bare, err := wasm.RunBare(context.Background(), code, runs)
	if err != nil {
		return Result{}, err
	}
	r := float64(ours) / float64(bare)
	return judged(Result{Name: "ebpf/compute_crc32", Value: r, Unit: "x wazero compiled", Target: "<= 10x",
		Note: fmt.Sprintf("interpreter %v vs wazero %v per run", (ours / time.Duration(runs)).Round(time.Microsecond),
			(bare / time.Duration(runs)).Round(time.Microsecond))}, r <= 10), nil
}
