package instrument

// kind classifies an instruction by what the rewriter must do with it.
type kind uint8

const (
	kOther kind = iota
	kBlock      // block, if: opens a label
	kLoop       // loop: opens a label and is a back-edge target
	kElse
	kEnd
	kReturn
	kCall               // call f
	kCallIndirect       // call_indirect
	kReturnCall         // return_call f
	kReturnCallIndirect // return_call_indirect
	kRefFunc            // ref.func f
	kBulk               // cost proportional to a length operand
	kLocal              // local.get, local.set, local.tee
	kGlobal             // global.get, global.set
	kBr                 // br, br_if: idx is the label depth
	kBrTable            // br_table
)

// inst is one decoded instruction: its bytes are body[start:end] and, for
// instructions that name a function, the index is body[idxStart:idxEnd].
type inst struct {
	start, end       int
	idxStart, idxEnd int
	idx              uint32
	kind             kind
	// typ is the type index of a block type or call_indirect, when
	// hasType.
	typ     uint32
	hasType bool
}

// Immediate shapes of single-byte opcodes.
const (
	immNone byte = iota + 1
	immBlockType
	immU32
	immU32x2
	immBrTable
	immMemArg
	immMemIdx
	immS32
	immS64
	immF32
	immF64
	immSelectT
	immRefType
)

// opImm gives the immediate shape of every supported single-byte opcode
// (0: not supported). Prefixes 0xFC and 0xFD are decoded separately.
var opImm = func() [256]byte {
	var t [256]byte
	set := func(imm byte, ops ...byte) {
		for _, o := range ops {
			t[o] = imm
		}
	}
	set(immNone, 0x00, 0x01, 0x05, 0x0B, 0x0F, 0x1A, 0x1B, 0xD1)
	set(immBlockType, 0x02, 0x03, 0x04)
	set(immU32, 0x0C, 0x0D, 0x10, 0x12, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0xD2)
	set(immU32x2, 0x11, 0x13)
	set(immBrTable, 0x0E)
	for o := 0x28; o <= 0x3E; o++ {
		t[o] = immMemArg
	}
	set(immMemIdx, 0x3F, 0x40)
	set(immS32, 0x41)
	set(immS64, 0x42)
	set(immF32, 0x43)
	set(immF64, 0x44)
	for o := 0x45; o <= 0xC4; o++ {
		t[o] = immNone
	}
	set(immSelectT, 0x1C)
	set(immRefType, 0xD0)
	return t
}()

// simdMissing lists the opcodes of the 0xFD space up to 0xFF that the SIMD
// proposal leaves unassigned.
var simdMissing = [...]uint32{0x9a, 0xa2, 0xa5, 0xa6, 0xaf, 0xb0, 0xb2, 0xb3, 0xb4, 0xbb, 0xc2, 0xc5, 0xc6, 0xcf, 0xd0, 0xd2, 0xd3, 0xd4, 0xe2, 0xee}

func isValType(b byte) bool {
	switch b {
	case 0x7F, 0x7E, 0x7D, 0x7C, 0x7B, 0x70, 0x6F:
		return true
	}
	return false
}

func isRefType(b byte) bool { return b == 0x70 || b == 0x6F }

// unsupported names the proposals whose opcodes are refused, to make the
// error say why.
func unsupported(op byte) string {
	switch op {
	case 0x06, 0x07, 0x08, 0x09, 0x0A, 0x18, 0x19, 0x1F:
		return "exception handling is not supported"
	case 0xFE:
		return "threads and atomics are not supported"
	case 0x14, 0x15, 0xD3, 0xD4, 0xD5, 0xD6:
		return "typed function references are not supported"
	case 0xFB:
		return "garbage collection instructions are not supported"
	}
	return "unknown opcode"
}

// decodeInst decodes the instruction at r's position.
func decodeInst(r *reader) (inst, error) {
	in := inst{start: r.off}
	op, err := r.byte()
	if err != nil {
		return in, err
	}
	switch op {
	case 0x02, 0x04:
		in.kind = kBlock
	case 0x03:
		in.kind = kLoop
	case 0x05:
		in.kind = kElse
	case 0x0B:
		in.kind = kEnd
	case 0x0F:
		in.kind = kReturn
	case 0x10:
		in.kind = kCall
	case 0x11:
		in.kind = kCallIndirect
	case 0x12:
		in.kind = kReturnCall
	case 0x13:
		in.kind = kReturnCallIndirect
	case 0xD2:
		in.kind = kRefFunc
	case 0x40:
		in.kind = kBulk // memory.grow copies the memory
	case 0x0C, 0x0D:
		in.kind = kBr
	case 0x0E:
		in.kind = kBrTable
	case 0x20, 0x21, 0x22:
		in.kind = kLocal
	case 0x23, 0x24:
		in.kind = kGlobal
	case 0xFC:
		err = decodeMisc(r, &in)
		in.end = r.off
		return in, err
	case 0xFD:
		err = decodeSIMD(r)
		in.end = r.off
		return in, err
	}
	switch opImm[op] {
	case 0:
		r.off--
		return in, r.errorf("opcode %#02x: %s", op, unsupported(op))
	case immNone:
	case immBlockType:
		in.typ, in.hasType, err = blockType(r)
	case immU32:
		in.idxStart = r.off
		in.idx, err = r.u32()
		in.idxEnd = r.off
	case immU32x2: // type index, table index
		if in.typ, err = r.u32(); err == nil {
			in.hasType = true
			_, err = r.u32()
		}
	case immBrTable:
		var n uint32
		if n, err = r.u32(); err != nil {
			break
		}
		if uint64(n) > uint64(r.left()) {
			return in, r.errorf("br_table with %d labels exceeds the body", n)
		}
		for i := uint32(0); i <= n && err == nil; i++ {
			_, err = r.u32()
		}
	case immMemArg:
		err = memArg(r)
	case immMemIdx:
		err = memIdx(r)
	case immS32:
		_, err = r.signed(32)
	case immS64:
		_, err = r.signed(64)
	case immF32:
		_, err = r.bytes(4)
	case immF64:
		_, err = r.bytes(8)
	case immSelectT:
		var n uint32
		if n, err = r.u32(); err != nil {
			break
		}
		if uint64(n) > uint64(r.left()) {
			return in, r.errorf("select with %d types exceeds the body", n)
		}
		for i := uint32(0); i < n && err == nil; i++ {
			var t byte
			if t, err = r.byte(); err == nil && !isValType(t) {
				err = r.errorf("select: unknown value type %#02x", t)
			}
		}
	case immRefType:
		var t byte
		if t, err = r.byte(); err == nil && !isRefType(t) {
			err = r.errorf("ref.null: unknown reference type %#02x", t)
		}
	}
	in.end = r.off
	return in, err
}

// blockType reads a block type: empty, one value type, or a type index
// (then returned, with true).
func blockType(r *reader) (uint32, bool, error) {
	if r.eof() {
		return 0, false, r.errorf("unexpected end of data")
	}
	if b := r.b[r.off]; b == 0x40 || isValType(b) {
		r.off++
		return 0, false, nil
	}
	v, err := r.signed(33)
	if err != nil {
		return 0, false, err
	}
	if v < 0 || v > 1<<32-1 {
		return 0, false, r.errorf("unknown block type %d", v)
	}
	return uint32(v), true, nil
}

func memArg(r *reader) error {
	align, err := r.u32()
	if err != nil {
		return err
	}
	if align >= 64 {
		return r.errorf("memory instruction names another memory (multiple memories are not supported)")
	}
	_, err = r.u32()
	return err
}

// memIdx reads the reserved memory index byte, which must be zero.
func memIdx(r *reader) error {
	b, err := r.byte()
	if err != nil {
		return err
	}
	if b != 0 {
		return r.errorf("memory index %#02x (multiple memories are not supported)", b)
	}
	return nil
}

func decodeMisc(r *reader, in *inst) error {
	at := r.off - 1
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 7: // saturating truncation
		return nil
	case sub == 8: // memory.init data mem
		in.kind = kBulk
		if _, err = r.u32(); err != nil {
			return err
		}
		return memIdx(r)
	case sub == 9, sub == 13, sub == 16: // data.drop, elem.drop, table.size
		_, err = r.u32()
		return err
	case sub == 10: // memory.copy mem mem
		in.kind = kBulk
		if err = memIdx(r); err != nil {
			return err
		}
		return memIdx(r)
	case sub == 11: // memory.fill mem
		in.kind = kBulk
		return memIdx(r)
	case sub == 12, sub == 14: // table.init elem table, table.copy table table
		in.kind = kBulk
		if _, err = r.u32(); err != nil {
			return err
		}
		_, err = r.u32()
		return err
	case sub == 15, sub == 17: // table.grow, table.fill
		in.kind = kBulk
		_, err = r.u32()
		return err
	}
	r.off = at
	return r.errorf("opcode 0xfc %d: unknown opcode", sub)
}

func decodeSIMD(r *reader) error {
	at := r.off - 1
	start := r.off
	sub, err := r.u32()
	if err != nil {
		return err
	}
	// Only the shortest encoding is accepted, because some decoders read
	// this opcode as one byte followed by a nop for 0x80..0xff.
	if n := r.off - start; (sub < 0x80 && n != 1) || (sub >= 0x80 && n != 2) {
		r.off = at
		return r.errorf("opcode 0xfd %d: non-minimal opcode encoding", sub)
	}
	switch {
	case sub <= 0x0B || sub == 0x5C || sub == 0x5D: // loads, stores, load_zero
		return memArg(r)
	case sub == 0x0C || sub == 0x0D: // v128.const, i8x16.shuffle
		_, err = r.bytes(16)
		return err
	case sub >= 0x15 && sub <= 0x22: // extract_lane, replace_lane
		_, err = r.byte()
		return err
	case sub >= 0x54 && sub <= 0x5B: // load_lane, store_lane
		if err = memArg(r); err != nil {
			return err
		}
		_, err = r.byte()
		return err
	case sub > 0xFF:
		r.off = at
		return r.errorf("opcode 0xfd %d: relaxed SIMD and later proposals are not supported", sub)
	}
	for _, m := range simdMissing {
		if sub == m {
			r.off = at
			return r.errorf("opcode 0xfd %d: unknown opcode", sub)
		}
	}
	return nil
}
