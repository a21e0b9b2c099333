package tflite

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// fuzzSeeds are small real models (the larger ones make each run slow).
func fuzzSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	if b, err := os.ReadFile(filepath.Join("testdata", "demo_model.tflite")); err == nil {
		seeds = append(seeds, b)
	}
	d := tinymlPath()
	for _, rel := range []string{"tflm/hello_world/hello_world_int8.tflite", "tflm/micro_speech/micro_speech_quantized.tflite"} {
		if b, err := os.ReadFile(filepath.Join(d, rel)); err == nil {
			seeds = append(seeds, b)
		}
	}
	return seeds
}

// tinymlPath is where the shared test data is expected (see tinymlDir).
func tinymlPath() string {
	if d := os.Getenv("TINYML_DIR"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "..", "shared", "tinyml")
}

func classified(err error) bool {
	for _, c := range []error{ErrInvalidModel, ErrUnsupported, ErrLimit} {
		if errors.Is(err, c) {
			return true
		}
	}
	return false
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte("\x0c\x00\x00\x00TFL3\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, model []byte) {
		m, err := Parse(model)
		if err != nil {
			if !classified(err) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if !m.Matches(model) {
			t.Fatal("model does not match its own bytes")
		}
		if _, err := NewInterpreter(m); err != nil && !classified(err) {
			t.Fatalf("unclassified error: %v", err)
		}
	})
}

func FuzzInvoke(f *testing.F) {
	seeds := fuzzSeeds(f)
	// KWS (depthwise with multiplier 1) and IC (ADD) reach the vector
	// kernels the small seeds do not.
	for _, rel := range []string{"mlperf_tiny/kws/kws_ref_model.tflite", "mlperf_tiny/ic/pretrainedResnet_quant.tflite"} {
		if b, err := os.ReadFile(filepath.Join(tinymlPath(), rel)); err == nil {
			seeds = append(seeds, b)
		}
	}
	for _, s := range seeds {
		f.Add(s, []byte{1, 2, 3, 250})
	}
	f.Fuzz(func(t *testing.T, model, input []byte) {
		m, err := Parse(model)
		if err != nil {
			return
		}
		it, err := NewInterpreter(m)
		if err != nil {
			return
		}
		in := make([]byte, m.Input().Bytes)
		for i := range in {
			if len(input) > 0 {
				in[i] = input[i%len(input)]
			}
		}
		out1 := make([]byte, m.Output().Bytes)
		out2 := make([]byte, len(out1))
		if _, err := it.Invoke(model, in, out1); err != nil {
			t.Fatalf("Invoke: %v", err)
		}
		// The arena is reused: a second run must give the same bytes.
		if _, err := it.Invoke(model, in, out2); err != nil || !bytes.Equal(out1, out2) {
			t.Fatalf("second run differs: %v", err)
		}
		// The vector and pure-Go kernels must agree bit for bit.
		if useSIMD {
			var goIt *Interpreter
			withSIMD(t, false, func() { goIt, err = NewInterpreter(m) })
			if errors.Is(err, ErrLimit) {
				return // the Go kernels' scratch can pass the arena limit first
			}
			if err != nil {
				t.Fatalf("NewInterpreter with the Go kernels: %v", err)
			}
			if _, err := goIt.Invoke(model, in, out2); err != nil || !bytes.Equal(out1, out2) {
				t.Fatalf("vector kernels %v, Go kernels %v (%v)", out1, out2, err)
			}
		}
	})
}
