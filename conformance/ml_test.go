package conformance

import (
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/internal/testwait"
	"github.com/tinycontainer/tinycontainer/ml/tflite"
)

// The ml endpoint (SPEC section 3) runs a model that lives in the guest's
// own memory, from every runtime, with the same result as the host engine.
func TestMLEndpointFromEveryRuntime(t *testing.T) {
	model, err := os.ReadFile("../ml/tflite/testdata/demo_model.tflite")
	if err != nil {
		t.Fatal(err)
	}
	input := make([]byte, 48)
	for i := range input {
		input[i] = byte(int8(i*7 - 100))
	}
	want, err := tflite.Run(model, input)
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range []struct{ kind, file string }{{"wasm", "testdata/mlinvoke.wasm"}, {"ebpf", "testdata/mlinvoke.bpf.o"}} {
		t.Run(rt.kind, func(t *testing.T) {
			code, err := os.ReadFile(rt.file)
			if err != nil {
				t.Fatal(err)
			}
			_, lines := runOnce(t, "name: ml\ntenant: t1\nversion: 1\nruntime: "+rt.kind+
				"\nschedule: {trigger: once, budget: 1s}\nlimits: {memory: 64KiB}\nendpoints:\n  - {name: ml, ops: [invoke]}\n  - {name: log, ops: [write]}\n", code)
			select {
			case l := <-lines:
				if l.Text != hex.EncodeToString(want) {
					t.Fatalf("%s guest got %s from ml, the host engine gives %x", rt.kind, l.Text, want)
				}
			case <-time.After(testwait.Guard()):
				t.Fatal("no result logged (a hang guard)")
			}
		})
	}
}
