package tflite

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
)

// TestPacedInvokeBitExact: an inference paced by a caller (the ml
// endpoint's budget checkpoints, issue 10) gives TFLite Micro's golden
// outputs bit for bit, and calls its Pace at least every PaceWork units
// of work plus one kernel step, which for the real models is at most
// another PaceWork: the distance between two suspension points of an
// inference is bounded.
func TestPacedInvokeBitExact(t *testing.T) { kernelSets(t, testPacedInvokeBitExact) }

func testPacedInvokeBitExact(t *testing.T) {
	dir := tinymlDir(t)
	for _, rel := range conformanceModels {
		model, it := loadModel(t, filepath.Join(dir, rel))
		for _, g := range goldens(t, dir, rel) {
			calls := 0
			out := make([]byte, len(g.output))
			n, err := it.InvokePaced(model, g.input, out, func() bool { calls++; return false })
			if err != nil || !bytes.Equal(out[:n], g.output) {
				t.Fatalf("%s/%s: paced output %x, %v; want %x", rel, g.name, out[:n], err, g.output)
			}
			if min := it.MACs()/(2*PaceWork) - 1; int64(calls) < min {
				t.Errorf("%s/%s: Pace called %d times for %d MACs, want at least %d", rel, g.name, calls, it.MACs(), min)
			}
		}
		t.Logf("%s: %d MACs, most work past PaceWork at one call %d", rel, it.MACs(), it.pace.over)
		if it.pace.over > PaceWork {
			t.Errorf("%s: a kernel step of %d units between two Pace calls, want at most %d", rel, it.pace.over, PaceWork)
		}
	}
}

// TestPaceStops: Pace asking to stop ends the inference with ErrStopped,
// leaves the output buffer alone, and the interpreter gives exact results
// afterwards (an activation stopped mid-inference loses nothing).
func TestPaceStops(t *testing.T) { kernelSets(t, testPaceStops) }

func testPaceStops(t *testing.T) {
	dir := tinymlDir(t)
	for _, rel := range []string{"mlperf_tiny/vww/vww_96_int8.tflite", "mlperf_tiny/ic/pretrainedResnet_quant.tflite"} {
		model, it := loadModel(t, filepath.Join(dir, rel))
		g := goldens(t, dir, rel)[0]
		out := bytes.Repeat([]byte{0x5A}, len(g.output))
		calls := 0
		_, err := it.InvokePaced(model, g.input, out, func() bool { calls++; return calls == 3 })
		if !errors.Is(err, ErrStopped) {
			t.Fatalf("%s: %v, want ErrStopped", rel, err)
		}
		if calls != 3 {
			t.Errorf("%s: Pace called %d times, want 3 (no call after the stop)", rel, calls)
		}
		if !bytes.Equal(out, bytes.Repeat([]byte{0x5A}, len(g.output))) {
			t.Errorf("%s: a stopped inference wrote its output: %x", rel, out)
		}
		n, err := it.Invoke(model, g.input, out)
		if err != nil || !bytes.Equal(out[:n], g.output) {
			t.Fatalf("%s: after a stop, output %x, %v; want %x", rel, out[:n], err, g.output)
		}
	}
}

// TestPaceStopsParse: a cache miss parses and plans the model paced as
// well; stopped there, nothing is cached and the next call starts over.
func TestPaceStopsParse(t *testing.T) {
	dir := tinymlDir(t)
	rel := "mlperf_tiny/vww/vww_96_int8.tflite"
	model := readFile(t, filepath.Join(dir, rel))
	g := goldens(t, dir, rel)[0]
	c := NewCache(4)
	out := make([]byte, len(g.output))
	calls := 0
	if _, err := c.InvokePaced("a", model, g.input, out, func() bool { calls++; return true }); !errors.Is(err, ErrStopped) {
		t.Fatalf("%v, want ErrStopped", err)
	}
	if calls != 1 || c.Len() != 0 {
		t.Fatalf("Pace called %d times, %d cached; want 1 and 0", calls, c.Len())
	}
	n, err := c.InvokePaced("a", model, g.input, out, func() bool { return false })
	if err != nil || !bytes.Equal(out[:n], g.output) {
		t.Fatalf("output %x, %v; want %x", out[:n], err, g.output)
	}
}
