package instrument

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/tinycontainer/tinycontainer/bench/kernels"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// FuzzInstrument: arbitrary bytes never panic, and whatever wazero accepts
// is either refused for a stated policy reason or instrumented into a
// module wazero accepts too.
func FuzzInstrument(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("..", "testdata", "*.wasm"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, k := range kernels.List() {
		b, err := kernels.Wasm(k)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0, 'a', 's', 'm', 1, 0, 0, 0})
	for _, m := range segmentModules() {
		f.Add(m.code)
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().WithCoreFeatures(features))
	defer rt.Close(ctx)
	f.Fuzz(func(t *testing.T, code []byte) {
		res, err := Instrument(code, Options{MemoryLimit: 1 << 20, Interval: 100})
		if err != nil {
			if !errors.Is(err, runtime.ErrInvalidCode) && !errors.Is(err, runtime.ErrLimit) {
				t.Fatalf("error of no class: %v", err)
			}
		}
		// wazero's decoder allocates what a module's lengths say, so only
		// modules whose lengths decodeModule found sound may reach it (the
		// engine only ever gives it Instrument's output).
		if _, derr := decodeModule(code); derr != nil || errors.Is(err, runtime.ErrLimit) {
			return
		}
		cm, werr := rt.CompileModule(ctx, code)
		if werr != nil {
			return
		}
		cm.Close(ctx)
		if err != nil {
			// Policy: limits, imported memories, the reserved export names;
			// segments that cannot fit (wazero finds those when it
			// instantiates, not when it compiles).
			for _, policy := range []string{"imported memories", "reserved prefix", "instantiating it would trap"} {
				if strings.Contains(err.Error(), policy) {
					return
				}
			}
			t.Fatalf("wazero accepts the module, Instrument refuses it: %v", err)
		}
		cm, werr = rt.CompileModule(ctx, res.Code)
		if werr != nil {
			t.Fatalf("wazero accepts the module but not its instrumented form: %v", werr)
		}
		cm.Close(ctx)
	})
}
