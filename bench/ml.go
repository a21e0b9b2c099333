package bench

import (
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"time"

	"github.com/tinycontainer/tinycontainer/ml/tflite"
	"github.com/tinycontainer/tinycontainer/runtime"
	"github.com/tinycontainer/tinycontainer/runtime/wasm"
)

// mlModels are the MLPerf Tiny models of ../shared/tinyml with TFLite
// Micro's reference-kernel time per inference (-O2, this machine) and its
// arena size.
var mlModels = []struct {
	name, model, input string
	tflm               time.Duration
	arena              int
}{
	{"kws", "mlperf_tiny/kws/kws_ref_model.tflite", "mlperf_tiny/kws/kws_input0.int8.bin", 2300 * time.Microsecond, 24000},
	{"ic", "mlperf_tiny/ic/pretrainedResnet_quant.tflite", "mlperf_tiny/ic/ic_input0.int8.bin", 7060 * time.Microsecond, 55712},
	{"vww", "mlperf_tiny/vww/vww_96_int8.tflite", "mlperf_tiny/vww/vww_input0.int8.bin", 6030 * time.Microsecond, 103392},
	{"ad", "mlperf_tiny/ad/ad01_int8.tflite", "mlperf_tiny/ad/ad_window0.int8.bin", 140 * time.Microsecond, 3424},
}

// TinyMLDir is where the shared models live: $TINYML_DIR, else the first
// shared/tinyml found beside the working directory or one of its parents
// (the repository sits beside ../shared).
func TinyMLDir() string {
	if d := os.Getenv("TINYML_DIR"); d != "" {
		return d
	}
	up := ".."
	for range 4 {
		d := filepath.Join(up, "shared", "tinyml")
		if _, err := os.Stat(d); err == nil {
			return d
		}
		up = filepath.Join(up, "..")
	}
	return filepath.Join("..", "shared", "tinyml")
}

// MLInference measures host inference per model against TFLite Micro's
// reference kernels (target: at least 2x faster) and its arena (target:
// no larger). Models that are not present are skipped with a note.
func MLInference(o Options) []Result {
	var out []Result
	for _, m := range mlModels {
		name := "ml/" + m.name + "_inference"
		model, err1 := os.ReadFile(filepath.Join(TinyMLDir(), m.model))
		input, err2 := os.ReadFile(filepath.Join(TinyMLDir(), m.input))
		if err1 != nil || err2 != nil {
			out = append(out, Result{Name: name, Note: "skipped: model not found under " + TinyMLDir() + " (set TINYML_DIR)"})
			continue
		}
		r, err := mlOne(model, input, o.n(200, 5))
		if err != nil {
			out = append(out, Result{Name: name, Note: "failed: " + err.Error()})
			continue
		}
		target := m.tflm / 2
		out = append(out, judged(Result{Name: name, Value: float64(r.per.Nanoseconds()) / 1e6, Unit: "ms",
			Target: "<= " + target.String(), Note: fmt.Sprintf("TFLM reference %v; %.1fx faster", m.tflm, float64(m.tflm)/float64(r.per))},
			r.per <= target))
		out = append(out, judged(Result{Name: "ml/" + m.name + "_arena", Value: float64(r.arena), Unit: "bytes",
			Target: fmt.Sprintf("<= %d", m.arena), Note: "scratch memory (arena + kernel scratch) vs TFLM's arena"}, r.arena <= m.arena))
	}
	return append(out, mlSuspensionGap(o))
}

// mlSuspensionGap measures the CPU time an inference runs between two
// suspension points (its Pace calls, where the ml endpoint runs the
// activation's budget checkpoint; issue 10): on the largest model (VWW),
// the p99 and the most of the thread's CPU time between two calls.
func mlSuspensionGap(o Options) Result {
	const name = "ml/suspension_gap_p99"
	m := mlModels[2] // vww
	model, err1 := os.ReadFile(filepath.Join(TinyMLDir(), m.model))
	input, err2 := os.ReadFile(filepath.Join(TinyMLDir(), m.input))
	if err1 != nil || err2 != nil {
		return Result{Name: name, Note: "skipped: model not found under " + TinyMLDir() + " (set TINYML_DIR)"}
	}
	md, err := tflite.Parse(model)
	if err != nil {
		return Result{Name: name, Note: "failed: " + err.Error()}
	}
	it, err := tflite.NewInterpreter(md)
	if err != nil {
		return Result{Name: name, Note: "failed: " + err.Error()}
	}
	out := make([]byte, md.Output().Bytes)
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	var gaps []time.Duration
	var last time.Duration
	pace := func() bool {
		now, _ := runtime.ThreadCPU()
		gaps = append(gaps, now-last)
		last = now
		return false
	}
	for range o.n(100, 3) {
		last, _ = runtime.ThreadCPU()
		if _, err := it.InvokePaced(model, input, out, pace); err != nil {
			return Result{Name: name, Note: "failed: " + err.Error()}
		}
		now, _ := runtime.ThreadCPU()
		gaps = append(gaps, now-last)
	}
	p99 := percentile(gaps, 0.99)
	return judged(Result{Name: name, Value: float64(p99.Nanoseconds()) / 1000, Unit: "us CPU", Target: "<= 100 us",
		Note: fmt.Sprintf("vww inference: thread CPU time between two suspension points, %d stretches; p50 %v, max %v",
			len(gaps), percentile(gaps, 0.5).Round(100*time.Nanosecond), percentile(gaps, 1).Round(100*time.Nanosecond))}, p99 <= 100*time.Microsecond)
}

type mlResult struct {
	per   time.Duration
	arena int
}

func mlOne(model, input []byte, n int) (mlResult, error) {
	md, err := tflite.Parse(model)
	if err != nil {
		return mlResult{}, err
	}
	it, err := tflite.NewInterpreter(md)
	if err != nil {
		return mlResult{}, err
	}
	out := make([]byte, md.Output().Bytes)
	if _, err := it.Invoke(model, input, out); err != nil { // warm up
		return mlResult{}, err
	}
	d, err := wasm.Measure(func() error {
		for range n {
			if _, err := it.Invoke(model, input, out); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return mlResult{}, err
	}
	return mlResult{per: d / time.Duration(n), arena: it.ArenaBytes() + it.ScratchBytes()}, nil
}
