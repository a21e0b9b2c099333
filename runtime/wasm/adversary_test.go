package wasm

import (
	"context"
	"errors"
	goruntime "runtime"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/internal/adversary"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// TestAdversaryInstall installs each hostile shape of issue 11 in a
// process of its own, under the default max code (1 MiB) and the largest
// (4 MiB): each is installed within 2 s of CPU and 256 MB of peak memory,
// or refused within 100 ms with a reason (CPU time, not wall time). The
// shapes that install (at the bounds) are left out under -race.
func TestAdversaryInstall(t *testing.T) {
	if shape, ok := adversary.Child(); ok {
		adversaryChild(t, shape)
		return
	}
	for _, s := range adversary.WasmShapes() {
		if s.Heavy && adversary.Race {
			continue // compiled for seconds under the race detector: without it only
		}
		for _, limit := range []string{"1MiB", "4MiB"} {
			name := s.Name + "@" + limit
			t.Run(name, func(t *testing.T) {
				adversary.Check(t, name, s, adversary.InChild(t, "TestAdversaryInstall", name))
			})
		}
	}
}

func adversaryChild(t *testing.T, name string) {
	var shape adversary.Shape
	limit := uint64(0)
	for _, s := range adversary.WasmShapes() {
		if name == s.Name+"@1MiB" || name == s.Name+"@4MiB" {
			shape = s
			if name == s.Name+"@4MiB" {
				limit = runtime.MaxCodeLimit
			}
		}
	}
	if shape.Make == nil {
		t.Fatalf("no shape %q", name)
	}
	code := shape.Make()
	ctx := context.Background()
	r, err := New(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	adversary.Report(func() error {
		_, err := r.Compile(ctx, code, runtime.Config{MemoryLimit: 64 << 10, CodeLimit: limit})
		return err
	}, func(err error) bool {
		return errors.Is(err, runtime.ErrLimit) || errors.Is(err, runtime.ErrInvalidCode)
	})
}

// FuzzAdversary compiles random mixes of the hostile shapes under the
// largest max code: each is installed within the install-time CPU bound
// (CPU time of this process) and allocates at most four times the memory
// bound in all, or is refused with a reason.
func FuzzAdversary(f *testing.F) {
	for _, seed := range [][]byte{
		{0, 3, 0}, {1, 2, 63}, {2, 20, 4}, {3, 40, 40}, {4, 3, 20}, {5, 4, 30}, {6, 2, 10}, {7, 10, 10},
		{0, 255, 0, 0, 255, 0}, {2, 255, 255}, {4, 7, 255, 4, 7, 255}, {1, 255, 127, 5, 15, 255},
	} {
		f.Add(seed)
	}
	ctx := context.Background()
	r, err := New(ctx, Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer r.Close(ctx)
	factor := time.Duration(1)
	if adversary.Race {
		factor = adversary.RaceFactor
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		code := adversary.Mix(data)
		var before, after goruntime.MemStats
		goruntime.ReadMemStats(&before)
		cpu := cpuTime()
		m, err := r.Compile(ctx, code, runtime.Config{MemoryLimit: 64 << 10, CodeLimit: runtime.MaxCodeLimit})
		cpu = cpuTime() - cpu
		goruntime.ReadMemStats(&after)
		if err != nil {
			if !errors.Is(err, runtime.ErrLimit) && !errors.Is(err, runtime.ErrInvalidCode) {
				t.Fatalf("refused without a reason class: %v", err)
			}
			if adversary.Calibrated() && cpu > factor*adversary.InstallCPU {
				t.Fatalf("refused after %v of CPU: %v", cpu, err)
			}
			return
		}
		defer m.Close(ctx)
		if !adversary.Calibrated() {
			return
		}
		if cpu > factor*adversary.InstallCPU {
			t.Fatalf("%d bytes installed in %v of CPU, over %v", len(code), cpu, factor*adversary.InstallCPU)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(factor)*4*adversary.InstallMemory {
			t.Fatalf("%d bytes installed allocating %d MB", len(code), alloc>>20)
		}
	})
}
