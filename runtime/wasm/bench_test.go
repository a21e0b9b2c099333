package wasm

import (
	"context"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/bench/kernels"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// noopHost is the trivial Host of the host call benchmark.
type noopHost struct{}

func (noopHost) Open(runtime.Memory, uint32, uint32) int32                         { return 0 }
func (noopHost) Call(runtime.Memory, uint32, uint32, uint32, uint32, uint32) int32 { return 1 }
func (noopHost) Close(uint32) int32                                                { return 0 }
func (noopHost) CallName(string, abi.Op, []byte, int) int32                        { return 0 }

// bareFunc is export name of code under bare wazero (see newBare).
func bareFunc(b *testing.B, code []byte, name string) api.Function {
	ctx := context.Background()
	rt, mod, err := newBare(ctx, code)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rt.Close(ctx) })
	return mod.ExportedFunction(name)
}

func ourInstance(b *testing.B, name string, host runtime.Host) runtime.Instance {
	ctx := context.Background()
	r, err := New(ctx, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close(ctx) })
	return instantiate(b, compile(b, r, name, 1<<20), host)
}

// cpuMeter locks the benchmark goroutine to its thread and returns a func
// that reports the thread's CPU time per op divided by per, as unit.
func cpuMeter(b *testing.B, per int, unit string) func() {
	goruntime.LockOSThread()
	start, ok := runtime.ThreadCPU()
	return func() {
		end, _ := runtime.ThreadCPU()
		goruntime.UnlockOSThread()
		if ok {
			b.ReportMetric(float64(end-start)/float64(b.N*per), unit)
		}
	}
}

// BenchmarkHostCall: host calls from a guest loop, bare wazero vs tc.call
// through the adapter into a trivial Host.
func BenchmarkHostCall(b *testing.B) {
	const calls = 1000
	b.Run("bare", func(b *testing.B) {
		f := bareFunc(b, hostLoop, "loop")
		stack := make([]uint64, 1)
		ctx := context.Background()
		stop := cpuMeter(b, calls, "cpu-ns/call")
		for b.Loop() {
			stack[0] = calls
			if err := f.CallWithStack(ctx, stack); err != nil {
				b.Fatal(err)
			}
		}
		stop()
	})
	b.Run("tc", func(b *testing.B) {
		inst := ourInstance(b, "hostcall.wasm", noopHost{})
		var bud runtime.Budget
		ctx := context.Background()
		b.ReportAllocs()
		stop := cpuMeter(b, calls, "cpu-ns/call")
		for b.Loop() {
			bud.Arm(time.Second)
			if code, err := inst.Run(ctx, &bud); err != nil || code != calls {
				b.Fatal(err, code)
			}
		}
		stop()
	})
}

// BenchmarkCompute: the bench kernels, bare wazero (uninstrumented,
// compiler) vs instrumented under a budget, vs bare with wazero's own
// WithCloseOnContextDone. The first activation (table set-up) is left
// out.
func BenchmarkCompute(b *testing.B) {
	for _, k := range kernels.List() {
		code := guest(b, k+".wasm")
		b.Run(k+"/bare", func(b *testing.B) {
			f := bareFunc(b, code, "tc_main")
			stack := make([]uint64, 1)
			ctx := context.Background()
			if err := f.CallWithStack(ctx, stack); err != nil {
				b.Fatal(err)
			}
			stop := cpuMeter(b, 1, "cpu-ns/op")
			for b.Loop() {
				if err := f.CallWithStack(ctx, stack); err != nil {
					b.Fatal(err)
				}
			}
			stop()
		})
		b.Run(k+"/instrumented", func(b *testing.B) {
			inst := ourInstance(b, k+".wasm", noopHost{})
			var bud runtime.Budget
			ctx := context.Background()
			bud.Arm(time.Minute)
			if _, err := inst.Run(ctx, &bud); err != nil {
				b.Fatal(err)
			}
			stop := cpuMeter(b, 1, "cpu-ns/op")
			for b.Loop() {
				bud.Arm(time.Minute)
				if _, err := inst.Run(ctx, &bud); err != nil {
					b.Fatal(err)
				}
			}
			stop()
		})
		b.Run(k+"/closeOnDone", func(b *testing.B) {
			ctx := context.Background()
			rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(true))
			defer rt.Close(ctx)
			if err := bareStub(ctx, rt); err != nil {
				b.Fatal(err)
			}
			mod, err := rt.Instantiate(ctx, code)
			if err != nil {
				b.Fatal(err)
			}
			f := mod.ExportedFunction("tc_main")
			stack := make([]uint64, 1)
			cctx, cancel := context.WithTimeout(ctx, time.Hour)
			defer cancel()
			stop := cpuMeter(b, 1, "cpu-ns/op")
			for b.Loop() {
				if err := f.CallWithStack(cctx, stack); err != nil {
					b.Fatal(err)
				}
			}
			stop()
		})
	}
}

// BenchmarkOverhead runs each kernel bare and instrumented in turn, on
// one locked thread, and reports the median of the ratios of their CPU
// times: on a shared machine, load changes over seconds, and alternating
// exposes both to the same.
func BenchmarkOverhead(b *testing.B) {
	for _, k := range kernels.List() {
		b.Run(k, func(b *testing.B) {
			ctx := context.Background()
			f := bareFunc(b, guest(b, k+".wasm"), "tc_main")
			inst := ourInstance(b, k+".wasm", noopHost{})
			stack := make([]uint64, 1)
			var bud runtime.Budget
			bud.Arm(time.Hour)
			if _, err := inst.Run(ctx, &bud); err != nil {
				b.Fatal(err)
			}
			if err := f.CallWithStack(ctx, stack); err != nil {
				b.Fatal(err)
			}
			goruntime.LockOSThread()
			defer goruntime.UnlockOSThread()
			var ratios []float64
			var bare, ours time.Duration
			for b.Loop() {
				t0, _ := runtime.ThreadCPU()
				if err := f.CallWithStack(ctx, stack); err != nil {
					b.Fatal(err)
				}
				t1, _ := runtime.ThreadCPU()
				if _, err := inst.Run(ctx, &bud); err != nil {
					b.Fatal(err)
				}
				t2, _ := runtime.ThreadCPU()
				bare += t1 - t0
				ours += t2 - t1
				ratios = append(ratios, float64(t2-t1)/float64(t1-t0))
			}
			slices.Sort(ratios)
			b.ReportMetric(ratios[len(ratios)/2], "median-ratio")
			b.ReportMetric(float64(bare)/float64(b.N), "bare-cpu-ns/op")
			b.ReportMetric(float64(ours)/float64(b.N), "ours-cpu-ns/op")
		})
	}
}

// BenchmarkBudgetStop: a runaway guest under a 1 ms budget; the metrics
// are the time from the deadline to Run returning.
func BenchmarkBudgetStop(b *testing.B) {
	for _, busy := range []bool{false, true} {
		b.Run("busy="+strconv.FormatBool(busy), func(b *testing.B) {
			ctx := context.Background()
			r, err := New(ctx, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close(ctx)
			m := compile(b, r, "faults.wasm", 1<<20)
			if busy {
				stop := make(chan struct{})
				defer close(stop)
				go func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
					}
				}()
			}
			lat := make([]int64, 0, b.N)
			for b.Loop() {
				inst, err := m.Instantiate(ctx, &fakeHost{mode: 1})
				if err != nil {
					b.Fatal(err)
				}
				var bud runtime.Budget
				bud.Arm(time.Millisecond)
				_, err = inst.Run(ctx, &bud)
				lat = append(lat, int64(bud.Overrun())) // CPU time past the budget
				if err == nil {
					b.Fatal("runaway guest returned")
				}
				inst.Close(ctx)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2])/1e3, "p50-us")
			b.ReportMetric(float64(lat[len(lat)*99/100])/1e3, "p99-us")
			b.ReportMetric(float64(lat[len(lat)-1])/1e3, "max-us")
		})
	}
}

// BenchmarkInstantiate: a fresh instance of a small C guest (64 KiB
// memory), closed again.
func BenchmarkInstantiate(b *testing.B) {
	ctx := context.Background()
	r, err := New(ctx, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close(ctx)
	m := compile(b, r, "counter.wasm", 1<<20)
	h := &fakeHost{}
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		inst, err := m.Instantiate(ctx, h)
		if err != nil {
			b.Fatal(err)
		}
		inst.Close(ctx)
	}
	reportCPU(b, start)
}

// BenchmarkInstantiateRun: a fresh instance of a small C guest, one
// activation (which touches its stack and data), closed again.
func BenchmarkInstantiateRun(b *testing.B) {
	ctx := context.Background()
	r, err := New(ctx, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close(ctx)
	m := compile(b, r, "counter.wasm", 1<<20)
	h := &fakeHost{}
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		inst, err := m.Instantiate(ctx, h)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := inst.Run(ctx, nil); err != nil {
			b.Fatal(err)
		}
		inst.Close(ctx)
	}
	reportCPU(b, start)
}

// BenchmarkIdleInstances measures the memory of 1000 idle instances of a
// small C guest, each run once (its stack and data touched). Run with
// -benchtime=1x.
func BenchmarkIdleInstances(b *testing.B) {
	const n = 1000
	ctx := context.Background()
	r, err := New(ctx, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close(ctx)
	m := compile(b, r, "counter.wasm", 1<<20)
	h := &fakeHost{}
	for b.Loop() {
		heap0, rss0 := memNow()
		insts := make([]runtime.Instance, 0, n)
		for i := 0; i < n; i++ {
			inst, err := m.Instantiate(ctx, h)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := inst.Run(ctx, nil); err != nil {
				b.Fatal(err)
			}
			insts = append(insts, inst)
		}
		heap1, rss1 := memNow()
		b.ReportMetric(float64(heap1-heap0)/n/1024, "heap-KiB/inst")
		b.ReportMetric(float64(rss1-rss0)/n/1024, "rss-KiB/inst")
		for _, inst := range insts {
			inst.Close(ctx)
		}
	}
}

// reportCPU adds the CPU time per op since start.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// memNow is the live Go heap and the process RSS, in bytes, after a GC.
func memNow() (heap, rss int64) {
	goruntime.GC()
	debug.FreeOSMemory()
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	b, err := os.ReadFile("/proc/self/statm")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			pages, _ := strconv.ParseInt(f[1], 10, 64)
			rss = pages * int64(os.Getpagesize())
		}
	}
	return int64(ms.HeapAlloc), rss
}
