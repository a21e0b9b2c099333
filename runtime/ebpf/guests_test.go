package ebpf

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf/asm"

	"github.com/tinycontainer/tinycontainer/bench/kernels"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// activate instantiates m against h and runs it n times.
func activate(t *testing.T, m runtime.Module, h runtime.Host, n int) []int32 {
	t.Helper()
	in, err := m.Instantiate(t.Context(), h)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close(t.Context())
	var out []int32
	for range n {
		var b runtime.Budget
		b.Arm(time.Second)
		code, err := in.Run(t.Context(), &b)
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		out = append(out, code)
	}
	return out
}

func TestGuestHello(t *testing.T) {
	h := newFakeHost()
	got := activate(t, loadGuest(t, "hello", 4096), h, 1)
	if got[0] != 0 {
		t.Fatalf("exit code %d", got[0])
	}
	if want := []string{"hello from ebpf", "edcba"}; !slices.Equal(h.logs, want) {
		t.Errorf("logs %q, want %q", h.logs, want)
	}
}

func TestGuestSensor(t *testing.T) {
	h := newFakeHost()
	h.temp = -12345
	got := activate(t, loadGuest(t, "sensor", 4096), h, 1)
	if got[0] != -12345 {
		t.Fatalf("exit code %d, want the reading -12345", got[0])
	}
	if want := []string{"temperature -12"}; !slices.Equal(h.logs, want) {
		t.Errorf("logs %q, want %q", h.logs, want)
	}
	// Without the sensor granted, the guest sees -EPERM from open.
	delete(h.allowed, "sensor/temperature")
	if got := activate(t, loadGuest(t, "sensor", 4096), h, 1); got[0] != -1 {
		t.Errorf("exit code %d, want -1 (EPERM)", got[0])
	}
}

func TestGuestGlobalsPersist(t *testing.T) {
	m := loadGuest(t, "globals", 4096)
	words := []int32{4, 3, 3, 5} // lengths of "zero" "one" "two" "three"
	weights := []int32{1, 10, 100, 1000}
	got := activate(t, m, newFakeHost(), 6)
	sum := int32(0)
	for n, g := range got {
		sum += int32(n)
		want := int32(n)*1000000 + sum*1000 + weights[n&3]*10 + words[n&3]
		if g != want {
			t.Errorf("activation %d: %d, want %d", n, g, want)
		}
	}
	// A fresh instance starts again from the initial data.
	if again := activate(t, m, newFakeHost(), 1); again[0] != got[0] {
		t.Errorf("fresh instance returned %d, want %d", again[0], got[0])
	}
}

func TestGuestCalls(t *testing.T) {
	got := activate(t, loadGuest(t, "calls", 8*1024), newFakeHost(), 2)
	want := int32(8*1000 + (1 - 2 + 3*4 - 5)) // fib(6) = 8
	if got[0] != want || got[1] != want {
		t.Errorf("got %v, want %d twice", got, want)
	}
}

func TestGuestCRC32(t *testing.T) {
	data := make([]byte, 4096)
	for i := range data {
		data[i] = byte(i*7 + 3)
	}
	want := int32(crc32.ChecksumIEEE(data))
	got := activate(t, loadKernel(t, "crc32", 16*1024), newFakeHost(), 2)
	if got[0] != want || got[1] != want {
		t.Errorf("crc %#x %#x, want %#x", got[0], got[1], want)
	}
}

// loadKernel compiles the eBPF build of bench kernel name.
func loadKernel(t testing.TB, name string, limit uint64) runtime.Module {
	t.Helper()
	obj, err := kernels.BPF(name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := testRuntime().Compile(context.Background(), obj, runtime.Config{MemoryLimit: limit})
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	return m
}

// seedObjects is every eBPF object of the tests: testdata/*.bpf.o and
// the bench kernels' builds.
func seedObjects(t testing.TB) [][]byte {
	t.Helper()
	paths, _ := filepath.Glob("testdata/*.bpf.o")
	var objs [][]byte
	for _, p := range paths {
		obj, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, obj)
	}
	for _, k := range kernels.List() {
		if obj, err := kernels.BPF(k); err == nil {
			objs = append(objs, obj)
		}
	}
	return objs
}

// runFault runs guest name once and returns its error.
func runFault(t *testing.T, name string, b *runtime.Budget) error {
	t.Helper()
	in, err := loadGuest(t, name, 8*1024).Instantiate(t.Context(), newFakeHost())
	if err != nil {
		t.Fatal(err)
	}
	_, err = in.Run(t.Context(), b)
	if err == nil {
		t.Fatalf("%s ran to completion", name)
	}
	// A faulted instance refuses to run again.
	if _, again := in.Run(t.Context(), nil); !errors.Is(again, runtime.ErrClosed) {
		t.Errorf("second run after a fault: %v, want ErrClosed", again)
	}
	return err
}

func TestGuestFaults(t *testing.T) {
	armed := func(d time.Duration) *runtime.Budget {
		var b runtime.Budget
		b.Arm(d)
		return &b
	}
	t.Run("runaway loop overruns its budget", func(t *testing.T) {
		b := armed(5 * time.Millisecond)
		err := runFault(t, "runaway", b)
		if faultKind(err) != runtime.FaultBudget || !errors.Is(err, runtime.ErrBudget) {
			t.Fatalf("got %v, want a budget fault", err)
		}
		// CPU time, not wall time: a busy machine does not decide it.
		if o := b.Overrun(); o > time.Second {
			t.Errorf("stopped after %v of CPU past its budget", o)
		}
	})
	t.Run("stopped budget", func(t *testing.T) {
		b := armed(time.Hour)
		b.Stop()
		if err := runFault(t, "runaway", b); faultKind(err) != runtime.FaultBudget {
			t.Fatalf("got %v, want a budget fault", err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		in, _ := loadGuest(t, "runaway", 8*1024).Instantiate(ctx, newFakeHost())
		if _, err := in.Run(ctx, nil); faultKind(err) != runtime.FaultBudget || !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want a budget fault for the cancelled context", err)
		}
	})
	t.Run("wild pointer", func(t *testing.T) {
		err := runFault(t, "oob", armed(time.Second))
		if faultKind(err) != runtime.FaultMemory || !errors.Is(err, ErrMemoryAccess) {
			t.Fatalf("got %v, want a memory fault", err)
		}
	})
	t.Run("write to read-only data", func(t *testing.T) {
		err := runFault(t, "rowrite", armed(time.Second))
		if faultKind(err) != runtime.FaultMemory {
			t.Fatalf("got %v, want a memory fault", err)
		}
	})
	t.Run("recursion too deep", func(t *testing.T) {
		err := runFault(t, "deep", armed(time.Second))
		if faultKind(err) != runtime.FaultTrap || !errors.Is(err, ErrCallDepth) {
			t.Fatalf("got %v, want a trap", err)
		}
	})
}

func TestMemoryLimit(t *testing.T) {
	obj, err := kernels.BPF("crc32")
	if err != nil {
		t.Fatal(err)
	}
	// 512 bytes of stack + 1 KiB table + 4 KiB data + a flag.
	for _, limit := range []uint64{100, 1024, 5 * 1024} {
		_, err := testRuntime().Compile(t.Context(), obj, runtime.Config{MemoryLimit: limit})
		if !errors.Is(err, runtime.ErrLimit) {
			t.Errorf("limit %d: got %v, want ErrLimit", limit, err)
		}
	}
	m, err := testRuntime().Compile(t.Context(), obj, runtime.Config{MemoryLimit: 6 * 1024})
	if err != nil {
		t.Fatal(err)
	}
	in, _ := m.Instantiate(t.Context(), newFakeHost())
	if got, want := in.MemorySize(), uint64(512+1024+4096+4); got != want {
		t.Errorf("MemorySize %d, want %d", got, want)
	}
}

func TestLifecycle(t *testing.T) {
	r := testRuntime()
	if r.Kind() != runtime.EBPF {
		t.Errorf("kind %q", r.Kind())
	}
	obj, _ := os.ReadFile("testdata/hello.bpf.o")
	m, err := r.Compile(t.Context(), obj, runtime.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Instantiate(t.Context(), nil); err == nil {
		t.Error("Instantiate without a host succeeded")
	}
	in, _ := m.Instantiate(t.Context(), newFakeHost())
	if err := in.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Run(t.Context(), nil); !errors.Is(err, runtime.ErrClosed) {
		t.Errorf("Run after Close: %v", err)
	}
	m.Close(t.Context())
	if _, err := m.Instantiate(t.Context(), newFakeHost()); !errors.Is(err, runtime.ErrClosed) {
		t.Errorf("Instantiate after Close: %v", err)
	}
	r.Close(t.Context())
	if _, err := r.Compile(t.Context(), obj, runtime.Config{}); !errors.Is(err, runtime.ErrClosed) {
		t.Errorf("Compile after Close: %v", err)
	}
}

// countHost counts Close calls.
type countHost struct {
	nopHost
	closes int
}

func (h *countHost) Close(uint32) int32 { h.closes++; return 0 }

// TestBudgetPolledBetweenHelperCalls: straight-line code (no back-edge,
// no call) that calls the host over and over still reaches a budget poll.
func TestBudgetPolledBetweenHelperCalls(t *testing.T) {
	var insns []asm.Instruction
	for range 1000 {
		insns = append(insns, asm.BuiltinFunc(helperClose).Call())
	}
	m, err := rawModule(assemble(t, append(insns, asm.Return())...))
	if err != nil {
		t.Fatal(err)
	}
	h := &countHost{}
	in, _ := m.Instantiate(t.Context(), h)
	var b runtime.Budget
	b.Stop()
	if _, err := in.Run(t.Context(), &b); faultKind(err) != runtime.FaultBudget {
		t.Fatalf("got %v, want a budget fault", err)
	}
	if want := checkpointFuel/helperFuel + 1; h.closes != want {
		t.Errorf("host called %d times, want %d", h.closes, want)
	}
}

// TestConcurrentInstances runs instances of one module on many goroutines;
// each keeps its own data (run with -race).
func TestConcurrentInstances(t *testing.T) {
	m := loadGuest(t, "globals", 4096)
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			in, err := m.Instantiate(context.Background(), newFakeHost())
			if err != nil {
				errs <- err
				return
			}
			for n := range 20 {
				code, err := in.Run(context.Background(), nil)
				if err != nil {
					errs <- err
					return
				}
				if got := code / 1000000; got != int32(n) {
					errs <- fmt.Errorf("activation %d saw count %d", n, got)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
