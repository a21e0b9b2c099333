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

// Opcodes (after 0xFC) of the bulk memory instructions a helper replaces.
const (
	opInit = 0x08 // memory.init
	opCopy = 0x0A // memory.copy
	opFill = 0x0B // memory.fill
)

// bulkHelper is an added function: which instruction it replaces.
type bulkHelper struct {
	op  byte   // opFill, opCopy or opInit
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

// inst is the instruction h replaces, on memory 0.
func (h bulkHelper) inst() []byte {
	switch h.op {
	case opInit:
		return append(appendU32([]byte{0xFC, opInit}, h.seg), 0x00)
	case opCopy:
		return []byte{0xFC, opCopy, 0x00, 0x00}
	}
	return []byte{0xFC, opFill, 0x00}
}

// appendHelper appends the body (locals and code) of the helper for h, of
// type (i32, i32, i32) -> (): fill (d, v, n), copy (d, s, n) or init of
// h.seg (d, s, n). Only segments longer than bulkChunk get an init helper
// (a shorter one cannot copy more).
//
// Up to bulkChunk bytes it runs the instruction at once. Longer, it keeps
// the instruction's semantics, a bounds check of the whole ranges before
// anything is written: out of range, the original instruction runs (and
// traps). Fill and copy compare the ranges' ends with the memory's size.
// A segment's length cannot be read, so init runs the original when a
// range's end overflows 32 bits, and otherwise a zero-length memory.init
// at the two ends, which traps exactly when either range is out of bounds
// (the segment's length, 0 once dropped, included) and writes nothing.
// Then pieces of bulkChunk bytes, each charged: forward, or (a copy whose
// destination is above its source) backward.
func appendHelper(b []byte, h bulkHelper, fuel, checkpoint uint32, interval int32) []byte {
	inst := h.inst()
	get := func(x byte) { b = append(b, 0x20, x) }
	i32 := func(v int32) { b = append(b, 0x41); b = appendS32(b, v) }
	orig := func() { get(0); get(1); get(2); b = append(b, inst...) }
	origIf := func() { b = append(b, 0x04, 0x40); orig(); b = append(b, 0x0F, 0x0B) } // if; orig; return; end
	// The operands that are addresses: d, and s but for fill's value.
	addrs := []byte{0, 1}
	if h.op == opFill {
		addrs = addrs[:1]
	}
	// Whether an address's end x + n is above limit (pushed by limit), as
	// an i32 on the stack; or'ed over addrs.
	beyond := func(limit func()) {
		for i, x := range addrs {
			get(x)
			b = append(b, 0xAD) // i64.extend_i32_u
			get(2)
			b = append(b, 0xAD, 0x7C) // i64.extend_i32_u; i64.add
			limit()
			b = append(b, 0x56) // i64.gt_u
			if i > 0 {
				b = append(b, 0x72) // i32.or
			}
		}
	}
	// The addresses' ends, x + n.
	ends := func() {
		for _, x := range addrs {
			get(x)
			get(2)
			b = append(b, 0x6A) // i32.add
		}
	}
	b = append(b, 0) // no locals
	// Short: at once.
	get(2)
	i32(bulkChunk)
	b = append(b, 0x4D) // i32.le_u
	origIf()
	if h.op == opInit {
		beyond(func() { b = append(b, 0x42); b = appendS64(b, 0xFFFFFFFF) }) // i64.const 2^32-1
		origIf()
		// The bounds check: memory.init (d+n, s+n, 0).
		ends()
		i32(0)
		b = append(b, inst...)
	} else {
		// memory.size; i64.extend_i32_u; i64.const 16; i64.shl
		beyond(func() { b = append(b, 0x3F, 0x00, 0xAD, 0x42, 16, 0x86) })
		origIf()
	}
	charge := func() { b = appendCharge(b, fuel, checkpoint, interval) }
	// n -= chunk, as local.set (0x21) or local.tee (0x22) of n.
	less := func(set byte) { get(2); i32(bulkChunk); b = append(b, 0x6B, set, 2) }
	// Loop again while the i32 on the stack (n) is above a piece.
	again := func() { i32(bulkChunk); b = append(b, 0x4B, 0x0D, 0x00, 0x0B) } // i32.gt_u; br_if loop; end
	if h.op == opCopy {
		// Backward when the destination is above the source: pieces at
		// d+n and s+n, from the end.
		get(0)
		get(1)
		b = append(b, 0x4B, 0x04, 0x40) // i32.gt_u; if
		b = append(b, 0x03, 0x40)       // loop
		charge()
		less(0x21)
		ends()
		i32(bulkChunk)
		b = append(b, inst...)
		get(2)
		again()
		orig()
		b = append(b, 0x0F, 0x0B) // return; end
	}
	b = append(b, 0x03, 0x40) // loop
	charge()
	get(0)
	get(1)
	i32(bulkChunk)
	b = append(b, inst...)
	for _, x := range addrs { // x += chunk
		get(x)
		i32(bulkChunk)
		b = append(b, 0x6A, 0x21, x)
	}
	less(0x22)
	again()
	orig()
	return append(b, 0x0B)
}
