package instrument

import (
	"bytes"
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero/api"
)

// bulkModule is (memory 320 pages) with exports fill(d, v, n) and
// copy(d, s, n) that are single memory.fill / memory.copy instructions,
// and the memory exported as "mem".
func bulkModule() []byte {
	b := testModule()
	b = append(b, testSection(secType, 1, 0x60, 3, 0x7F, 0x7F, 0x7F, 0)...)
	b = append(b, testSection(secFunction, 2, 0, 0)...)
	b = append(b, testSection(secMemory, 1, 0, 0xC0, 0x02)...) // 320 pages
	b = append(b, testSection(secExport, 3, 4, 'f', 'i', 'l', 'l', 0, 0, 4, 'c', 'o', 'p', 'y', 0, 1, 3, 'm', 'e', 'm', 2, 0)...)
	fill := []byte{0, 0x20, 0, 0x20, 1, 0x20, 2, 0xFC, 0x0B, 0x00, 0x0B}
	cp := []byte{0, 0x20, 0, 0x20, 1, 0x20, 2, 0xFC, 0x0A, 0x00, 0x00, 0x0B}
	code := []byte{2, byte(len(fill))}
	code = append(code, fill...)
	code = append(code, byte(len(cp)))
	code = append(code, cp...)
	return append(b, testSection(secCode, code...)...)
}

// TestBulkMemorySplit: long memory.fill and memory.copy give the same
// memory and the same traps as plain wazero (overlapping copies both
// ways, ranges out of bounds by a byte, lengths around the piece size),
// and a single 16 MiB fill reaches the checkpoint (issue 10).
func TestBulkMemorySplit(t *testing.T) {
	orig := bulkModule()
	res, err := Instrument(orig, Options{MemoryLimit: 320 * PageSize})
	if err != nil {
		t.Fatal(err)
	}
	plainRT, instRT := newBare(t, false), newBare(t, false)
	plain, inst := plainRT.instantiate(t, orig), instRT.instantiate(t, res.Code)
	size := uint64(320 * PageSize)
	rng := rand.New(rand.NewPCG(1, 2))
	ctx := context.Background()
	lengths := []uint64{0, 1, bulkChunk - 1, bulkChunk, bulkChunk + 1, 2 * bulkChunk, 3*bulkChunk + 7, 1 << 20, 5<<20 + 3}
	call := func(mod api.Module, name string, a, b, n uint64) string {
		_, err := mod.ExportedFunction(name).Call(ctx, a, b, n)
		if err != nil {
			msg, _, _ := strings.Cut(err.Error(), "\n") // without the stack trace
			return msg
		}
		return ""
	}
	for round := range 60 {
		n := lengths[round%len(lengths)]
		name := "copy"
		if round%3 == 0 {
			name = "fill"
		}
		var a, b uint64
		switch round % 5 {
		case 0: // at the end, one byte past it
			a, b = size-n+1, rng.Uint64N(size-n+1)
		case 1: // overlapping, destination above
			b = rng.Uint64N(size - n - 100)
			a = b + rng.Uint64N(100) + 1
		case 2: // overlapping, destination below
			a = rng.Uint64N(size - n - 100)
			b = a + rng.Uint64N(100) + 1
		default:
			a, b = rng.Uint64N(size-n+1), rng.Uint64N(size-n+1)
		}
		if name == "fill" {
			b = rng.Uint64N(256)
		}
		e1, e2 := call(plain, name, a, b, n), call(inst, name, a, b, n)
		if e1 != e2 {
			t.Fatalf("%s(%d, %d, %d): plain %q, instrumented %q", name, a, b, n, e1, e2)
		}
		m1, _ := plain.Memory().Read(0, uint32(size))
		m2, _ := inst.Memory().Read(0, uint32(size))
		if !bytes.Equal(m1, m2) {
			t.Fatalf("%s(%d, %d, %d): memories differ", name, a, b, n)
		}
		// Fresh random contents for the next round.
		for i := 0; i < len(m1); i += 4093 {
			v := byte(rng.Uint32())
			m1[i], m2[i] = v, v
		}
	}
	before := instRT.checkpoints.Load()
	if e := call(inst, "fill", 0, 7, 16<<20); e != "" {
		t.Fatal(e)
	}
	// 256 pieces of 64 ticks: at least 4 checkpoints at the default interval.
	if got := instRT.checkpoints.Load() - before; got < 4 {
		t.Fatalf("a 16 MiB memory.fill reached the checkpoint %d times, want >= 4", got)
	}
}

// initModule is (memory 320 pages) with a passive data segment of segLen
// pseudo-random bytes and exports init(d, s, n), a single memory.init of
// it, drop(), its data.drop, and the memory as "mem".
const segLen = 1<<20 + 5

func initModule() []byte {
	b := testModule()
	b = append(b, testSection(secType, 2, 0x60, 3, 0x7F, 0x7F, 0x7F, 0, 0x60, 0, 0)...)
	b = append(b, testSection(secFunction, 2, 0, 1)...)
	b = append(b, testSection(secMemory, 1, 0, 0xC0, 0x02)...) // 320 pages
	b = append(b, testSection(secExport, 3, 4, 'i', 'n', 'i', 't', 0, 0, 4, 'd', 'r', 'o', 'p', 0, 1, 3, 'm', 'e', 'm', 2, 0)...)
	b = append(b, testSection(secDataCount, 1)...)
	initF := []byte{0, 0x20, 0, 0x20, 1, 0x20, 2, 0xFC, 0x08, 0x00, 0x00, 0x0B}
	drop := []byte{0, 0xFC, 0x09, 0x00, 0x0B}
	code := []byte{2, byte(len(initF))}
	code = append(code, initF...)
	code = append(code, byte(len(drop)))
	code = append(code, drop...)
	b = append(b, testSection(secCode, code...)...)
	data := appendU32([]byte{1, 1}, segLen) // one passive segment
	rng := rand.New(rand.NewPCG(3, 4))
	for range segLen {
		data = append(data, byte(rng.Uint32()))
	}
	return append(b, testSection(secData, data...)...)
}

// TestMemoryInitSplit is issue 10's gap "memory.init is charged up front,
// not by its size": a memory.init of a segment longer than a piece goes
// through a helper that works in 64 KiB pieces, each charged, with the
// instruction's semantics (same memory and same traps as plain wazero:
// ranges past the segment or the memory by a byte, 32-bit overflow, a
// dropped segment), and a 1 MiB one reaches the checkpoint.
func TestMemoryInitSplit(t *testing.T) {
	orig := initModule()
	res, err := Instrument(orig, Options{MemoryLimit: 320 * PageSize, Interval: 256})
	if err != nil {
		t.Fatal(err)
	}
	plainRT, instRT := newBare(t, false), newBare(t, false)
	plain, inst := plainRT.instantiate(t, orig), instRT.instantiate(t, res.Code)
	size := uint64(320 * PageSize)
	ctx := context.Background()
	call := func(mod api.Module, name string, args ...uint64) string {
		_, err := mod.ExportedFunction(name).Call(ctx, args...)
		if err != nil {
			msg, _, _ := strings.Cut(err.Error(), "\n")
			return msg
		}
		return ""
	}
	same := func(what string, args ...uint64) {
		t.Helper()
		e1, e2 := call(plain, "init", args...), call(inst, "init", args...)
		if e1 != e2 {
			t.Fatalf("%s init%v: plain %q, instrumented %q", what, args, e1, e2)
		}
		m1, _ := plain.Memory().Read(0, uint32(size))
		m2, _ := inst.Memory().Read(0, uint32(size))
		if !bytes.Equal(m1, m2) {
			t.Fatalf("%s init%v: memories differ", what, args)
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []uint64{0, 1, bulkChunk - 1, bulkChunk, bulkChunk + 1, 3*bulkChunk + 7, segLen - 1, segLen} {
		d, s := rng.Uint64N(size-n+1), rng.Uint64N(segLen-n+1)
		same("in range", d, s, n)
		same("segment end +1", d, segLen-n+1, n)
		same("memory end +1", size-n+1, s, n)
		same("at both ends", size-n, segLen-n, n)
	}
	same("overflowing destination", 1<<32-bulkChunk, 0, 2*bulkChunk)
	same("overflowing source", 0, 1<<32-bulkChunk, 2*bulkChunk)
	before := instRT.checkpoints.Load()
	same("whole segment", 0, 0, segLen)
	// 17 pieces of 64 ticks at an interval of 256: at least 4 checkpoints.
	if got := instRT.checkpoints.Load() - before; got < 4 {
		t.Fatalf("a 1 MiB memory.init reached the checkpoint %d times, want >= 4", got)
	}
	if e1, e2 := call(plain, "drop"), call(inst, "drop"); e1 != "" || e2 != "" {
		t.Fatal(e1, e2)
	}
	same("dropped, empty", 0, 0, 0)
	same("dropped", 0, 0, 2*bulkChunk)
}
