package wasm

import (
	"context"
	"errors"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/runtime"
)

// A closed instance's memory goes to the next instance, which must see
// only zeros and its own data: in place zeroing (one page), dropped pages
// (grown to five pages, over maxZeroed) and, with many instances closed
// at once, the resident budget running out.
func TestMemoryReuse(t *testing.T) {
	ctx := context.Background()
	r, err := New(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	m := compile(t, r, "memtest.wasm", 1<<20)
	for _, mode := range []int32{0, 1} {
		h := &fakeHost{mode: mode}
		for round := range 3 {
			var insts []*Instance
			for range 40 {
				inst, err := m.Instantiate(ctx, h)
				if err != nil {
					t.Fatal(err)
				}
				insts = append(insts, inst.(*Instance))
			}
			for _, inst := range insts {
				for k, want := range []int32{0, 0x5eed} {
					if got, err := inst.Run(ctx, nil); err != nil || got != want {
						t.Fatalf("mode %d round %d run %d: %#x, %v; want %#x", mode, round, k, got, err, want)
					}
				}
				if mode == 1 && inst.MemorySize() != 5<<16 {
					t.Fatalf("memory size %d after growing", inst.MemorySize())
				}
			}
			for _, inst := range insts {
				if err := inst.Close(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	r.mem.mu.Lock()
	defer r.mem.mu.Unlock()
	if r.mem.n == 0 || r.mem.resident > maxResident {
		t.Errorf("pool holds %d memories, %d resident bytes", r.mem.n, r.mem.resident)
	}
}

// Instances made and closed from many goroutines (run with -race).
func TestMemoryConcurrent(t *testing.T) {
	ctx := context.Background()
	r, err := New(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	m := compile(t, r, "memtest.wasm", 1<<20)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			h := &fakeHost{mode: int32(g % 2)}
			for range 30 {
				inst, err := m.Instantiate(ctx, h)
				if err != nil {
					t.Error(err)
					return
				}
				if got, err := inst.Run(ctx, nil); err != nil || got != 0 {
					t.Errorf("fresh instance read %#x, %v", got, err)
				}
				inst.Close(ctx)
			}
		})
	}
	wg.Wait()
}

// Failed instantiations give their memory back (wazero drops such an
// instance without freeing it). A data segment that cannot fit its memory
// no longer gets that far: it is refused when compiled.
func TestMemoryFailedInstantiation(t *testing.T) {
	ctx := context.Background()
	r, err := New(ctx, Options{InitBudget: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	if _, err := r.Compile(ctx, guest(t, "oobdata.wasm"), runtime.Config{MemoryLimit: 1 << 20}); !errors.Is(err, runtime.ErrInvalidCode) || !strings.Contains(err.Error(), "would trap") {
		t.Fatalf("a data segment past the end of the memory: %v", err)
	}
	for _, c := range []struct {
		guest string
		mode  int32
	}{{"badinit.wasm", 1}, {"badinit.wasm", 2}} {
		m := compile(t, r, c.guest, 1<<20)
		for range 20 {
			if _, err := m.Instantiate(ctx, &fakeHost{mode: c.mode}); err == nil {
				t.Fatalf("%s mode %d: instantiated", c.guest, c.mode)
			}
		}
		r.mem.mu.Lock()
		live, pooled := r.mem.live, r.mem.n
		r.mem.mu.Unlock()
		if live != 0 || pooled == 0 {
			t.Errorf("%s mode %d: %d memories not freed, %d pooled", c.guest, c.mode, live, pooled)
		}
	}
	// The guest that instantiates still works with a reused memory.
	inst := instantiate(t, compile(t, r, "badinit.wasm", 1<<20), &fakeHost{})
	if got, err := inst.Run(ctx, nil); err != nil || got != 'x' {
		t.Fatalf("run: %d, %v", got, err)
	}
}

func TestMemPool(t *testing.T) {
	p := newMemPool()
	a := &instAlloc{pool: p}
	lm := a.Allocate(0, 2<<16).(*linearMemory)
	if lm.heap {
		t.Skip("no anonymous mappings here")
	}
	b := lm.Reallocate(1 << 16)
	if len(b) != 1<<16 || cap(b) != 1<<16 {
		t.Fatalf("len %d cap %d", len(b), cap(b))
	}
	b[100] = 1
	if b2 := lm.Reallocate(2 << 16); len(b2) != 2<<16 || &b2[0] != &b[0] {
		t.Fatal("growing moved or failed")
	}
	if lm.Reallocate(3<<16) != nil {
		t.Fatal("grew past the maximum")
	}
	lm.Free()
	if p.n != 1 || p.resident != 2<<16 || p.live != 0 {
		t.Fatalf("pooled %d, resident %d, live %d", p.n, p.resident, p.live)
	}
	lm.Free() // twice: nothing
	a.release()
	if p.n != 1 {
		t.Fatalf("freed twice: pooled %d", p.n)
	}
	other := &instAlloc{pool: p}
	if other.Allocate(0, 1<<16) == lm {
		t.Fatal("a memory of another maximum was reused")
	}
	again := other.Allocate(0, 2<<16).(*linearMemory)
	if again != lm || p.n != 0 || p.resident != 0 || p.live != 2 {
		t.Fatalf("not reused: %v, pooled %d, resident %d, live %d", again == lm, p.n, p.resident, p.live)
	}
	if b := again.Reallocate(1 << 16); b[100] != 0 {
		t.Fatal("reused memory not zeroed")
	}
	a.release() // a late release by the first owner must not free it
	if p.live != 2 || p.n != 0 {
		t.Fatalf("a stale release freed the memory: live %d, pooled %d", p.live, p.n)
	}

	// No mapping for a memory of no pages: an ordinary slice.
	z := other.Allocate(0, 0).(*linearMemory)
	if !z.heap || z.Reallocate(0) == nil {
		t.Fatal("empty memory")
	}
	z.Free()

	p.close(true)
	again.Free() // unmapped at once
	if p.n != 0 || len(p.free) != 0 {
		t.Fatalf("closed pool holds %d", p.n)
	}
}

// Closing the runtime under a running guest ends the activation at its
// next checkpoint and only then unmaps its memory; with a context that
// ends first, the memory is left mapped rather than pulled from under the
// guest.
func TestCloseDuringActivation(t *testing.T) {
	for _, wait := range []bool{true, false} {
		ctx := context.Background()
		r, err := New(ctx, Options{})
		if err != nil {
			t.Fatal(err)
		}
		m, err := r.Compile(ctx, guest(t, "memtest.wasm"), runtime.Config{MemoryLimit: 4 << 16})
		if err != nil {
			t.Fatal(err)
		}
		inst, err := m.Instantiate(ctx, &fakeHost{mode: 3}) // an endless loop writing to memory
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			var b runtime.Budget
			b.Arm(time.Hour)
			_, err := inst.Run(ctx, &b)
			done <- err
		}()
		for r.active.Load() == 0 {
			goruntime.Gosched()
		}
		cctx, cancel := context.WithCancel(ctx)
		if !wait {
			cancel()
		}
		if err := r.Close(cctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := <-done; !errors.Is(err, runtime.ErrClosed) {
			t.Fatalf("wait=%v: Run returned %v, want ErrClosed", wait, err)
		}
		if _, err := inst.Run(ctx, nil); !errors.Is(err, runtime.ErrClosed) {
			t.Errorf("Run after Close: %v", err)
		}
		if _, err := m.Instantiate(ctx, &fakeHost{}); !errors.Is(err, runtime.ErrClosed) {
			t.Errorf("Instantiate after Close: %v", err)
		}
		r.mem.mu.Lock()
		if r.mem.keep == wait {
			t.Errorf("wait=%v: keep=%v", wait, r.mem.keep)
		}
		r.mem.mu.Unlock()
	}
}
