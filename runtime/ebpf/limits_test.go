package ebpf

import (
	"context"
	"errors"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/internal/adversary"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// TestCodeLimit: an object over the tenant's max code is refused before
// it is parsed (1 MiB by default).
func TestCodeLimit(t *testing.T) {
	obj := make([]byte, runtime.DefaultCodeLimit+1)
	_, err := testRuntime().Compile(context.Background(), obj, runtime.Config{})
	if !errors.Is(err, runtime.ErrLimit) || !strings.Contains(err.Error(), "max code") {
		t.Fatalf("got %v, want ErrLimit naming the max code", err)
	}
	_, err = testRuntime().Compile(context.Background(), obj, runtime.Config{CodeLimit: 2 << 20})
	if !errors.Is(err, runtime.ErrInvalidCode) {
		t.Fatalf("under a 2 MiB limit: got %v, want it parsed (and refused as garbage)", err)
	}
}

// bpfMemoryLimits are the container memory limits the hostile shapes are
// installed under: a small container, and the largest data region (what
// a data section may claim grows with it).
var bpfMemoryLimits = map[string]uint64{"64KiB": 64 << 10, "64MiB": 0}

// TestAdversaryInstall compiles the hostile eBPF shapes of issue 11 and
// their kin (the longest programs of memory accesses, helper calls,
// jumps, calls, lddw and relocations; overlapping sections; compressed
// sections that inflate 1,000 to 32,768 times) in a process of their own
// (both engines, as every test here): each is installed within 2 s of CPU
// and 256 MB of peak memory, or refused within 100 ms with a reason.
func TestAdversaryInstall(t *testing.T) {
	if shape, ok := adversary.Child(); ok {
		name, mem, _ := strings.Cut(shape, "@")
		limit, ok := bpfMemoryLimits[mem]
		for _, s := range adversary.BPFShapes() {
			if ok && name == s.Name {
				code := s.Make()
				rt := testRuntime()
				adversary.Report(func() error {
					m, err := rt.Compile(context.Background(), code, runtime.Config{MemoryLimit: limit, CodeLimit: runtime.MaxCodeLimit})
					if err == nil {
						t.Logf("%s: machine code %v", shape, m.(*Module).Compiled())
					}
					return err
				}, func(err error) bool {
					return errors.Is(err, runtime.ErrLimit) || errors.Is(err, runtime.ErrInvalidCode)
				})
				return
			}
		}
		t.Fatalf("no shape %q", shape)
	}
	for _, s := range adversary.BPFShapes() {
		for _, mem := range []string{"64KiB", "64MiB"} {
			name := s.Name + "@" + mem
			t.Run(name, func(t *testing.T) {
				adversary.Check(t, name, s, adversary.InChild(t, "TestAdversaryInstall", name))
			})
		}
	}
}

// TestCompressedSectionsRefused is the regression test of the ELF
// decompression bombs: a 1.3 KB object whose section-name table was a
// zstd stream of 32 MB took 0.65 s of CPU and 123 MB to be refused (a
// 4 MiB one inflates to 128 GiB); compressed sections of any kind, and
// sections in the old .zdebug form, are now refused before anything is
// inflated.
func TestCompressedSectionsRefused(t *testing.T) {
	for name, obj := range map[string][]byte{
		"zstd names":   adversary.BPFZstdNames(1024),
		"zlib strings": adversary.BPFZlibStrings(4096),
		"zdebug data":  adversary.BPFZdebugData(4096),
	} {
		_, err := testRuntime().Compile(context.Background(), obj, runtime.Config{CodeLimit: runtime.MaxCodeLimit})
		if !errors.Is(err, runtime.ErrInvalidCode) || !strings.Contains(err.Error(), "compressed") {
			t.Errorf("%s: got %v, want ErrInvalidCode naming the compressed section", name, err)
		}
	}
}

// TestOverlappingRelocationsRefused is the regression test of
// relocation sections sharing their bytes: 30,000 of them over the same
// 2 MiB made a 4 MiB object 3.9 billion relocations to read.
func TestOverlappingRelocationsRefused(t *testing.T) {
	_, err := testRuntime().Compile(context.Background(), adversary.BPFRelOverlap(100, 4096), runtime.Config{CodeLimit: runtime.MaxCodeLimit})
	if !errors.Is(err, runtime.ErrInvalidCode) || !strings.Contains(err.Error(), "relocation") {
		t.Fatalf("got %v, want ErrInvalidCode naming the relocations", err)
	}
	// One relocation section of the same bytes is an ordinary object.
	if _, err := testRuntime().Compile(context.Background(), adversary.BPFRelOverlap(1, 4096), runtime.Config{CodeLimit: runtime.MaxCodeLimit}); err != nil {
		t.Fatalf("one relocation section: %v", err)
	}
}

// FuzzAdversary compiles random hostile eBPF objects (adversary.BPFMix)
// under the largest max code and data region: each is installed within
// the install-time CPU bound (CPU time of this process) allocating at
// most four times the memory bound in all, or refused with a reason and
// within the refusal bound.
func FuzzAdversary(f *testing.F) {
	for _, seed := range [][]byte{
		{0, 255, 255}, {1, 255, 255}, {2, 255, 255}, {3, 255, 255}, {4, 255, 255}, {5, 255, 255},
		{6, 255, 255}, {7, 100, 0}, {8, 255, 0}, {9, 64, 0}, {10, 64, 0}, {11, 255, 255, 0, 1, 2, 3, 4},
		{11, 16, 0, 2, 3}, {2, 0, 9}, {8, 0, 1},
	} {
		f.Add(seed)
	}
	rt := testRuntime()
	factor := time.Duration(1)
	if adversary.Race {
		factor = adversary.RaceFactor
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		code := adversary.BPFMix(data)
		var before, after goruntime.MemStats
		goruntime.ReadMemStats(&before)
		cpu := adversary.ProcessCPU()
		_, err := rt.Compile(context.Background(), code, runtime.Config{CodeLimit: runtime.MaxCodeLimit})
		cpu = adversary.ProcessCPU() - cpu
		goruntime.ReadMemStats(&after)
		alloc := after.TotalAlloc - before.TotalAlloc
		if err != nil && !errors.Is(err, runtime.ErrLimit) && !errors.Is(err, runtime.ErrInvalidCode) {
			t.Fatalf("refused without a reason class: %v", err)
		}
		if !adversary.Calibrated() {
			return
		}
		if err == nil && cpu > factor*adversary.InstallCPU {
			t.Fatalf("%d bytes installed in %v of CPU, over %v", len(code), cpu, factor*adversary.InstallCPU)
		}
		// Refusals are judged on the CPU bound of an install: the fuzzer
		// runs many workers on a busy machine and GC of the previous
		// input lands anywhere; TestAdversaryInstall holds each shape's
		// refusal to 100 ms in a process of its own.
		if err != nil && cpu > factor*adversary.InstallCPU {
			t.Fatalf("refused after %v of CPU: %v", cpu, err)
		}
		if alloc > uint64(factor)*4*adversary.InstallMemory {
			t.Fatalf("%d bytes allocating %d MB to install (err %v)", len(code), alloc>>20, err)
		}
	})
}
