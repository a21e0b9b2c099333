package tflite

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

func helloWorld(t testing.TB) []byte {
	return readFile(t, filepath.Join(tinymlDir(t), "tflm/hello_world/hello_world_int8.tflite"))
}

// weightOffset returns the offset of the first byte of the largest constant
// tensor's data.
func weightOffset(t testing.TB, model []byte) int {
	m, err := Parse(model)
	if err != nil {
		t.Fatal(err)
	}
	best := -1
	for i := range m.tensors {
		if ts := &m.tensors[i]; ts.constant && ts.Type == Int8 && (best < 0 || ts.Bytes > m.tensors[best].Bytes) {
			best = i
		}
	}
	return m.tensors[best].dataOff
}

func TestCacheWeightsReadInPlace(t *testing.T) {
	model := helloWorld(t)
	c := NewCache(8)
	in := []byte{0x22}
	out := make([]byte, 1)
	if _, err := c.Invoke("a", model, in, out); err != nil {
		t.Fatal(err)
	}
	// Change every weight of the largest filter: the cached interpreter must
	// compute with the new weights, as a fresh parse would.
	mod := slices.Clone(model)
	off := weightOffset(t, mod)
	for i := range 16 * 16 {
		mod[off+i] ^= 0x5a
	}
	want, err := Run(mod, in)
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := Run(model, in)
	if bytes.Equal(want, orig) {
		t.Fatal("test needs a weight change that changes the output")
	}
	if _, err := c.Invoke("a", mod, in, out); err != nil || !bytes.Equal(out, want) {
		t.Fatalf("after weight change: %v %v, want %v", out, err, want)
	}
	if c.Len() != 1 {
		t.Errorf("weight change re-parsed: %d entries", c.Len())
	}
}

func TestCacheStructureChange(t *testing.T) {
	model := helloWorld(t)
	m, err := Parse(model)
	if err != nil {
		t.Fatal(err)
	}
	c := NewCache(8)
	in := []byte{0x40}
	out := make([]byte, 1)
	if _, err := c.Invoke("a", model, in, out); err != nil {
		t.Fatal(err)
	}
	// Flip a low mantissa bit of each structural byte in turn (a sample):
	// the result must always equal a fresh run of the changed bytes.
	for i, s := range m.spans {
		if i%3 != 0 {
			continue
		}
		mod := slices.Clone(model)
		mod[s.off] ^= 1
		want, werr := Run(mod, in)
		n, err := c.Invoke("a", mod, in, out)
		if (err == nil) != (werr == nil) || (err == nil && !bytes.Equal(out[:n], want)) {
			t.Fatalf("byte %d changed: cache %v %v, fresh %v %v", s.off, out[:n], err, want, werr)
		}
	}
	if _, err := c.Invoke("a", model, in, out); err != nil {
		t.Fatal(err)
	}
}

func TestCacheOwnersAndEviction(t *testing.T) {
	model := helloWorld(t)
	c := NewCache(4) // one entry per owner
	out := make([]byte, 1)
	for i := range 6 {
		if _, err := c.Invoke(fmt.Sprint("owner", i), model, []byte{byte(i)}, out); err != nil {
			t.Fatal(err)
		}
	}
	if c.Len() != 4 {
		t.Errorf("Len = %d, want 4", c.Len())
	}
	// Two variants for one owner: the per-owner share (1) keeps the newest.
	mod := slices.Clone(model)
	mod[weightOffset(t, mod)] ^= 1
	c.Invoke("x", model, []byte{1}, out)
	c.Invoke("x", mod, []byte{1}, out) // same structure: a hit
	c.Drop("x")
	c.Drop("owner5")
	if c.Len() != 2 {
		t.Errorf("after Drop Len = %d, want 2", c.Len())
	}
}

func TestCacheConcurrent(t *testing.T) {
	model := helloWorld(t)
	want := map[byte][]byte{}
	for x := range 8 {
		want[byte(x*30)], _ = Run(model, []byte{byte(x * 30)})
	}
	c := NewCache(8)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([]byte, 1)
			for i := range 200 {
				x := byte((i + g) % 8 * 30)
				if _, err := c.Invoke(fmt.Sprint("o", g%2), model, []byte{x}, out); err != nil || !bytes.Equal(out, want[x]) {
					t.Errorf("x=%d: %v %v want %v", x, out, err, want[x])
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestInvokeErrors(t *testing.T) {
	model := helloWorld(t)
	m, _ := Parse(model)
	it, err := NewInterpreter(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := it.Invoke(model, []byte{1, 2}, make([]byte, 1)); !errors.Is(err, ErrInput) {
		t.Errorf("long input: %v", err)
	}
	if _, err := it.Invoke(model, []byte{1}, nil); !errors.Is(err, ErrOutputTooSmall) {
		t.Errorf("no output room: %v", err)
	}
	if _, err := it.Invoke(model[:len(model)-1], []byte{1}, make([]byte, 1)); !errors.Is(err, ErrModelChanged) {
		t.Errorf("truncated model: %v", err)
	}
	mod := slices.Clone(model)
	mod[m.spans[len(m.spans)/2].off] ^= 0x80
	if _, err := it.Invoke(mod, []byte{1}, make([]byte, 1)); !errors.Is(err, ErrModelChanged) {
		t.Errorf("structure change: %v", err)
	}
}

// TestParseTruncated: every prefix of a real model fails cleanly.
func TestParseTruncated(t *testing.T) {
	model := helloWorld(t)
	for n := range len(model) {
		m, err := Parse(model[:n])
		if err == nil {
			_, err = NewInterpreter(m)
		}
		if err == nil {
			continue // a prefix may still be a valid model
		}
		if !errors.Is(err, ErrInvalidModel) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrLimit) {
			t.Fatalf("prefix %d: error %v of no class", n, err)
		}
	}
}

func TestRunFile(t *testing.T) {
	dir := tinymlDir(t)
	got, err := RunFile(filepath.Join(dir, "mlperf_tiny/kws/kws_ref_model.tflite"), filepath.Join(dir, "mlperf_tiny/kws/kws_input0.int8.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if want := readFile(t, filepath.Join(dir, "mlperf_tiny/kws/golden/kws_input0.int8.out_tflm.bin")); !bytes.Equal(got, want) {
		t.Errorf("RunFile = %v, want %v", got, want)
	}
	if _, err := RunFile(filepath.Join(dir, "MANIFEST.md"), filepath.Join(dir, "mlperf_tiny/kws/kws_input0.int8.bin")); !errors.Is(err, ErrInvalidModel) {
		t.Errorf("non-model: %v", err)
	}
	if _, err := RunFile(filepath.Join(dir, "nope.tflite"), ""); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// BenchmarkCacheHit measures the cache's per-call cost beyond Invoke: the
// structural comparison, against a full CRC of the model for reference.
func BenchmarkCacheHit(b *testing.B) {
	dir := tinymlDir(b)
	for _, bm := range benchModels {
		model := readFile(b, filepath.Join(dir, bm.model))
		m, err := Parse(model)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bm.name+"/match", func(b *testing.B) {
			for b.Loop() {
				if !m.Matches(model) {
					b.Fatal("no match")
				}
			}
			b.ReportMetric(float64(m.StructureBytes()), "struct-B")
			b.ReportMetric(float64(len(m.spans)), "spans")
		})
		b.Run(bm.name+"/crc32-full", func(b *testing.B) {
			b.SetBytes(int64(len(model)))
			for b.Loop() {
				crc32.ChecksumIEEE(model)
			}
		})
		b.Run(bm.name+"/parse", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m, err := Parse(model)
				if err == nil {
					_, err = NewInterpreter(m)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
