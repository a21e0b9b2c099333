package wasm

import (
	"context"
	"sync"
	"testing"
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

func TestMemPool(t *testing.T) {
	p := newMemPool()
	lm := p.Allocate(0, 2<<16).(*linearMemory)
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
	if p.n != 1 || p.resident != 2<<16 {
		t.Fatalf("pooled %d, resident %d", p.n, p.resident)
	}
	if p.Allocate(0, 1<<16) == lm {
		t.Fatal("a memory of another maximum was reused")
	}
	again := p.Allocate(0, 2<<16).(*linearMemory)
	if again != lm || p.n != 0 || p.resident != 0 {
		t.Fatalf("not reused: %v, pooled %d, resident %d", again == lm, p.n, p.resident)
	}
	if b := again.Reallocate(1 << 16); b[100] != 0 {
		t.Fatal("reused memory not zeroed")
	}

	// No mapping for a memory of no pages: an ordinary slice.
	z := p.Allocate(0, 0).(*linearMemory)
	if !z.heap || z.Reallocate(0) == nil {
		t.Fatal("empty memory")
	}
	z.Free()

	p.close()
	again.Free() // unmapped at once
	if p.n != 0 || len(p.free) != 0 {
		t.Fatalf("closed pool holds %d", p.n)
	}
}
