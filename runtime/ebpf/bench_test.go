package ebpf

import (
	"context"
	"os"
	goruntime "runtime"
	"testing"
	"time"

	"github.com/cilium/ebpf/asm"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/bench/kernels"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// nopHost answers every call at once, so benchmarks measure the runtime.
type nopHost struct{}

func (nopHost) Open(runtime.Memory, uint32, uint32) int32                         { return 0 }
func (nopHost) Call(runtime.Memory, uint32, uint32, uint32, uint32, uint32) int32 { return 0 }
func (nopHost) Close(uint32) int32                                                { return 0 }
func (nopHost) CallName(string, abi.Op, []byte, int) int32                        { return 0 }

const callsPerRun = 1000

// cpuMeter starts measuring the benchmark goroutine's thread CPU time; the
// returned func reports it per op (divided by per) under unit. On a
// machine shared with other work, wall time also counts the time spent
// waiting for a CPU; thread CPU time does not.
func cpuMeter(b *testing.B, per int, unit string) func() {
	goruntime.LockOSThread()
	start, ok := threadCPU()
	return func() {
		end, _ := threadCPU()
		goruntime.UnlockOSThread()
		if ok {
			b.ReportMetric(float64(end-start)/float64(b.N*per), unit)
		}
	}
}

// BenchmarkHelperCall: an eBPF loop calling helper 3 (close) callsPerRun
// times, next to the same loop in WebAssembly calling a Go host function
// through bare wazero (compiler). ns/call includes the loop's own
// instructions in both.
func BenchmarkHelperCall(b *testing.B) {
	b.Run("ebpf", func(b *testing.B) {
		m, err := rawModule(assemble(b,
			asm.Mov.Imm(asm.R6, callsPerRun),
			asm.Mov.Reg(asm.R1, asm.R6).WithSymbol("loop"),
			asm.BuiltinFunc(helperClose).Call(),
			asm.Sub.Imm(asm.R6, 1),
			asm.JNE.Imm(asm.R6, 0, "loop"),
			asm.Return()))
		if err != nil {
			b.Fatal(err)
		}
		in, _ := m.Instantiate(context.Background(), nopHost{})
		var budget runtime.Budget
		budget.Arm(time.Hour)
		stop := cpuMeter(b, callsPerRun, "cpu-ns/call")
		for b.Loop() {
			if _, err := in.Run(context.Background(), &budget); err != nil {
				b.Fatal(err)
			}
		}
		stop()
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*callsPerRun), "ns/call")
	})
	b.Run("wazero", func(b *testing.B) {
		ctx := context.Background()
		r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
		defer r.Close(ctx)
		_, err := r.NewHostModuleBuilder("tc").NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, stack []uint64) { stack[0] = 0 }),
				[]api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).
			Export("close").Instantiate(ctx)
		if err != nil {
			b.Fatal(err)
		}
		mod := instantiateWasm(b, r, "testdata/hostcall.wasm")
		loop := mod.ExportedFunction("loop")
		stop := cpuMeter(b, callsPerRun, "cpu-ns/call")
		for b.Loop() {
			if _, err := loop.Call(ctx, callsPerRun); err != nil {
				b.Fatal(err)
			}
		}
		stop()
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*callsPerRun), "ns/call")
	})
}

func instantiateWasm(b *testing.B, r wazero.Runtime, path string) api.Module {
	code, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	mod, err := r.Instantiate(context.Background(), code)
	if err != nil {
		b.Fatal(err)
	}
	return mod
}

// BenchmarkCRC32: the same C kernel (bench/kernels/crc32_kernel.h) checksums
// 4 KiB per activation, as eBPF here and as WebAssembly in bare wazero
// (compiler).
func BenchmarkCRC32(b *testing.B) {
	const size = 4096
	b.Run("ebpf", func(b *testing.B) {
		in, err := loadKernel(b, "crc32", 16*1024).Instantiate(context.Background(), nopHost{})
		if err != nil {
			b.Fatal(err)
		}
		var budget runtime.Budget
		budget.Arm(time.Hour)
		if _, err := in.Run(context.Background(), &budget); err != nil { // builds the table
			b.Fatal(err)
		}
		b.SetBytes(size)
		stop := cpuMeter(b, 1, "cpu-ns/op")
		for b.Loop() {
			if _, err := in.Run(context.Background(), &budget); err != nil {
				b.Fatal(err)
			}
		}
		stop()
	})
	b.Run("wazero", func(b *testing.B) {
		ctx := context.Background()
		r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
		defer r.Close(ctx)
		code, err := kernels.Wasm("crc32")
		if err != nil {
			b.Fatal(err)
		}
		mod, err := r.Instantiate(ctx, code)
		if err != nil {
			b.Fatal(err)
		}
		main := mod.ExportedFunction("tc_main")
		if _, err := main.Call(ctx); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(size)
		stop := cpuMeter(b, 1, "cpu-ns/op")
		for b.Loop() {
			if _, err := main.Call(ctx); err != nil {
				b.Fatal(err)
			}
		}
		stop()
	})
}

// BenchmarkInstantiate makes instances of a guest with little data
// (hello: 24 bytes of .rodata) and of one with 5 KiB (crc32). B/op is what
// an idle instance holds: its data plus the Instance itself.
func BenchmarkInstantiate(b *testing.B) {
	for _, name := range []string{"hello", "crc32"} {
		b.Run(name, func(b *testing.B) {
			var m *Module
			if name == "crc32" {
				m = loadKernel(b, name, 16*1024).(*Module)
			} else {
				m = loadGuest(b, name, 16*1024).(*Module)
			}
			b.ReportAllocs()
			stop := cpuMeter(b, 1, "cpu-ns/op")
			for b.Loop() {
				if _, err := m.Instantiate(context.Background(), nopHost{}); err != nil {
					b.Fatal(err)
				}
			}
			stop()
			b.ReportMetric(float64(m.dataLen), "data-bytes")
		})
	}
}

// BenchmarkActivation is the fixed cost of one Run of a program that
// returns at once: borrowing and clearing a stack, and the state checks.
func BenchmarkActivation(b *testing.B) {
	m, err := rawModule(assemble(b, asm.Mov.Imm(asm.R0, 0), asm.Return()))
	if err != nil {
		b.Fatal(err)
	}
	in, _ := m.Instantiate(context.Background(), nopHost{})
	var budget runtime.Budget
	budget.Arm(time.Hour)
	b.ReportAllocs()
	stop := cpuMeter(b, 1, "cpu-ns/op")
	for b.Loop() {
		if _, err := in.Run(context.Background(), &budget); err != nil {
			b.Fatal(err)
		}
	}
	stop()
}

// BenchmarkBudgetOvershoot runs the runaway guest under a 1 ms budget and
// reports how far past the deadline it stopped (mean and worst).
func BenchmarkBudgetOvershoot(b *testing.B) {
	m := loadGuest(b, "runaway", 4096)
	var total, worst time.Duration
	for b.Loop() {
		in, err := m.Instantiate(context.Background(), nopHost{})
		if err != nil {
			b.Fatal(err)
		}
		var budget runtime.Budget
		budget.Arm(time.Millisecond)
		deadline := budget.Deadline()
		if _, err := in.Run(context.Background(), &budget); faultKind(err) != runtime.FaultBudget {
			b.Fatalf("got %v, want a budget fault", err)
		}
		over := time.Duration(runtime.Now() - deadline)
		total += over
		worst = max(worst, over)
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "overshoot-µs")
	b.ReportMetric(float64(worst.Microseconds()), "worst-overshoot-µs")
}
