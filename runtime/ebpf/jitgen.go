//go:build linux && (amd64 || arm64)

package ebpf

import "fmt"

// jitCompile translates verified, unfused instructions to this
// machine's code (newJITCompiler is the architecture's generator).
func jitCompile(insns []insn, stackLen, dataLen, roLen uint32) (*jitCode, error) {
	code, start, err := newJITCompiler(insns, stackLen, dataLen, roLen).compile()
	if err != nil {
		return nil, err
	}
	return mapCode(code, start)
}

// label is a position in generated code, bound once, referenced by
// branches before or after it is bound.
type label int

// labelTable holds the code offsets of an assembler's labels.
type labelTable struct {
	labels []int // code offset per label, -1 until bound
}

func (t *labelTable) newLabel() label {
	t.labels = append(t.labels, -1)
	return label(len(t.labels) - 1)
}

// assembler is what the shared driver needs of an architecture's
// assembler.
type assembler interface {
	newLabel() label
	bind(label)
	link() error
	code() []byte
}

// jitBase is the architecture-independent half of a code generator: the
// program, its layout, a label per instruction, the out-of-line stubs and
// the data-pointer hints.
type jitBase struct {
	asm                      assembler
	insns                    []insn
	stackLen, dataLen, roLen uint32
	at                       []label // label of each instruction (and one past the end)
	exitStub                 label
	stubs                    []func() // out-of-line code, emitted after the body
	hints                    dataHints
}

// arch is an architecture's half of a code generator: how it translates
// each kind of instruction.
type arch interface {
	prologue() // the entry at offset 0, then the exit stub at exitStub
	translates(o op) bool
	alu(i int, in insn) error
	neg(in insn)
	movsx(in insn)
	byteSwap(in insn)
	lddw(in insn)
	jumpTo(i, target int)
	condJump(i int, in insn)
	mem(i int, in insn, size int, store, fromImm bool)
	exitTo(why uint32, pc int, resume label, hasResume bool)
	callLocal(i int, in insn)
	exit(i int)
}

// generate emits g's prologue, then each instruction, then the stubs, and
// links. It returns the code and the offset of instruction 0.
func (c *jitBase) generate(g arch) ([]byte, int, error) {
	a := c.asm
	c.at = make([]label, len(c.insns)+1)
	for i := range c.at {
		c.at[i] = a.newLabel()
	}
	c.exitStub = a.newLabel()
	g.prologue()
	start := len(a.code())
	c.hints = newDataHints(c.insns, c.dataLen)
	for i := range c.insns {
		a.bind(c.at[i])
		c.hints.at(i)
		if err := c.insn(g, i); err != nil {
			return nil, 0, err
		}
		c.hints.after(c.insns[i])
		if len(a.code()) > MaxMachineCode {
			return nil, 0, errMachineCode
		}
	}
	a.bind(c.at[len(c.insns)])
	for k := 0; k < len(c.stubs); k++ { // stubs may add stubs
		c.stubs[k]()
		if len(a.code()) > MaxMachineCode {
			return nil, 0, errMachineCode
		}
	}
	if err := a.link(); err != nil {
		return nil, 0, err
	}
	return a.code(), start, nil
}

// insn translates instruction i with g.
func (c *jitBase) insn(g arch, i int) error {
	in := c.insns[i]
	o := in.op
	switch {
	case o == opInvalid: // second slot of lddw
	case !g.translates(o):
		// Rare in hot code: run by the interpreter's own code for one
		// instruction.
		g.exitTo(exitStep, i, c.at[i+1], true)
	case o == opNeg64 || o == opNeg32:
		g.neg(in)
	case o >= opMovSX8to64 && o <= opMovSX32to64, o == opMovSX8to32 || o == opMovSX16to32:
		g.movsx(in)
	case o >= opAdd64X && o <= opArsh32K:
		return g.alu(i, in)
	case o >= opLE16 && o <= opBE64:
		g.byteSwap(in)
	case o == opJA:
		g.jumpTo(i, int(in.off))
	case o >= opJEq64X && o <= opJSLe32K:
		g.condJump(i, in)
	case o == opLDDW:
		g.lddw(in)
	case o >= opLdxB && o <= opLdxDW:
		g.mem(i, in, 1<<(o-opLdxB), false, false)
	case o >= opLdxSB && o <= opLdxSW:
		g.mem(i, in, 1<<(o-opLdxSB), false, false)
	case o >= opStB && o <= opStDW:
		g.mem(i, in, 1<<(o-opStB), true, true)
	case o >= opStxB && o <= opStxDW:
		g.mem(i, in, 1<<(o-opStxB), true, false)
	case o == opCallOpen || o == opCallCall || o == opCallClose:
		g.exitTo(exitOpen+uint32(o-opCallOpen), i, c.at[i+1], true)
	case o == opCallLocal:
		g.callLocal(i, in)
	case o == opExit:
		g.exit(i)
	default:
		return fmt.Errorf("ebpf: jit: no translation for op %d at %d", o, i)
	}
	return nil
}

// isAtomic reports whether o is an atomic read-modify-write.
func isAtomic(o op) bool { return o >= opAtomicAdd32 && o <= opAtomicCmpXchg64 }

// stub emits f out of line and returns its label.
func (c *jitBase) stub(f func()) label {
	l := c.asm.newLabel()
	c.stubs = append(c.stubs, func() { c.asm.bind(l); f() })
	return l
}

// jumpForm splits a conditional jump into its 64-bit register form, its
// width and whether the operand is the immediate.
func jumpForm(o op) (base op, w, fromK bool) {
	base, w = o, true
	if base >= opJEq32X {
		base -= jmp32Delta
		w = false
	}
	if (base-opJEq64X)%2 == 1 {
		base--
		fromK = true
	}
	return base, w, fromK
}

// aluForm splits an ALU operation the same way.
func aluForm(o op) (base op, w, fromK bool) {
	base, w = o, true
	if base >= opAdd32X {
		base -= alu32Delta
		w = false
	}
	switch base {
	case opAdd64K, opSub64K, opMul64K, opDiv64K, opSDiv64K, opOr64K, opAnd64K, opLsh64K, opRsh64K,
		opMod64K, opSMod64K, opXor64K, opMov64K, opArsh64K:
		base--
		fromK = true
	}
	return base, w, fromK
}

// dataHints follows, along the straight path through the code, which
// registers were loaded with an address in the data region (lddw) and
// only moved by adds since. A code generator checks accesses through them
// against the data region first: it only orders two checks that are both
// made, so a wrong hint costs a branch, never safety.
type dataHints struct {
	dataLen uint32
	ptr     [numRegs]bool
	targets []bool // instructions a jump, call or return lands on
}

func newDataHints(insns []insn, dataLen uint32) dataHints {
	t := make([]bool, len(insns)+1)
	for i, in := range insns {
		if in.op >= opJA && in.op <= opJSLe32K || in.op == opCallLocal {
			t[in.off] = true
		}
		if in.op == opCallLocal {
			t[i+1] = true
		}
	}
	return dataHints{dataLen: dataLen, targets: t}
}

// at is called before instruction i: what was known ends where other
// paths join.
func (h *dataHints) at(i int) {
	if h.targets[i] {
		h.ptr = [numRegs]bool{}
	}
}

// after updates the hints after in.
func (h *dataHints) after(in insn) {
	switch {
	case in.op == opLDDW:
		h.ptr[in.dst] = uint64(in.imm)-DataBase < uint64(h.dataLen)
	case in.op == opAdd64X || in.op == opAdd64K || in.op == opSub64K:
		// an offset into the same object
	case in.op == opMov64X:
		h.ptr[in.dst] = h.ptr[in.src]
	case in.op >= opCallOpen && in.op <= opCallLocal:
		h.ptr = [numRegs]bool{}
	case in.op >= opAdd64X && in.op <= opBE64, in.op >= opLdxB && in.op <= opLdxSW:
		h.ptr[in.dst] = false // (atomic fetches are not followed)
	}
}

// data reports whether accesses through r should check data first.
func (h *dataHints) data(r uint8) bool { return r < numRegs && h.ptr[r] }
