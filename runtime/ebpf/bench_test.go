package ebpf

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf/asm"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/bench/kernels"
	"github.com/tinycontainer/tinycontainer/runtime"
	"github.com/tinycontainer/tinycontainer/runtime/wasm"
)

// nopHost answers every call at once, so benchmarks measure the runtime.
type nopHost struct{}

func (nopHost) Open(runtime.Memory, uint32, uint32) int32                         { return 0 }
func (nopHost) Call(runtime.Memory, uint32, uint32, uint32, uint32, uint32) int32 { return 0 }
func (nopHost) Close(uint32) int32                                                { return 0 }
func (nopHost) CallName(string, abi.Op, []byte, int) int32                        { return 0 }

const callsPerRun = 1000

// cpuLoop runs the benchmark loop body under wasm.Measure and reports
// the benchmark thread's CPU time per op (divided by per) under unit. On
// a machine shared with other work, wall time also counts the time spent
// waiting for a CPU; thread CPU time does not.
func cpuLoop(b *testing.B, per int, unit string, body func() error) {
	d, err := wasm.Measure(func() error {
		for b.Loop() {
			if err := body(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(d.Nanoseconds())/float64(b.N*per), unit)
}

// reportBare reports a bare wazero yardstick: the CPU time d of n ops. The
// wall ns/op of such a benchmark includes compiling the module, so cpu-ns
// is its figure.
func reportBare(b *testing.B, d time.Duration, n int, unit string) {
	b.ReportMetric(float64(d.Nanoseconds())/float64(n), unit)
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
		cpuLoop(b, callsPerRun, "cpu-ns/call", func() error {
			_, err := in.Run(context.Background(), &budget)
			return err
		})
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*callsPerRun), "ns/call")
	})
	b.Run("wazero", func(b *testing.B) {
		n := b.N * callsPerRun
		d, err := wasm.BareHostCall(context.Background(), n)
		if err != nil {
			b.Fatal(err)
		}
		reportBare(b, d, n, "cpu-ns/call")
	})
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
		cpuLoop(b, 1, "cpu-ns/op", func() error {
			_, err := in.Run(context.Background(), &budget)
			return err
		})
	})
	b.Run("wazero", func(b *testing.B) {
		code, err := kernels.Wasm("crc32")
		if err != nil {
			b.Fatal(err)
		}
		d, err := wasm.RunBare(context.Background(), code, b.N)
		if err != nil {
			b.Fatal(err)
		}
		reportBare(b, d, b.N, "cpu-ns/op")
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
			cpuLoop(b, 1, "cpu-ns/op", func() error {
				_, err := m.Instantiate(context.Background(), nopHost{})
				return err
			})
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
	cpuLoop(b, 1, "cpu-ns/op", func() error {
		_, err := in.Run(context.Background(), &budget)
		return err
	})
}

// BenchmarkBudgetOvershoot runs the runaway guest under a 1 ms budget and
// reports how much CPU time past it it had used when it stopped (mean
// and worst).
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
		if _, err := in.Run(context.Background(), &budget); faultKind(err) != runtime.FaultBudget {
			b.Fatalf("got %v, want a budget fault", err)
		}
		over := budget.Overrun() // CPU time past the budget
		total += over
		worst = max(worst, over)
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "overshoot-µs")
	b.ReportMetric(float64(worst.Microseconds()), "worst-overshoot-µs")
}

// BenchmarkCompile: the install-time cost of loading, verifying and
// preparing an object, for the engine under test (machine code where the
// platform has a compiler; TC_EBPF_INTERPRET=1 for the interpreter).
func BenchmarkCompile(b *testing.B) {
	for _, name := range []string{"hello", "crc32"} {
		b.Run(name, func(b *testing.B) {
			obj, err := kernels.BPF(name)
			if name == "hello" {
				obj, err = os.ReadFile("testdata/hello.bpf.o")
			}
			if err != nil {
				b.Fatal(err)
			}
			rt := testRuntime()
			b.ReportAllocs()
			cpuLoop(b, 1, "cpu-ns/op", func() error {
				m, err := rt.Compile(context.Background(), obj, runtime.Config{MemoryLimit: 16 * 1024})
				if err == nil {
					err = m.Close(context.Background())
				}
				return err
			})
		})
	}
}
