package wasm

import (
	"context"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// noopHost is the trivial Host of the host call benchmark.
type noopHost struct{}

func (noopHost) Open(runtime.Memory, uint32, uint32) int32                         { return 0 }
func (noopHost) Call(runtime.Memory, uint32, uint32, uint32, uint32, uint32) int32 { return 1 }
func (noopHost) Close(uint32) int32                                                { return 0 }
func (noopHost) CallName(string, abi.Op, []byte, int) int32                        { return 0 }

// bareModule instantiates code, uninstrumented, in a plain wazero runtime
// whose "tc" module has a no-op call.
func bareModule(b *testing.B, code []byte, closeOnDone bool) api.Function {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCloseOnContextDone(closeOnDone))
	b.Cleanup(func() { rt.Close(ctx) })
	_, err := rt.NewHostModuleBuilder("tc").NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, s []uint64) { s[0] = 1 }),
			[]api.ValueType{i32, i32, i32, i32, i32}, []api.ValueType{i32}).Export("call").Instantiate(ctx)
	if err != nil {
		b.Fatal(err)
	}
	mod, err := rt.InstantiateWithConfig(ctx, code, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		b.Fatal(err)
	}
	return mod.ExportedFunction("tc_main")
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

// BenchmarkHostCall: 1000 host calls per op, bare wazero vs tc.call
// through the adapter into a trivial Host.
func BenchmarkHostCall(b *testing.B) {
	const calls = 1000
	b.Run("bare", func(b *testing.B) {
		f := bareModule(b, guest(b, "hostcall.wasm"), false)
		stack := make([]uint64, 1)
		ctx := context.Background()
		for b.Loop() {
			if err := f.CallWithStack(ctx, stack); err != nil || stack[0] != calls {
				b.Fatal(err, stack[0])
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*calls), "ns/call")
	})
	b.Run("tc", func(b *testing.B) {
		inst := ourInstance(b, "hostcall.wasm", noopHost{})
		var bud runtime.Budget
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			bud.Arm(time.Second)
			if code, err := inst.Run(ctx, &bud); err != nil || code != calls {
				b.Fatal(err, code)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*calls), "ns/call")
	})
}

// BenchmarkCompute: C kernels, bare wazero (uninstrumented, compiler) vs
// instrumented under a budget vs bare with WithCloseOnContextDone.
func BenchmarkCompute(b *testing.B) {
	for _, k := range []string{"crc32", "matmul", "coremark", "fib"} {
		code := guest(b, k+".wasm")
		b.Run(k+"/bare", func(b *testing.B) {
			f := bareModule(b, code, false)
			stack := make([]uint64, 1)
			for b.Loop() {
				if err := f.CallWithStack(context.Background(), stack); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(k+"/instrumented", func(b *testing.B) {
			inst := ourInstance(b, k+".wasm", noopHost{})
			var bud runtime.Budget
			for b.Loop() {
				bud.Arm(time.Minute)
				if _, err := inst.Run(context.Background(), &bud); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(k+"/closeOnDone", func(b *testing.B) {
			f := bareModule(b, code, true)
			stack := make([]uint64, 1)
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			for b.Loop() {
				if err := f.CallWithStack(ctx, stack); err != nil {
					b.Fatal(err)
				}
			}
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
				lat = append(lat, runtime.Now()-bud.Deadline())
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

// cpuTime is the CPU time the process has used (all threads, GC
// included): on a machine shared with other work it measures the cost of
// an operation better than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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
