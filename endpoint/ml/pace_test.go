package ml

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/endpoint"
	"github.com/tinycontainer/tinycontainer/ml/tflite"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// bigModel loads the largest shared TinyML model (MLPerf Tiny VWW, 7.5
// million MACs) and one of its inputs into a guest memory image, with the
// output after them. It skips when the shared data is absent.
func bigModel(t *testing.T) (m mem, request []byte, want []byte) {
	dir := os.Getenv("TINYML_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "tinyml")
	}
	model, err := os.ReadFile(filepath.Join(dir, "mlperf_tiny/vww/vww_96_int8.tflite"))
	if err != nil {
		t.Skipf("TinyML test data not found (set TINYML_DIR): %v", err)
	}
	input, err := os.ReadFile(filepath.Join(dir, "mlperf_tiny/vww/vww_input0.int8.bin"))
	if err != nil {
		t.Fatal(err)
	}
	want, err = tflite.Run(model, input)
	if err != nil {
		t.Fatal(err)
	}
	in := uint32(len(model)+15) &^ 15
	out := in + uint32(len(input))
	m = make(mem, int(out)+16)
	copy(m, model)
	copy(m[in:], input)
	return m, req(0, uint32(len(model)), in, uint32(len(input)), out, 16), want
}

// TestInvokeStoppedByBudget is issue 10's gap "ml invoke has no
// suspension points": an inference on a large model ran to its end
// whatever the activation's budget. Now it checks the budget as it goes:
// an activation that must end gives the call up at once (EAGAIN, output
// untouched), and a small CPU budget stops a large model mid-inference.
func TestInvokeStoppedByBudget(t *testing.T) {
	m, request, _ := bigModel(t)
	out := binary.LittleEndian.Uint32(request[16:])
	e := &Endpoint{Cache: tflite.NewCache(4)}
	resp := make([]byte, 4)

	var b runtime.Budget
	b.Arm(0)
	b.Begin()
	b.Stop()
	c := endpoint.NewTestCall(endpoint.CallContext{Container: "c", Memory: m, Budget: &b})
	copy(m[out:], bytes.Repeat([]byte{0x5A}, 16))
	if got := e.Call(c, abi.OpInvoke, request, resp); got != abi.EAGAIN.Result() {
		t.Fatalf("stopped activation: %d, want EAGAIN", got)
	}
	if !bytes.Equal(m[out:out+16], bytes.Repeat([]byte{0x5A}, 16)) {
		t.Fatalf("a stopped inference wrote its output")
	}
	b.End()

	// 300 µs of CPU: one inference of this model takes about 1-5 ms.
	const limit = 300 * time.Microsecond
	b.Arm(limit)
	b.Begin()
	c = endpoint.NewTestCall(endpoint.CallContext{Container: "c", Memory: m, Budget: &b})
	stopped := -1
	for i := range 20 {
		if got := e.Call(c, abi.OpInvoke, request, resp); got == abi.EAGAIN.Result() {
			stopped = i
			break
		} else if got != 4 {
			t.Fatalf("invoke %d: %d", i, got)
		}
	}
	b.End()
	if stopped < 0 {
		t.Fatalf("20 inferences ran under a %v budget (used %v)", limit, b.Used())
	}
	// CPU time, not wall time; generous for a loaded machine (the step
	// between two checks is ~10-50 µs of this model).
	if over := b.Overrun(); over > 20*time.Millisecond {
		t.Errorf("stopped %v of CPU past the budget", over)
	}
	t.Logf("stopped in inference %d, %v past a %v budget", stopped, b.Overrun(), limit)
}

// yieldGate suspends the activation at every gate call until the test
// lets it go on, counting the suspensions.
type yieldGate struct {
	parked chan chan struct{}
}

func (g *yieldGate) Checkpoint(b *runtime.Budget, _ time.Duration) (time.Duration, <-chan struct{}) {
	b.ClearYield()
	wake := make(chan struct{})
	g.parked <- wake
	return 0, wake
}
func (g *yieldGate) Block(*runtime.Budget, time.Duration)    {}
func (g *yieldGate) Unblock(*runtime.Budget) <-chan struct{} { return nil }

// TestInvokeSuspended: an inference is a suspension point for the
// scheduler: asked to yield, the activation parks inside the ml call and,
// resumed, finishes it with the exact result.
func TestInvokeSuspended(t *testing.T) {
	m, request, want := bigModel(t)
	out := binary.LittleEndian.Uint32(request[16:])
	e := &Endpoint{Cache: tflite.NewCache(4)}
	g := &yieldGate{parked: make(chan chan struct{})}
	var b runtime.Budget
	b.SetGate(g)
	b.Arm(0)
	b.Begin()
	c := endpoint.NewTestCall(endpoint.CallContext{Container: "c", Memory: m, Budget: &b})
	done := make(chan int32)
	b.RequestYield()
	go func() {
		resp := make([]byte, 4)
		done <- e.Call(c, abi.OpInvoke, request, resp)
	}()
	suspensions := 0
	for {
		select {
		case wake := <-g.parked:
			suspensions++
			if suspensions < 3 {
				b.RequestYield() // once more, from another goroutine, as the scheduler does
			}
			close(wake)
			continue
		case got := <-done:
			b.End()
			if got != 4 {
				t.Fatalf("suspended inference: %d", got)
			}
		}
		break
	}
	if suspensions != 3 {
		t.Errorf("suspended %d times inside the call, want 3", suspensions)
	}
	if !bytes.Equal(m[out:out+uint32(len(want))], want) {
		t.Fatalf("output %x, want %x", m[out:out+uint32(len(want))], want)
	}
}
