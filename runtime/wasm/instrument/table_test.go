package instrument

import (
	"context"
	"testing"
)

// TestTableOpsCharged is issue 10's check of the table instructions: one
// touches at most the 65,536 elements the table cap allows (~30 µs for a
// table.fill of all of them), but a loop of them was charged
// memory-limit/16 units each, so with a 64 KiB memory 64 of them (~2 ms)
// ran between two checkpoints. Each is now charged the table cap: a loop
// of n table.fill of 65,536 elements reaches the checkpoint at least n/4
// times.
func TestTableOpsCharged(t *testing.T) {
	b := testModule()
	b = append(b, testSection(secType, 1, 0x60, 1, 0x7F, 0)...)
	b = append(b, testSection(secFunction, 1, 0)...)
	b = append(b, testSection(secTable, 1, 0x70, 0x01, 0x80, 0x80, 0x04, 0x80, 0x80, 0x04)...) // funcref 65536 65536
	b = append(b, testSection(secMemory, 1, 0, 1)...)                                          // 64 KiB
	b = append(b, testSection(secExport, 1, 4, 'f', 'i', 'l', 'l', 0, 0)...)
	// (loop: table.fill 0 (0, ref.null func, 65536); n -= 1; br_if n)
	body := []byte{0, 0x03, 0x40,
		0x41, 0, 0xD0, 0x70, 0x41, 0x80, 0x80, 0x04, 0xFC, 0x11, 0,
		0x20, 0, 0x41, 1, 0x6B, 0x22, 0, 0x0D, 0, 0x0B, 0x0B}
	b = append(b, testSection(secCode, append([]byte{1, byte(len(body))}, body...)...)...)
	res, err := Instrument(b, Options{MemoryLimit: PageSize})
	if err != nil {
		t.Fatal(err)
	}
	bare := newBare(t, false)
	mod := bare.instantiate(t, res.Code)
	const n = 400
	if _, err := mod.ExportedFunction("fill").Call(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	got := bare.checkpoints.Load()
	t.Logf("%d checkpoints", got)
	if got < n/4 {
		t.Fatalf("%d table.fill of 65,536 elements reached the checkpoint %d times, want at least %d", n, got, n/4)
	}
}
