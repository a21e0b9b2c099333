//go:build linux && amd64

package ebpf

import "fmt"

// Guest registers r0-r9 live in host registers for the whole run. r10
// (read-only) is not held: R9 holds its host address, st.regs[10] its
// guest value. R12 points at the jitState, R10 and R11 are scratch.
// RBP and RSP are left alone, so Go's frame-pointer unwinding never sees
// a guest value.
var guestReg = [10]int{rAX, rDI, rSI, rDX, rCX, r8, rBX, r13, r14, r15}

const (
	hostFP = r9
	stReg  = r12
	tmp    = r10
	addrR  = r11
)

// jitCall runs code (the entry stub) with R12 = st (jit_amd64.s).
//
//go:noescape
func jitCall(code uintptr, st *jitState)

// flushCode: x86 keeps instruction fetch coherent with stores.
func flushCode([]byte) {}

type jitCompiler struct {
	jitBase
	a x86
}

var _ arch = (*jitCompiler)(nil)

func newJITCompiler(insns []insn, stackLen, dataLen, roLen uint32) *jitCompiler {
	c := &jitCompiler{jitBase: jitBase{insns: insns, stackLen: stackLen, dataLen: dataLen, roLen: roLen}}
	c.asm = &c.a
	return c
}

// compile returns the code and the offset of instruction 0.
func (c *jitCompiler) compile() ([]byte, int, error) { return c.generate(c) }

// prologue: the entry loads the guest registers and goes on where the
// last exit left; the exit stub stores them back and returns to jitCall.
func (c *jitCompiler) prologue() {
	a := &c.a
	for r, h := range guestReg {
		a.load(8, h, stReg, offReg(uint8(r)))
	}
	a.load(8, hostFP, stReg, offHostFP)
	a.jmpMem(stReg, offResume)

	a.bind(c.exitStub)
	for r, h := range guestReg {
		a.store(8, h, stReg, offReg(uint8(r)))
	}
	a.store(8, hostFP, stReg, offHostFP)
	a.ret()
}

// exitTo leaves the generated code with reason why for instruction pc;
// with hasResume, the next jitCall goes on at resume.
func (c *jitCompiler) exitTo(why uint32, pc int, resume label, hasResume bool) {
	a := &c.a
	a.storeImm(4, stReg, offExit, int32(why))
	a.storeImm(4, stReg, offArg, int32(pc))
	if hasResume {
		a.leaRIP(addrR, resume)
		a.store(8, addrR, stReg, offResume)
	}
	a.jmp(c.exitStub)
}

// src returns the host register holding guest register r for reading:
// r10 is loaded into R11 first.
func (c *jitCompiler) src(r uint8) int {
	if r == regFP {
		c.a.load(8, addrR, stReg, offReg(regFP))
		return addrR
	}
	return guestReg[r]
}

// charge takes n from the fuel; when it runs out the run exits to poll
// the budget and then goes on at target.
func (c *jitCompiler) charge(target, n int) {
	a := &c.a
	a.aluMemImm(xSub, stReg, offFuel, int32(n))
	t := c.at[target]
	a.jcc(ccL, c.stub(func() { c.exitTo(exitPoll, target, t, true) }))
}

// jumpTo jumps from instruction pc to target; backward jumps are budget
// checkpoints charging the distance (docs/notes/ebpf.md, "Fuel").
func (c *jitCompiler) jumpTo(pc, target int) {
	if target <= pc {
		c.charge(target, pc-target+1)
	}
	c.a.jmp(c.at[target])
}

var jumpCC = map[op]byte{
	opJEq64X: ccE, opJGt64X: ccA, opJGe64X: ccAE, opJSet64X: ccNE, opJNe64X: ccNE,
	opJSGt64X: ccG, opJSGe64X: ccGE, opJLt64X: ccB, opJLe64X: ccBE, opJSLt64X: ccL, opJSLe64X: ccLE,
}

// condJump compiles a conditional jump (64 or 32-bit, register or
// immediate).
func (c *jitCompiler) condJump(i int, in insn) {
	a := &c.a
	base, w, fromK := jumpForm(in.op)
	cc := jumpCC[base]
	dst := c.src(in.dst)
	isSet := base == opJSet64X
	switch {
	case fromK && isSet:
		a.testImm(w, dst, int32(in.imm))
	case fromK:
		a.aluImm(w, xCmp, dst, int32(in.imm))
	default:
		s := tmp
		if in.src == regFP {
			a.load(8, tmp, stReg, offReg(regFP))
		} else {
			s = guestReg[in.src]
		}
		if isSet {
			a.test(w, dst, s)
		} else {
			a.alu(w, xCmp, dst, s)
		}
	}
	t := int(in.off)
	if t > i {
		a.jcc(cc, c.at[t])
		return
	}
	skip := a.newLabel()
	a.jcc(cc^1, skip)
	c.jumpTo(i, t)
	a.bind(skip)
}

// jitALU maps an ALU operation's register form to its x86 opcodes.
var jitALU = map[op]aluOp{opAdd64X: xAdd, opSub64X: xSub, opOr64X: xOr, opAnd64X: xAnd, opXor64X: xXor}

var shiftExt = map[op]int{opLsh64X: 4, opRsh64X: 5, opArsh64X: 7}

// neg negates dst.
func (c *jitCompiler) neg(in insn) { c.a.f7(in.op == opNeg64, 3, guestReg[in.dst]) }

// lddw loads a 64-bit immediate.
func (c *jitCompiler) lddw(in insn) { c.a.movImm(guestReg[in.dst], uint64(in.imm)) }

// translates reports whether o has an x86 translation; the rest (signed
// division, for x86 traps on INT_MIN / -1, and atomics) steps through the
// interpreter.
func (c *jitCompiler) translates(o op) bool { return !isSignedDiv(o) && !isAtomic(o) }

func isSignedDiv(o op) bool {
	switch o {
	case opSDiv64X, opSDiv64K, opSMod64X, opSMod64K, opSDiv32X, opSDiv32K, opSMod32X, opSMod32K:
		return true
	}
	return false
}

// alu compiles the ALU operations with a direct x86 form.
func (c *jitCompiler) alu(i int, in insn) error {
	a := &c.a
	o, w, fromK := aluForm(in.op)
	dst := guestReg[in.dst]
	imm := int32(in.imm)
	switch o {
	case opAdd64X, opSub64X, opOr64X, opAnd64X, opXor64X:
		if fromK {
			a.aluImm(w, jitALU[o], dst, imm)
		} else {
			a.alu(w, jitALU[o], dst, c.src(in.src))
		}
	case opMov64X:
		switch {
		case fromK && w:
			a.movImm(dst, uint64(in.imm))
		case fromK:
			a.movImm(dst, uint64(uint32(imm)))
		default:
			a.mov(w, dst, c.src(in.src))
		}
	case opMul64X:
		if fromK {
			a.imulImm(w, dst, imm)
		} else {
			a.imul(w, dst, c.src(in.src))
		}
	case opLsh64X, opRsh64X, opArsh64X:
		ext := shiftExt[o]
		if fromK {
			if imm != 0 {
				a.shiftImm(w, ext, dst, uint8(imm))
			} else if !w {
				a.mov(false, dst, dst) // a 32-bit op still zero-extends
			}
			return nil
		}
		c.shiftReg(w, ext, dst, in.src)
	case opDiv64X, opMod64X:
		c.divide(w, o == opMod64X, in, fromK)
	default:
		return fmt.Errorf("ebpf: jit: no ALU form for op %d at %d", in.op, i)
	}
	return nil
}

// movsx sign-extends the low 8, 16 or 32 bits of src into dst (64-bit
// forms; the 32-bit forms then zero-extend from bit 31).
func (c *jitCompiler) movsx(in insn) {
	a := &c.a
	dst, src := guestReg[in.dst], c.src(in.src)
	switch in.op {
	case opMovSX8to64:
		a.rex(true, dst, src, src >= 4 && src < 8)
		a.b = append(a.b, 0x0f, 0xbe, 0xc0|byte(dst&7)<<3|byte(src&7))
	case opMovSX16to64:
		a.rr(true, []byte{0x0f, 0xbf}, dst, src)
	case opMovSX32to64:
		a.rr(true, []byte{0x63}, dst, src)
	case opMovSX8to32:
		a.rex(false, dst, src, src >= 4 && src < 8)
		a.b = append(a.b, 0x0f, 0xbe, 0xc0|byte(dst&7)<<3|byte(src&7))
	default: // opMovSX16to32
		a.rr(false, []byte{0x0f, 0xbf}, dst, src)
	}
}

// byteSwap: to little-endian truncates (guest memory is little-endian),
// to big-endian swaps; both zero-extend.
func (c *jitCompiler) byteSwap(in insn) {
	a := &c.a
	dst := guestReg[in.dst]
	switch in.op {
	case opLE16:
		a.rr(false, []byte{0x0f, 0xb7}, dst, dst) // movzx r32, r16
	case opLE32:
		a.mov(false, dst, dst)
	case opBE16:
		a.b = append(a.b, 0x66) // rol r16, 8
		a.shiftImm(false, 0, dst, 8)
		a.rr(false, []byte{0x0f, 0xb7}, dst, dst)
	case opBE32, opBE64:
		a.rex(in.op == opBE64, 0, dst, false)
		a.b = append(a.b, 0x0f, 0xc8+byte(dst&7))
	}
}

// shiftReg shifts dst by guest register s; x86 takes the count in CL
// (guest r4) and masks it as eBPF does.
func (c *jitCompiler) shiftReg(w bool, ext, dst int, s uint8) {
	a := &c.a
	switch {
	case s != regFP && guestReg[s] == rCX:
		a.shiftCL(w, ext, dst)
	case dst == rCX:
		a.mov(true, tmp, rCX)
		a.mov(true, rCX, c.src(s))
		a.shiftCL(w, ext, tmp)
		a.mov(true, rCX, tmp)
	default:
		a.mov(true, tmp, rCX)
		a.mov(true, rCX, c.src(s))
		a.shiftCL(w, ext, dst)
		a.mov(true, rCX, tmp)
	}
	if !w {
		a.mov(false, dst, dst) // a zero count leaves the upper half otherwise
	}
}

// divide compiles unsigned division and modulo. x86 divides RDX:RAX
// (guest r3 and r0), so both are parked in st.save around it. A zero
// register divisor gives 0 (div) or leaves dst (mod), as eBPF says;
// immediates of zero were folded by the decoder.
func (c *jitCompiler) divide(w, mod bool, in insn, fromK bool) {
	a := &c.a
	dst := guestReg[in.dst]
	if fromK {
		if w {
			a.movImm(addrR, uint64(in.imm))
		} else {
			a.movImm(addrR, uint64(uint32(in.imm)))
		}
	} else {
		a.mov(true, addrR, c.src(in.src))
	}
	a.store(8, rAX, stReg, offSave)
	a.store(8, rDX, stReg, offSave+8)
	a.mov(true, rAX, dst)
	zero, done := a.newLabel(), a.newLabel()
	if !fromK {
		a.test(w, addrR, addrR)
		a.jcc(ccE, zero)
	}
	a.alu(false, xXor, rDX, rDX)
	a.f7(w, 6, addrR)
	if mod {
		a.mov(true, tmp, rDX)
	} else {
		a.mov(true, tmp, rAX)
	}
	a.jmp(done)
	a.bind(zero)
	if mod {
		a.mov(w, tmp, rAX) // 32-bit: zero-extends
	} else {
		a.alu(false, xXor, tmp, tmp)
	}
	a.bind(done)
	a.load(8, rAX, stReg, offSave)
	a.load(8, rDX, stReg, offSave+8)
	a.mov(true, dst, tmp)
}

// mem compiles a load or store of size bytes at [base + off]. Accesses
// through r10 that stay within the current frame need no check; any
// other address is checked against the stack and the data region (in
// the order the hints suggest, the second out of line), whose first
// roLen bytes refuse stores.
func (c *jitCompiler) mem(i int, in insn, size int, store, fromImm bool) {
	a := &c.a
	base := in.src
	if store {
		base = in.dst
	}
	signed := in.op >= opLdxSB && in.op <= opLdxSW
	access := func(host int, disp int32) {
		switch {
		case signed:
			a.loadSigned(size, guestReg[in.dst], host, disp)
		case !store:
			a.load(size, guestReg[in.dst], host, disp)
		case fromImm:
			a.storeImm(size, host, disp, int32(in.imm))
		default:
			c.storeReg(size, in.src, host, disp)
		}
	}
	if base == regFP && in.off >= -frameSize && int(in.off)+size <= 0 {
		access(hostFP, in.off)
		return
	}
	if base == regFP {
		a.load(8, addrR, stReg, offReg(regFP))
		a.aluImm(true, xAdd, addrR, in.off)
	} else {
		a.lea(addrR, guestReg[base], in.off)
	}
	// addrR: the guest address, 64 bits (the interpreter's p).
	back := a.newLabel()
	fault := c.stub(func() {
		a.store(8, addrR, stReg, offAddr)
		c.exitTo(exitMem, i, 0, false)
	})
	stackLo := int32(StackTop - c.stackLen)
	stackCheck := func(miss label) {
		a.lea(tmp, addrR, -stackLo)
		a.aluImm(true, xCmp, tmp, int32(c.stackLen)-int32(size))
		a.jcc(ccA, miss)
		a.aluRegMem(xAdd, tmp, stReg, offStack)
		access(tmp, 0)
	}
	lo, n := uint32(0), c.dataLen // the part of the data region allowed
	if store {
		lo = c.roLen
	}
	dataCheck := func(miss label) {
		if n < lo+uint32(size) {
			a.jmp(miss)
			return
		}
		a.lea(tmp, addrR, -int32(DataBase+lo))
		a.aluImm(true, xCmp, tmp, int32(n-lo)-int32(size))
		a.jcc(ccA, miss)
		a.aluRegMem(xAdd, tmp, stReg, offData)
		access(tmp, int32(lo))
	}
	first, second := stackCheck, dataCheck
	if c.hints.data(base) && base != regFP && n >= lo+uint32(size) {
		first, second = dataCheck, stackCheck
	}
	first(c.stub(func() {
		second(fault)
		a.jmp(back)
	}))
	a.bind(back)
}

// storeReg stores guest register s; r10's value is in memory, so it is
// staged through a guest register parked in st.save.
func (c *jitCompiler) storeReg(size int, s uint8, host int, disp int32) {
	a := &c.a
	if s != regFP {
		a.store(size, guestReg[s], host, disp)
		return
	}
	a.store(8, rAX, stReg, offSave)
	a.load(8, rAX, stReg, offReg(regFP))
	a.store(size, rAX, host, disp)
	a.load(8, rAX, stReg, offSave)
}

// frameAddr points addrR at st.frames[depth].
func (c *jitCompiler) frameAddr() {
	a := &c.a
	a.load(8, addrR, stReg, offDepth)
	a.shiftImm(true, 4, addrR, 6) // 64-byte frames
	a.alu(true, xAdd, addrR, stReg)
}

// callLocal compiles a bpf-to-bpf call: r6-r9, the return address and
// index saved in st.frames, r10 one frame down; a checkpoint.
func (c *jitCompiler) callLocal(i int, in insn) {
	a := &c.a
	frames := int32(c.stackLen / frameSize)
	a.aluMemImm(xCmp, stReg, offDepth, frames-1)
	a.jcc(ccAE, c.stub(func() { c.exitTo(exitDepth, i, 0, false) }))
	c.frameAddr()
	for k, r := range []int{rBX, r13, r14, r15} {
		a.store(8, r, addrR, offFrames+16+8*int32(k))
	}
	ret := c.at[i+1]
	a.leaRIP(tmp, ret)
	a.store(8, tmp, addrR, offFrames)
	a.storeImm(8, addrR, offFrames+8, int32(i+1))
	a.aluMemImm(xAdd, stReg, offDepth, 1)
	a.aluImm(true, xSub, hostFP, frameSize)
	a.aluMemImm(xSub, stReg, offReg(regFP), frameSize)
	t := int(in.off)
	c.charge(t, max(i-t+1, 1))
	a.jmp(c.at[t])
}

// exit compiles exit: the end of the run at depth 0, else a return to
// the caller's frame, a checkpoint charging the distance back.
func (c *jitCompiler) exit(i int) {
	a := &c.a
	a.aluMemImm(xCmp, stReg, offDepth, 0)
	a.jcc(ccE, c.stub(func() { c.exitTo(exitDone, i, 0, false) }))
	a.aluMemImm(xSub, stReg, offDepth, 1)
	c.frameAddr()
	for k, r := range []int{rBX, r13, r14, r15} {
		a.load(8, r, addrR, offFrames+16+8*int32(k))
	}
	a.aluImm(true, xAdd, hostFP, frameSize)
	a.aluMemImm(xAdd, stReg, offReg(regFP), frameSize)
	// fuel -= max(i+1-ret, 1)
	a.movImm(tmp, uint64(i+1))
	a.rm(true, []byte{0x2b}, tmp, addrR, offFrames+8, false) // sub tmp, [ret index]
	pos := a.newLabel()
	a.jcc(ccG, pos)
	a.movImm(tmp, 1)
	a.bind(pos)
	a.rm(true, []byte{0x29}, tmp, stReg, offFuel, false) // sub [fuel], tmp
	a.load(8, tmp, addrR, offFrames)
	poll := c.stub(func() {
		a.store(8, tmp, stReg, offResume)
		a.storeImm(4, stReg, offExit, exitPoll)
		a.storeImm(4, stReg, offArg, int32(i))
		a.jmp(c.exitStub)
	})
	a.jcc(ccL, poll)
	a.jmpReg(tmp)
}
