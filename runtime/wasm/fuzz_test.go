package wasm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/bench/kernels"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// FuzzCompile: garbage never panics or hangs the host. Whatever compiles
// is instantiated and run for a millisecond, and must end with an exit
// code or a classified error.
func FuzzCompile(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "*.wasm"))
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
	ctx := context.Background()
	r, err := New(ctx, Options{InitBudget: 5 * time.Millisecond})
	if err != nil {
		f.Fatal(err)
	}
	defer r.Close(ctx)
	f.Fuzz(func(t *testing.T, code []byte) {
		m, err := r.Compile(ctx, code, runtime.Config{MemoryLimit: 4 << 16})
		if err != nil {
			if !errors.Is(err, runtime.ErrInvalidCode) && !errors.Is(err, runtime.ErrLimit) {
				t.Fatalf("error of no class: %v", err)
			}
			return
		}
		defer m.Close(ctx)
		inst, err := m.Instantiate(ctx, &fakeHost{mode: 1})
		if err != nil {
			return
		}
		defer inst.Close(ctx)
		var b runtime.Budget
		b.Arm(time.Millisecond)
		if _, err := inst.Run(ctx, &b); err != nil {
			var f *runtime.Fault
			if !errors.As(err, &f) {
				t.Fatalf("Run: error of no class: %v", err)
			}
		}
		if inst.MemorySize() > 4<<16 {
			t.Fatalf("memory %d over the limit", inst.MemorySize())
		}
	})
}
