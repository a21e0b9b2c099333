package ebpf

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/tinycontainer/tinycontainer/runtime"
)

// op is a pre-decoded operation: every variant the interpreter tells apart
// (class, operand source, size, signedness, 32/64 bits) is its own value,
// so the interpreter dispatches once per instruction on a dense switch.
type op uint8

const (
	opInvalid op = iota // the second slot of lddw; never executed

	// 64-bit ALU. X: src register, K: immediate.
	opAdd64X
	opAdd64K
	opSub64X
	opSub64K
	opMul64X
	opMul64K
	opDiv64X
	opDiv64K
	opSDiv64X
	opSDiv64K
	opOr64X
	opOr64K
	opAnd64X
	opAnd64K
	opLsh64X
	opLsh64K
	opRsh64X
	opRsh64K
	opNeg64
	opMod64X
	opMod64K
	opSMod64X
	opSMod64K
	opXor64X
	opXor64K
	opMov64X
	opMov64K
	opArsh64X
	opArsh64K
	opMovSX8to64
	opMovSX16to64
	opMovSX32to64

	// 32-bit ALU: operands are the low 32 bits, the result is zero-extended.
	opAdd32X
	opAdd32K
	opSub32X
	opSub32K
	opMul32X
	opMul32K
	opDiv32X
	opDiv32K
	opSDiv32X
	opSDiv32K
	opOr32X
	opOr32K
	opAnd32X
	opAnd32K
	opLsh32X
	opLsh32K
	opRsh32X
	opRsh32K
	opNeg32
	opMod32X
	opMod32K
	opSMod32X
	opSMod32K
	opXor32X
	opXor32K
	opMov32X
	opMov32K
	opArsh32X
	opArsh32K
	opMovSX8to32
	opMovSX16to32

	// Byte order. Guest memory is little-endian, so "to little-endian"
	// only truncates and "to big-endian" swaps.
	opLE16
	opLE32
	opBE16
	opBE32
	opBE64

	// Jumps; off holds the absolute target.
	opJA
	opJEq64X
	opJEq64K
	opJGt64X
	opJGt64K
	opJGe64X
	opJGe64K
	opJSet64X
	opJSet64K
	opJNe64X
	opJNe64K
	opJSGt64X
	opJSGt64K
	opJSGe64X
	opJSGe64K
	opJLt64X
	opJLt64K
	opJLe64X
	opJLe64K
	opJSLt64X
	opJSLt64K
	opJSLe64X
	opJSLe64K
	opJEq32X
	opJEq32K
	opJGt32X
	opJGt32K
	opJGe32X
	opJGe32K
	opJSet32X
	opJSet32K
	opJNe32X
	opJNe32K
	opJSGt32X
	opJSGt32K
	opJSGe32X
	opJSGe32K
	opJLt32X
	opJLt32K
	opJLe32X
	opJLe32K
	opJSLt32X
	opJSLt32K
	opJSLe32X
	opJSLe32K

	opCallOpen
	opCallCall
	opCallClose
	opCallLocal // off holds the absolute target
	opExit

	opLDDW

	// Loads: dst = *(size *)(src + off); S: sign-extending.
	opLdxB
	opLdxH
	opLdxW
	opLdxDW
	opLdxSB
	opLdxSH
	opLdxSW
	// Stores of an immediate: *(size *)(dst + off) = imm.
	opStB
	opStH
	opStW
	opStDW
	// Stores of a register: *(size *)(dst + off) = src.
	opStxB
	opStxH
	opStxW
	opStxDW

	// Atomic read-modify-write on *(size *)(dst + off) with src; the
	// Fetch variants also return the old value in src.
	opAtomicAdd32
	opAtomicAdd64
	opAtomicOr32
	opAtomicOr64
	opAtomicAnd32
	opAtomicAnd64
	opAtomicXor32
	opAtomicXor64
	opAtomicFetchAdd32
	opAtomicFetchAdd64
	opAtomicFetchOr32
	opAtomicFetchOr64
	opAtomicFetchAnd32
	opAtomicFetchAnd64
	opAtomicFetchXor32
	opAtomicFetchXor64
	opAtomicXchg32
	opAtomicXchg64
	opAtomicCmpXchg32 // compares with r0, returns the old value in r0
	opAtomicCmpXchg64

	// Fused pairs (see fuse): the first slot of a common sequence runs
	// the whole sequence and skips the rest; the later slots keep their
	// own instructions for jumps that land on them.
	opMovAdd64K  // mov dst, src; add dst, imm
	opMovAnd64K  // mov dst, src; and dst, imm
	opMovLsh64K  // mov dst, src; lsh dst, imm
	opMovRsh64K  // mov dst, src; rsh dst, imm
	opMovArsh64K // mov dst, src; arsh dst, imm
	opLdAdd64X   // lddw dst, imm; add dst, src (src != dst)
	// lddw dst, imm; add dst, src; ldx aux, [dst + off] (src != dst): an
	// element of a global array, the commonest way C code reads one.
	opLdAddLdxB
	opLdAddLdxH
	opLdAddLdxW
	opLdAddLdxDW
	opZext32 // lsh dst, 32; rsh dst, 32
	opSext32 // lsh dst, 32; arsh dst, 32

	// Longer sequences of clang's output in hot loops; same rules.
	opMovZext32 // mov dst, src; lsh dst, 32; rsh dst, 32 (a u32 copy)
	opMovSext32 // mov dst, src; lsh dst, 32; arsh dst, 32 (an s32 copy)
	opMovMov    // mov dst, src; mov aux, off (argument set-up)
	// alu dst, src; shift dst, imm: table indexes and bit fields.
	opXorLsh64
	opAndRsh64

	// opHalt follows the program: a run that must stop goes there.
	opHalt
)

// insn is one pre-decoded instruction, 16 bytes.
type insn struct {
	op  op
	dst uint8
	src uint8
	aux uint8 // a fused load's destination register
	off int32 // memory offset, or the absolute target of a jump or local call
	imm int64 // sign-extended immediate (the 64-bit value for lddw)
}

// MaxInstructions is the longest program accepted, in 8-byte slots.
const MaxInstructions = 1 << 16

// maxCallDepth is the deepest bpf-to-bpf call chain, counting the entry
// function; each frame has its own 512-byte stack.
const (
	maxCallDepth = 8
	frameSize    = 512
)

// program is verified code ready to run.
type program struct {
	insns []insn
	// depth is the most frames the code can use: the longest call chain
	// of its subprograms, or maxCallDepth when it recurses.
	depth int
}

func invalidAt(i int, format string, args ...any) error {
	return fmt.Errorf("%w: instruction %d: %s", runtime.ErrInvalidCode, i, fmt.Sprintf(format, args...))
}

// aluOps maps an ALU operation to its 64-bit X op; the K op follows it.
var aluOps = map[uint8]op{
	aluADD: opAdd64X, aluSUB: opSub64X, aluMUL: opMul64X, aluDIV: opDiv64X, aluOR: opOr64X,
	aluAND: opAnd64X, aluLSH: opLsh64X, aluRSH: opRsh64X, aluMOD: opMod64X, aluXOR: opXor64X,
	aluMOV: opMov64X, aluARSH: opArsh64X,
}

// jmpOps maps a conditional jump to its 64-bit X op; the K op follows it.
var jmpOps = map[uint8]op{
	jmpJEQ: opJEq64X, jmpJGT: opJGt64X, jmpJGE: opJGe64X, jmpJSET: opJSet64X, jmpJNE: opJNe64X,
	jmpJSGT: opJSGt64X, jmpJSGE: opJSGe64X, jmpJLT: opJLt64X, jmpJLE: opJLe64X,
	jmpJSLT: opJSLt64X, jmpJSLE: opJSLe64X,
}

// The 32-bit forms sit at a fixed distance from the 64-bit ones.
const (
	alu32Delta = opAdd32X - opAdd64X
	jmp32Delta = opJEq32X - opJEq64X
)

var atomicOps = map[int32]op{
	atomicADD: opAtomicAdd32, atomicOR: opAtomicOr32, atomicAND: opAtomicAnd32, atomicXOR: opAtomicXor32,
	atomicADD | atomicFETCH: opAtomicFetchAdd32, atomicOR | atomicFETCH: opAtomicFetchOr32,
	atomicAND | atomicFETCH: opAtomicFetchAnd32, atomicXOR | atomicFETCH: opAtomicFetchXor32,
	atomicXCHG: opAtomicXchg32, atomicCMPXCHG: opAtomicCmpXchg32,
}

// compile verifies raw code and prepares it for the interpreter.
func compile(code []byte) (*program, error) {
	p, err := verify(code)
	if err != nil {
		return nil, err
	}
	p.insns = prepare(p.insns)
	return p, nil
}

// prepare fuses verified code for the interpreter and ends it with the
// halt instruction.
func prepare(insns []insn) []insn {
	fuse(insns)
	return append(insns, insn{op: opHalt})
}

// verify decodes and verifies raw little-endian eBPF code: every
// instruction known and well-formed, registers valid and r10 never
// written, jumps and calls landing on instruction starts inside their own
// subprogram, helpers limited to the guest ABI, and no subprogram falling
// off its end. What it accepts cannot make the interpreter leave the code.
func verify(code []byte) (*program, error) {
	if len(code) == 0 {
		return nil, fmt.Errorf("%w: empty program", runtime.ErrInvalidCode)
	}
	if len(code)%insnSize != 0 {
		return nil, fmt.Errorf("%w: code size %d is not a multiple of %d", runtime.ErrInvalidCode, len(code), insnSize)
	}
	n := len(code) / insnSize
	if n > MaxInstructions {
		return nil, fmt.Errorf("%w: %d instructions, the limit is %d", runtime.ErrInvalidCode, n, MaxInstructions)
	}
	p := &program{insns: make([]insn, n)}
	tail := make([]bool, n) // second slots of lddw
	for i := 0; i < n; i++ {
		if tail[i] {
			continue
		}
		raw := code[i*insnSize:]
		in, err := decodeOne(i, raw)
		if err != nil {
			return nil, err
		}
		if in.op == opLDDW {
			if i+1 >= n {
				return nil, invalidAt(i, "lddw is missing its second half")
			}
			hi := code[(i+1)*insnSize:]
			if hi[0] != 0 || hi[1] != 0 || hi[2] != 0 || hi[3] != 0 {
				return nil, invalidAt(i+1, "second half of lddw has non-zero opcode, registers or offset")
			}
			in.imm = int64(uint64(binary.LittleEndian.Uint32(raw[4:])) | uint64(binary.LittleEndian.Uint32(hi[4:]))<<32)
			tail[i+1] = true
		}
		p.insns[i] = in
	}
	if err := p.checkFlow(tail); err != nil {
		return nil, err
	}
	return p, nil
}

// decodeOne decodes the instruction at slot i; jump and call targets are
// made absolute but checked later.
func decodeOne(i int, raw []byte) (insn, error) {
	code := raw[0]
	dst, src := raw[1]&0x0f, raw[1]>>4
	off := int16(binary.LittleEndian.Uint16(raw[2:]))
	imm := int32(binary.LittleEndian.Uint32(raw[4:]))
	in := insn{dst: dst, src: src, off: int32(off), imm: int64(imm)}

	if dst >= numRegs {
		return in, invalidAt(i, "bad destination register r%d", dst)
	}
	if src >= numRegs {
		return in, invalidAt(i, "bad source register r%d", src)
	}
	writesDst := func() error {
		if dst == regFP {
			return invalidAt(i, "writes to the read-only frame pointer r10")
		}
		return nil
	}
	class := code & 0x07
	switch class {
	case classALU, classALU64:
		return decodeALU(i, code, in, writesDst)
	case classJMP, classJMP32:
		return decodeJump(i, code, in)
	case classLD:
		if code != rawLDDW {
			return in, invalidAt(i, "unsupported load opcode %#02x (legacy packet access)", code)
		}
		if src != 0 {
			return in, invalidAt(i, "lddw with pseudo source %d (maps and kernel objects do not exist here)", src)
		}
		if off != 0 {
			return in, invalidAt(i, "lddw with non-zero offset")
		}
		in.op = opLDDW
		return in, writesDst()
	case classLDX:
		if imm != 0 {
			return in, invalidAt(i, "load with non-zero immediate")
		}
		switch code {
		case classLDX | modeMEM | sizeB:
			in.op = opLdxB
		case classLDX | modeMEM | sizeH:
			in.op = opLdxH
		case classLDX | modeMEM | sizeW:
			in.op = opLdxW
		case classLDX | modeMEM | sizeDW:
			in.op = opLdxDW
		case classLDX | modeMEMSX | sizeB:
			in.op = opLdxSB
		case classLDX | modeMEMSX | sizeH:
			in.op = opLdxSH
		case classLDX | modeMEMSX | sizeW:
			in.op = opLdxSW
		default:
			return in, invalidAt(i, "unknown load opcode %#02x", code)
		}
		return in, writesDst()
	case classST:
		if src != 0 {
			return in, invalidAt(i, "immediate store with non-zero source register")
		}
		switch code {
		case classST | modeMEM | sizeB:
			in.op = opStB
		case classST | modeMEM | sizeH:
			in.op = opStH
		case classST | modeMEM | sizeW:
			in.op = opStW
		case classST | modeMEM | sizeDW:
			in.op = opStDW
		default:
			return in, invalidAt(i, "unknown store opcode %#02x", code)
		}
		return in, nil
	default: // classSTX
		switch code {
		case classSTX | modeMEM | sizeB:
			in.op = opStxB
		case classSTX | modeMEM | sizeH:
			in.op = opStxH
		case classSTX | modeMEM | sizeW:
			in.op = opStxW
		case classSTX | modeMEM | sizeDW:
			in.op = opStxDW
		case classSTX | modeATOMIC | sizeW, classSTX | modeATOMIC | sizeDW:
			base, ok := atomicOps[imm]
			if !ok {
				return in, invalidAt(i, "unknown atomic operation %#x", imm)
			}
			in.op = base
			if code&0x18 == sizeDW {
				in.op++
			}
			if imm&atomicFETCH != 0 && imm != atomicCMPXCHG && src == regFP {
				return in, invalidAt(i, "atomic fetch writes to the read-only frame pointer r10")
			}
			in.imm = 0
			return in, nil
		default:
			return in, invalidAt(i, "unknown store opcode %#02x", code)
		}
		if imm != 0 {
			return in, invalidAt(i, "register store with non-zero immediate")
		}
		return in, nil
	}
}

func decodeALU(i int, code uint8, in insn, writesDst func() error) (insn, error) {
	is64 := code&0x07 == classALU64
	fromX := code&srcX != 0
	aluOp := code & 0xf0
	if !fromX && in.src != 0 {
		return in, invalidAt(i, "ALU immediate operation with non-zero source register")
	}
	if fromX && in.imm != 0 && aluOp != aluEND {
		return in, invalidAt(i, "ALU register operation with non-zero immediate")
	}
	off := in.off
	in.off = 0
	switch aluOp {
	case aluNEG:
		if fromX || off != 0 || in.imm != 0 {
			return in, invalidAt(i, "malformed neg")
		}
		in.op = opNeg32
		if is64 {
			in.op = opNeg64
		}
		return in, writesDst()
	case aluEND:
		if off != 0 || in.src != 0 {
			return in, invalidAt(i, "malformed byte swap")
		}
		width := in.imm
		if width != 16 && width != 32 && width != 64 {
			return in, invalidAt(i, "byte swap of %d bits (want 16, 32 or 64)", width)
		}
		switch {
		case is64 && fromX:
			return in, invalidAt(i, "unknown opcode %#02x", code)
		case is64 || fromX: // bswap (ALU64) and to-big-endian both swap
			in.op = opBE16 + op(width/32) // 16, 32, 64 -> BE16, BE32, BE64
		case width == 64: // to little-endian of all 64 bits changes nothing
			in.op = opMov64X
			in.src = in.dst
		default: // to little-endian: the low bits, zero-extended
			in.op = opLE16 + op(width/32)
		}
		in.imm = 0
		return in, writesDst()
	}
	base, ok := aluOps[aluOp]
	if !ok {
		return in, invalidAt(i, "unknown ALU operation %#02x", code)
	}
	switch {
	case off == 0:
	case off == 1 && (aluOp == aluDIV || aluOp == aluMOD):
		base++ // the signed form follows the unsigned one
		base++
	case aluOp == aluMOV && fromX && (off == 8 || off == 16 || (off == 32 && is64)):
		if err := writesDst(); err != nil {
			return in, err
		}
		switch {
		case !is64 && off == 8:
			in.op = opMovSX8to32
		case !is64:
			in.op = opMovSX16to32
		case off == 8:
			in.op = opMovSX8to64
		case off == 16:
			in.op = opMovSX16to64
		default:
			in.op = opMovSX32to64
		}
		return in, nil
	default:
		return in, invalidAt(i, "ALU operation %#02x with unexpected offset %d", code, off)
	}
	in.op = base
	if !fromX {
		in.op++
	}
	if !is64 {
		in.op += alu32Delta
	}
	if !fromX {
		in = foldImmediate(in, aluOp, is64)
	}
	return in, writesDst()
}

// foldImmediate settles at load time what an immediate operand makes
// constant: shift amounts are masked as the ISA says, and division and
// modulo by a zero immediate become what the ISA defines them to be, so
// the interpreter's immediate forms never test for zero.
func foldImmediate(in insn, aluOp uint8, is64 bool) insn {
	switch aluOp {
	case aluLSH, aluRSH, aluARSH:
		if is64 {
			in.imm &= 63
		} else {
			in.imm &= 31
		}
	case aluDIV: // x / 0 = 0
		if in.imm == 0 {
			in.op = opMov32K
			if is64 {
				in.op = opMov64K
			}
		}
	case aluMOD: // x % 0 = x (the 32-bit form still zero-extends)
		if in.imm == 0 {
			in.src = in.dst
			in.op = opMov32X
			if is64 {
				in.op = opMov64X
			}
		}
	}
	return in
}

func decodeJump(i int, code uint8, in insn) (insn, error) {
	is32 := code&0x07 == classJMP32
	fromX := code&srcX != 0
	jop := code & 0xf0
	switch jop {
	case jmpJA:
		if fromX || in.dst != 0 || in.src != 0 {
			return in, invalidAt(i, "malformed ja")
		}
		if is32 { // gotol: the offset is the immediate
			if in.off != 0 {
				return in, invalidAt(i, "malformed ja")
			}
			in.off = relTarget(i, in.imm)
		} else if in.imm != 0 {
			return in, invalidAt(i, "malformed ja")
		} else {
			in.off = relTarget(i, int64(in.off))
		}
		in.op = opJA
		in.imm = 0
		return in, nil
	case jmpCALL:
		if is32 || fromX || in.dst != 0 || in.off != 0 {
			return in, invalidAt(i, "malformed call")
		}
		switch in.src {
		case callHelper:
			switch in.imm {
			case helperOpen:
				in.op = opCallOpen
			case helperCall:
				in.op = opCallCall
			case helperClose:
				in.op = opCallClose
			default:
				return in, invalidAt(i, "call to unknown helper %d (the guest ABI has 1 open, 2 call, 3 close)", in.imm)
			}
		case callLocal:
			in.op = opCallLocal
			in.off = relTarget(i, in.imm)
			in.src = 0
		default:
			return in, invalidAt(i, "call with unsupported source %d (kernel functions do not exist here)", in.src)
		}
		in.imm = 0
		return in, nil
	case jmpEXIT:
		if is32 || fromX || in.dst != 0 || in.src != 0 || in.off != 0 || in.imm != 0 {
			return in, invalidAt(i, "malformed exit")
		}
		in.op = opExit
		return in, nil
	}
	base, ok := jmpOps[jop]
	if !ok {
		return in, invalidAt(i, "unknown jump opcode %#02x", code)
	}
	if fromX && in.imm != 0 {
		return in, invalidAt(i, "register jump with non-zero immediate")
	}
	if !fromX && in.src != 0 {
		return in, invalidAt(i, "immediate jump with non-zero source register")
	}
	in.op = base
	if !fromX {
		in.op++
	}
	if is32 {
		in.op += jmp32Delta
	}
	in.off = relTarget(i, int64(in.off))
	return in, nil
}

// relTarget is the absolute index of a jump or call at i with relative
// offset d, or -1 (refused later) when it does not even fit an int32.
func relTarget(i int, d int64) int32 {
	t := int64(i) + 1 + d
	if t < 0 || t > MaxInstructions {
		return -1
	}
	return int32(t)
}

// movFused maps an ALU immediate op to its fused "mov dst, src; op" form.
var movFused = map[op]op{
	opAdd64K: opMovAdd64K, opAnd64K: opMovAnd64K, opLsh64K: opMovLsh64K,
	opRsh64K: opMovRsh64K, opArsh64K: opMovArsh64K,
}

// aluShiftFused maps an ALU register op followed by a shift by an
// immediate on the same register to its fused op.
// Only the two pairs of the CRC-style table lookup are fused: each case
// added to the interpreter's switch risks the register allocator spilling
// pc at every dispatch (checked with go tool objdump), which costs more
// than a fused pair saves.
var aluShiftFused = map[[2]op]op{{opXor64X, opLsh64K}: opXorLsh64, {opAnd64X, opRsh64K}: opAndRsh64}

// isLdx reports whether o is a zero-extending load.
func isLdx(o op) bool { return o >= opLdxB && o <= opLdxDW }

// fuse rewrites the first instruction of sequences that clang emits all
// the time (BPF has two-operand ALU instructions, so it copies first; v1
// code widens 32-bit values with shift pairs; calls are preceded by
// argument copies) into one operation. The interpreter then dispatches once per
// sequence. It only touches the first slot, so a jump to a later slot
// still runs the original instruction; the fused operation runs straight
// on, so the budget accounting (by instruction distance) is unchanged.
// Verified code never ends a function with these, so the later slots
// exist; the sequences are matched on the original code (slots after i
// are not rewritten yet).
func fuse(insns []insn) {
	at := func(i int) insn {
		if i < len(insns) {
			return insns[i]
		}
		return insn{}
	}
	isShift32 := func(in insn, o op, dst uint8) bool { return in.op == o && in.dst == dst && in.imm == 32 }
	for i := 0; i+1 < len(insns); i++ {
		a, b, c := insns[i], insns[i+1], at(i+2)
		switch {
		case a.op == opMov64X && isShift32(b, opLsh64K, a.dst) && isShift32(c, opRsh64K, a.dst):
			insns[i] = insn{op: opMovZext32, dst: a.dst, src: a.src}
		case a.op == opMov64X && isShift32(b, opLsh64K, a.dst) && isShift32(c, opArsh64K, a.dst):
			insns[i] = insn{op: opMovSext32, dst: a.dst, src: a.src}
		case a.op == opMov64X && b.dst == a.dst && movFused[b.op] != 0:
			insns[i] = insn{op: movFused[b.op], dst: a.dst, src: a.src, imm: b.imm}
		case a.op == opMov64X && b.op == opMov64X:
			insns[i] = insn{op: opMovMov, dst: a.dst, src: a.src, aux: b.dst, off: int32(b.src)}
		case isShift32(a, opLsh64K, a.dst) && isShift32(b, opRsh64K, a.dst):
			insns[i] = insn{op: opZext32, dst: a.dst}
		case isShift32(a, opLsh64K, a.dst) && isShift32(b, opArsh64K, a.dst):
			insns[i] = insn{op: opSext32, dst: a.dst}
		case aluShiftFused[[2]op{a.op, b.op}] != 0 && b.dst == a.dst:
			insns[i] = insn{op: aluShiftFused[[2]op{a.op, b.op}], dst: a.dst, src: a.src, imm: b.imm}
		case a.op == opLDDW && c.op == opAdd64X && c.dst == a.dst && c.src != a.dst:
			insns[i] = insn{op: opLdAdd64X, dst: a.dst, src: c.src, imm: a.imm}
			if d := at(i + 3); d.src == a.dst && isLdx(d.op) {
				insns[i] = insn{op: opLdAddLdxB + (d.op - opLdxB), dst: a.dst, src: c.src, aux: d.dst, off: d.off, imm: a.imm}
			}
		}
	}
}

// isJump reports whether o is a jump (its off is a target).
func isJump(o op) bool { return o >= opJA && o <= opJSLe32K }

// endsFlow reports whether execution never falls through o.
func endsFlow(o op) bool { return o == opExit || o == opJA }

// subprogEnd is where subprogram k, starting at starts[k], ends.
func subprogEnd(p *program, starts []int, k int) int {
	if k+1 < len(starts) {
		return starts[k+1]
	}
	return len(p.insns)
}

// checkFlow checks every jump and call target, splits the code into
// subprograms at call targets (as the kernel does), checks each ends in
// exit or ja and no jump leaves it, and works out the call depth.
func (p *program) checkFlow(tail []bool) error {
	n := len(p.insns)
	target := func(i int, t int32, what string) error {
		if t < 0 || int(t) >= n {
			return invalidAt(i, "%s to %d is outside the program (0..%d)", what, t, n-1)
		}
		if tail[t] {
			return invalidAt(i, "%s to %d lands in the middle of an lddw", what, t)
		}
		return nil
	}
	starts := []int{0}
	for i, in := range p.insns {
		switch {
		case tail[i]:
		case isJump(in.op):
			if err := target(i, in.off, "jump"); err != nil {
				return err
			}
		case in.op == opCallLocal:
			if err := target(i, in.off, "call"); err != nil {
				return err
			}
			starts = append(starts, int(in.off))
		}
	}
	slices.Sort(starts)
	starts = slices.Compact(starts)

	// sub[i] is the subprogram holding instruction i.
	sub := make([]int32, n)
	for k, s := range starts {
		e := subprogEnd(p, starts, k)
		for i := s; i < e; i++ {
			sub[i] = int32(k)
		}
		last := e - 1
		if tail[last] {
			return invalidAt(last-1, "program falls off the end of its function after lddw")
		}
		if !endsFlow(p.insns[last].op) {
			return invalidAt(last, "program falls off the end of its function (the last instruction must be exit or ja)")
		}
	}
	callees := make([][]int, len(starts))
	for i, in := range p.insns {
		switch {
		case tail[i]:
		case isJump(in.op) && sub[in.off] != sub[i]:
			return invalidAt(i, "jump to %d leaves its function", in.off)
		case in.op == opCallLocal:
			callees[sub[i]] = append(callees[sub[i]], int(sub[in.off]))
		}
	}
	p.depth = callDepth(callees)
	return nil
}

// callDepth is the number of frames of the longest call chain from
// subprogram 0, or maxCallDepth when a chain recurses or is longer; the
// interpreter enforces the bound at run time either way.
func callDepth(callees [][]int) int {
	const (
		unvisited = 0
		active    = -1
	)
	depth := make([]int, len(callees)) // frames from here down; active while on the path
	var visit func(k int) int
	visit = func(k int) int {
		switch depth[k] {
		case active:
			return maxCallDepth // recursion
		case unvisited:
		default:
			return depth[k]
		}
		depth[k] = active
		d := 1
		for _, c := range callees[k] {
			d = max(d, min(visit(c)+1, maxCallDepth))
		}
		depth[k] = d
		return d
	}
	return visit(0)
}
