package instrument

// Bulk memory instructions run as long as their length says: one
// memory.fill of 64 MiB takes 0.3-0.7 s, far past any budget, and no
// checkpoint can come inside one instruction. Every memory.fill and
// memory.copy of the guest therefore calls a helper added to the module,
// which does short ones (up to bulkChunk bytes) at once and long ones in
// bulkChunk pieces, charging each piece and calling the checkpoint when
// the fuel runs out, with the instruction's semantics: a bounds check of
// the whole range first (out of range, the original instruction runs and
// traps as it would, writing nothing), and memory.copy forward or
// backward as the ranges overlap.
const (
	bulkChunk = 64 << 10
	// bulkChunkTicks is a piece's charge: about 16 bytes per estimated
	// instruction, as bulkCost.
	bulkChunkTicks = bulkChunk / 16 / unitsPerTick
)

// bulkHelper is an added function: which instruction it replaces.
type bulkHelper struct {
	op  byte   // 0x0B memory.fill, 0x0A memory.copy, 0x08 memory.init
	seg uint32 // memory.init: the data segment
	idx uint32 // its function index in the output
}

// appendCharge appends code that charges one piece to the fuel global
// and calls the checkpoint when the fuel runs out.
func appendCharge(b []byte, fuel, checkpoint uint32, interval int32) []byte {
	b = append(b, 0x23)
	b = appendU32(b, fuel)
	b = append(b, 0x41)
	b = appendS32(b, bulkChunkTicks)
	b = append(b, 0x6B, 0x24) // i32.sub; global.set F
	b = appendU32(b, fuel)
	b = append(b, 0x23)
	b = appendU32(b, fuel)
	b = append(b, 0x41, 0)                // i32.const 0
	b = append(b, 0x48, 0x04, 0x40, 0x10) // i32.lt_s; if; call checkpoint
	b = appendU32(b, checkpoint)
	b = append(b, 0x41)
	b = appendS32(b, interval)
	b = append(b, 0x24) // global.set F
	b = appendU32(b, fuel)
	return append(b, 0x0B)
}

// appendInitHelper appends the body of the helper for memory.init of data
// segment seg, of type (i32, i32, i32) -> (): (d, s, n). Only segments
// longer than bulkChunk get one (a shorter one cannot copy more). Up to
// bulkChunk bytes it runs the instruction at once. Longer, it keeps the
// instruction's semantics (a bounds check of both whole ranges before
// anything is written): a range whose end overflows 32 bits makes the
// original instruction run (and trap); otherwise a zero-length
// memory.init at the two ends, which traps exactly when either range is
// out of bounds (the segment's length, 0 once dropped, included) and
// writes nothing; then pieces of bulkChunk bytes, each charged.
func appendInitHelper(b []byte, seg, fuel, checkpoint uint32, interval int32) []byte {
	inst := appendU32([]byte{0xFC, 0x08}, seg)
	inst = append(inst, 0x00) // memory 0
	get := func(x byte) { b = append(b, 0x20, x) }
	i32 := func(v int32) { b = append(b, 0x41); b = appendS32(b, v) }
	orig := func() { get(0); get(1); get(2); b = append(b, inst...) }
	// Whether x + n overflows 32 bits, as an i32 on the stack.
	overflows := func(x byte) {
		get(x)
		b = append(b, 0xAD) // i64.extend_i32_u
		get(2)
		b = append(b, 0xAD, 0x7C) // i64.extend_i32_u; i64.add
		b = append(b, 0x42)
		b = appendS64(b, 0xFFFFFFFF)
		b = append(b, 0x56) // i64.gt_u
	}
	b = append(b, 0) // no locals
	get(2)
	i32(bulkChunk)
	b = append(b, 0x4D, 0x04, 0x40) // i32.le_u; if
	orig()
	b = append(b, 0x0F, 0x0B) // return; end
	overflows(0)
	overflows(1)
	b = append(b, 0x72, 0x04, 0x40) // i32.or; if
	orig()
	b = append(b, 0x0F, 0x0B) // return; end
	// The bounds check: memory.init (d+n, s+n, 0).
	get(0)
	get(2)
	b = append(b, 0x6A) // i32.add
	get(1)
	get(2)
	b = append(b, 0x6A) // i32.add
	i32(0)
	b = append(b, inst...)
	b = append(b, 0x03, 0x40) // loop
	b = appendCharge(b, fuel, checkpoint, interval)
	get(0)
	get(1)
	i32(bulkChunk)
	b = append(b, inst...)
	for _, x := range []byte{0, 1} { // d, s += chunk
		get(x)
		i32(bulkChunk)
		b = append(b, 0x6A, 0x21, x)
	}
	get(2)
	i32(bulkChunk)
	b = append(b, 0x6B, 0x22, 2) // n -= chunk (tee)
	i32(bulkChunk)
	b = append(b, 0x4B, 0x0D, 0x00, 0x0B) // i32.gt_u; br_if loop; end
	orig()
	return append(b, 0x0B)
}

// appendBulkHelper appends the body (locals and code) of the helper for
// op, of type (i32, i32, i32) -> (): fill (d, v, n) or copy (d, s, n).
func appendBulkHelper(b []byte, op byte, fuel, checkpoint uint32, interval int32) []byte {
	inst := []byte{0xFC, 0x0B, 0x00} // memory.fill
	if op == 0x0A {
		inst = []byte{0xFC, 0x0A, 0x00, 0x00} // memory.copy
	}
	get := func(x byte) { b = append(b, 0x20, x) }
	i32 := func(v int32) { b = append(b, 0x41); b = appendS32(b, v) }
	orig := func() { get(0); get(1); get(2); b = append(b, inst...) }
	// Whether [x, x+n) is outside the memory, as an i32 on the stack.
	outside := func(x byte) {
		get(x)
		b = append(b, 0xAD) // i64.extend_i32_u
		get(2)
		b = append(b, 0xAD, 0x7C)                 // i64.extend_i32_u; i64.add
		b = append(b, 0x3F, 0x00, 0xAD, 0x42, 16) // memory.size; i64.extend_i32_u; i64.const 16
		b = append(b, 0x86, 0x56)                 // i64.shl; i64.gt_u
	}
	charge := func() { b = appendCharge(b, fuel, checkpoint, interval) }
	b = append(b, 0) // no locals
	// Short: at once.
	get(2)
	i32(bulkChunk)
	b = append(b, 0x4D, 0x04, 0x40) // i32.le_u; if
	orig()
	b = append(b, 0x0F, 0x0B) // return; end
	// Out of range: the instruction traps.
	outside(0)
	if op == 0x0A {
		outside(1)
		b = append(b, 0x72) // i32.or
	}
	b = append(b, 0x04, 0x40) // if
	orig()
	b = append(b, 0x0F, 0x0B) // return; end
	piece := func(offset bool) {
		// d(+n), v or s(+n), bulkChunk; the instruction
		get(0)
		if offset {
			get(2)
			b = append(b, 0x6A)
		}
		get(1)
		if offset {
			get(2)
			b = append(b, 0x6A)
		}
		i32(bulkChunk)
		b = append(b, inst...)
	}
	advance := func(x byte) { get(x); i32(bulkChunk); b = append(b, 0x6A, 0x21, x) } // x += chunk
	if op == 0x0A {
		// Backward when the destination is above the source.
		get(0)
		get(1)
		b = append(b, 0x4B, 0x04, 0x40) // i32.gt_u; if
		b = append(b, 0x03, 0x40)       // loop
		charge()
		get(2)
		i32(bulkChunk)
		b = append(b, 0x6B, 0x21, 2) // n -= chunk
		piece(true)
		get(2)
		i32(bulkChunk)
		b = append(b, 0x4B, 0x0D, 0x00, 0x0B) // i32.gt_u; br_if loop; end
		get(0)
		get(1)
		get(2)
		b = append(b, inst...)
		b = append(b, 0x0F, 0x0B) // return; end
	}
	b = append(b, 0x03, 0x40) // loop
	charge()
	piece(false)
	advance(0)
	if op == 0x0A {
		advance(1)
	}
	get(2)
	i32(bulkChunk)
	b = append(b, 0x6B, 0x22, 2) // n -= chunk (tee)
	i32(bulkChunk)
	b = append(b, 0x4B, 0x0D, 0x00, 0x0B) // i32.gt_u; br_if loop; end
	orig()
	return append(b, 0x0B)
}
