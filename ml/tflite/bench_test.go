package tflite

import (
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	tcruntime "github.com/tinycontainer/tinycontainer/runtime"
)

// benchModels are the MLPerf Tiny models with their TFLite Micro arena
// sizes (the planner must not need more) and an input vector.
var benchModels = []struct {
	name, model, input string
	tflmArena          int
}{
	{"KWS", "mlperf_tiny/kws/kws_ref_model.tflite", "mlperf_tiny/kws/kws_input0.int8.bin", 24000},
	{"IC", "mlperf_tiny/ic/pretrainedResnet_quant.tflite", "mlperf_tiny/ic/ic_input0.int8.bin", 55712},
	{"VWW", "mlperf_tiny/vww/vww_96_int8.tflite", "mlperf_tiny/vww/vww_input0.int8.bin", 103392},
	{"AD", "mlperf_tiny/ad/ad01_int8.tflite", "mlperf_tiny/ad/ad_window0.int8.bin", 3424},
}

func TestArenaWithinTFLM(t *testing.T) {
	kernelSets(t, testArenaWithinTFLM)
}

func testArenaWithinTFLM(t *testing.T) {
	dir := tinymlDir(t)
	for _, bm := range benchModels {
		_, it := loadModel(t, filepath.Join(dir, bm.model))
		total := it.ArenaBytes() + it.ScratchBytes()
		t.Logf("%s: arena %d B + scratch %d B = %d B (TFLM arena %d B), %d MACs", bm.name, it.ArenaBytes(), it.ScratchBytes(), total, bm.tflmArena, it.MACs())
		if total > bm.tflmArena {
			t.Errorf("%s: %d bytes, more than TFLM's %d", bm.name, total, bm.tflmArena)
		}
	}
}

func BenchmarkInvoke(b *testing.B) { benchInvoke(b, false) }

// BenchmarkInvokePaced is BenchmarkInvoke paced as the ml endpoint paces
// it (issue 10), by a Pace that reads the thread's CPU clock: it reports
// the most CPU time between two Pace calls (max-gap-ns, the longest an
// inference holds its worker without a suspension point). Its cpu-ns/op
// includes the clock reads (~1 µs each); the endpoint's Pace is a budget
// checkpoint's fast path (an atomic load and a monotonic clock read).
func BenchmarkInvokePaced(b *testing.B) { benchInvoke(b, true) }

// BenchmarkPureGo is BenchmarkInvoke with the pure-Go kernels (what CPUs
// without AVX2 run).
func BenchmarkPureGo(b *testing.B) { withSIMD(b, false, func() { benchInvoke(b, false) }) }

// BenchmarkPureGoPaced is BenchmarkInvokePaced with the pure-Go kernels.
func BenchmarkPureGoPaced(b *testing.B) { withSIMD(b, false, func() { benchInvoke(b, true) }) }

func benchInvoke(b *testing.B, paced bool) {
	dir := tinymlDir(b)
	for _, bm := range benchModels {
		b.Run(bm.name, func(b *testing.B) {
			model, it := loadModel(b, filepath.Join(dir, bm.model))
			in := readFile(b, filepath.Join(dir, bm.input))
			out := make([]byte, it.out.n)
			b.ReportAllocs()
			// On the shared 2-core machine wall time includes waiting for a
			// core; thread CPU time (cpu-ns/op) is the kernel's own cost.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var pace Pace
			var last, gap int64
			if paced {
				pace = func() bool {
					now := clockCPU()
					gap = max(gap, now-last)
					last = now
					return false
				}
			}
			c0 := threadCPU()
			for b.Loop() {
				last = clockCPU()
				if _, err := it.InvokePaced(model, in, out, pace); err != nil {
					b.Fatal(err)
				}
				if paced {
					gap = max(gap, clockCPU()-last)
				}
			}
			b.ReportMetric(float64(threadCPU()-c0)/float64(b.N), "cpu-ns/op")
			if paced {
				b.ReportMetric(float64(gap), "max-gap-ns")
			}
			b.ReportMetric(float64(it.ArenaBytes()+it.ScratchBytes()), "arena-B")
		})
	}
}

// clockCPU is the thread's CPU clock at nanosecond resolution (getrusage
// has the scheduler tick's).
func clockCPU() int64 {
	d, _ := tcruntime.ThreadCPU()
	return int64(d)
}

func threadCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
