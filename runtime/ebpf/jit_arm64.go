//go:build linux && arm64

package ebpf

import (
	"fmt"
	"unsafe"
)

// Guest registers r0-r9 live in X0-X9 for the whole run. r10 is not held:
// X10 holds its host address, its guest value is st.regs[10]. X11 points
// at the jitState; X14 holds the stack's lowest guest address, X15 and X16
// the host addresses of the stack and the data; X12, X13 and X17 are
// scratch. X18 and up (the platform register, Go's closure context,
// scratch, g, frame pointer and link register) are never touched.
const (
	hostFP   = 10
	stReg    = 11
	tmp      = 12
	addrR    = 13
	stackLoR = 14
	stackR   = 15
	dataR    = 16
	tmp2     = 17
)

// jitCall runs code (the entry stub) with X11 = st (jit_arm64.s).
//
//go:noescape
func jitCall(code uintptr, st *jitState)

// Cache maintenance (jit_arm64.s): AArch64 does not keep instruction
// fetch coherent with stores, so new code is cleaned to the point of
// unification and the instruction cache invalidated before it runs.
func ctrEL0() uint64
func dcCVAU(addr uintptr)
func icIVAU(addr uintptr)
func dsbISH()
func isb()

// flushCode makes the code in b visible to instruction fetch.
func flushCode(b []byte) {
	if len(b) == 0 {
		return
	}
	ctr := ctrEL0()
	dline := uintptr(4) << (ctr >> 16 & 15)
	iline := uintptr(4) << (ctr & 15)
	start := uintptr(unsafe.Pointer(&b[0]))
	end := start + uintptr(len(b))
	for p := start &^ (dline - 1); p < end; p += dline {
		dcCVAU(p)
	}
	dsbISH()
	for p := start &^ (iline - 1); p < end; p += iline {
		icIVAU(p)
	}
	dsbISH()
	isb()
}

type jitCompiler struct {
	jitBase
	a a64
}

var _ arch = (*jitCompiler)(nil)

func newJITCompiler(insns []insn, stackLen, dataLen, roLen uint32) *jitCompiler {
	c := &jitCompiler{jitBase: jitBase{insns: insns, stackLen: stackLen, dataLen: dataLen, roLen: roLen}}
	c.asm = &c.a
	return c
}

// compile returns the code and the offset of instruction 0.
func (c *jitCompiler) compile() ([]byte, int, error) { return c.generate(c) }

// prologue: the entry loads the guest registers and the memory bases and
// goes on where the last exit left; the exit stub stores them back and
// returns to jitCall.
func (c *jitCompiler) prologue() {
	a := &c.a
	for r := range 10 {
		a.ldrOff(r, stReg, offReg(uint8(r)))
	}
	a.ldrOff(hostFP, stReg, offHostFP)
	a.ldrOff(stackR, stReg, offStack)
	a.ldrOff(dataR, stReg, offData)
	a.movImm(stackLoR, uint64(StackTop-c.stackLen))
	a.ldrOff(tmp, stReg, offResume)
	a.br(tmp)

	a.bind(c.exitStub)
	for r := range 10 {
		a.strOff(r, stReg, offReg(uint8(r)))
	}
	a.strOff(hostFP, stReg, offHostFP)
	a.ret()
}

// exitTo leaves the generated code with reason why for instruction pc;
// with hasResume, the next jitCall goes on at resume.
func (c *jitCompiler) exitTo(why uint32, pc int, resume label, hasResume bool) {
	a := &c.a
	a.movImm(tmp, uint64(why))
	a.strOff32(tmp, stReg, offExit)
	a.movImm(tmp, uint64(pc))
	a.strOff32(tmp, stReg, offArg)
	if hasResume {
		a.adr(tmp, resume)
		a.strOff(tmp, stReg, offResume)
	}
	a.jmp(c.exitStub)
}

// src returns the register holding guest register r for reading: r10 is
// loaded into X17 first.
func (c *jitCompiler) src(r uint8) int {
	if r == regFP {
		c.a.ldrOff(tmp2, stReg, offReg(regFP))
		return tmp2
	}
	return int(r)
}

// subsImm: rd = rn - n, setting the flags (n >= 0).
func (c *jitCompiler) subsImm(rd, rn int, n int64) {
	a := &c.a
	if n < 4096 {
		a.emit(0xf1000000 | uint32(n)<<10 | uint32(rn)<<5 | uint32(rd))
		return
	}
	a.movImm(tmp2, uint64(n))
	a.rrr(opSUBS, true, rd, rn, tmp2)
}

// charge takes n from the fuel; when it runs out the run exits to poll
// the budget and then goes on at target.
func (c *jitCompiler) charge(target, n int) {
	a := &c.a
	a.ldrOff(tmp, stReg, offFuel)
	c.subsImm(tmp, tmp, int64(n))
	a.strOff(tmp, stReg, offFuel)
	t := c.at[target]
	a.bcond(condLT, c.stub(func() { c.exitTo(exitPoll, target, t, true) }))
}

// jumpTo jumps from instruction pc to target; backward jumps are budget
// checkpoints charging the distance (docs/notes/ebpf.md, "Fuel").
func (c *jitCompiler) jumpTo(pc, target int) {
	if target <= pc {
		c.charge(target, pc-target+1)
	}
	c.a.jmp(c.at[target])
}

var jumpCond = map[op]uint32{
	opJEq64X: condEQ, opJGt64X: condHI, opJGe64X: condHS, opJSet64X: condNE, opJNe64X: condNE,
	opJSGt64X: condGT, opJSGe64X: condGE, opJLt64X: condLO, opJLe64X: condLS, opJSLt64X: condLT, opJSLe64X: condLE,
}

// imm loads a K operand: sign-extended for 64-bit operations, the low 32
// bits for 32-bit ones. It returns the register holding it.
func (c *jitCompiler) imm(w bool, v int64) int {
	if w {
		c.a.movImm(tmp2, uint64(v))
	} else {
		c.a.movImm(tmp2, uint64(uint32(v)))
	}
	return tmp2
}

// condJump compiles a conditional jump (64 or 32-bit, register or
// immediate).
func (c *jitCompiler) condJump(i int, in insn) {
	a := &c.a
	base, w, fromK := jumpForm(in.op)
	cond := jumpCond[base]
	dst := int(in.dst)
	if in.dst == regFP {
		a.ldrOff(tmp, stReg, offReg(regFP))
		dst = tmp
	}
	isSet := base == opJSet64X
	switch {
	case fromK && !isSet && in.imm >= 0 && in.imm < 4096:
		a.cmpImm(w, dst, in.imm)
	default:
		var s int
		if fromK {
			s = c.imm(w, in.imm)
		} else {
			s = c.src(in.src)
		}
		if isSet {
			a.rrr(opANDS, w, zr, dst, s)
		} else {
			a.cmp(w, dst, s)
		}
	}
	t := int(in.off)
	if t > i {
		a.bcond(cond, c.at[t])
		return
	}
	skip := a.newLabel()
	a.bcond(cond^1, skip)
	c.jumpTo(i, t)
	a.bind(skip)
}

var jitALU = map[op]uint32{opAdd64X: opADD, opSub64X: opSUB, opOr64X: opORR, opAnd64X: opAND, opXor64X: opEOR,
	opMul64X: opMUL, opLsh64X: opLSLV, opRsh64X: opLSRV, opArsh64X: opASRV}

// neg negates dst.
func (c *jitCompiler) neg(in insn) { c.a.rrr(opSUB, in.op == opNeg64, int(in.dst), zr, int(in.dst)) }

// lddw loads a 64-bit immediate.
func (c *jitCompiler) lddw(in insn) { c.a.movImm(int(in.dst), uint64(in.imm)) }

// translates reports whether o has an AArch64 translation: everything but
// atomics, which step through the interpreter.
func (c *jitCompiler) translates(o op) bool { return !isAtomic(o) }

// alu compiles the two-operand ALU operations. AArch64's division gives
// 0 for a zero divisor and INT_MIN for INT_MIN / -1, as eBPF says, so
// every division and modulo is translated.
func (c *jitCompiler) alu(i int, in insn) error {
	a := &c.a
	o, w, fromK := aluForm(in.op)
	dst := int(in.dst)
	operand := func() int {
		if fromK {
			return c.imm(w, in.imm)
		}
		return c.src(in.src)
	}
	switch o {
	case opAdd64X, opSub64X:
		v := in.imm
		if o == opSub64X {
			v = -v
		}
		if fromK && fitsImm12(v) && (w || v == int64(int32(v))) {
			a.addImm(w, dst, dst, v)
			return nil
		}
		a.rrr(jitALU[o], w, dst, dst, operand())
	case opOr64X, opAnd64X, opXor64X, opMul64X:
		a.rrr(jitALU[o], w, dst, dst, operand())
	case opMov64X:
		switch {
		case fromK && w:
			a.movImm(dst, uint64(in.imm))
		case fromK:
			a.movImm(dst, uint64(uint32(in.imm)))
		default:
			a.mov(w, dst, c.src(in.src))
		}
	case opLsh64X, opRsh64X, opArsh64X:
		if !fromK {
			a.rrr(jitALU[o], w, dst, dst, c.src(in.src))
			return nil
		}
		kind := 0 // lsl
		switch o {
		case opRsh64X:
			kind = 1
		case opArsh64X:
			kind = 2
		}
		switch {
		case in.imm != 0:
			a.shiftImm(w, kind, dst, dst, uint32(in.imm))
		case !w:
			a.mov(false, dst, dst) // a 32-bit operation still zero-extends
		}
	case opDiv64X, opSDiv64X:
		div := uint32(opUDIV)
		if o == opSDiv64X {
			div = opSDIV
		}
		a.rrr(div, w, dst, dst, operand())
	case opMod64X, opSMod64X:
		div := uint32(opUDIV)
		if o == opSMod64X {
			div = opSDIV
		}
		s := operand()
		a.rrr(div, w, tmp, dst, s)
		a.msub(w, dst, tmp, s, dst) // dst - (dst / s) * s; a zero s leaves dst
	default:
		return fmt.Errorf("ebpf: jit: no ALU form for op %d at %d", in.op, i)
	}
	return nil
}

// movsx sign-extends the low 8, 16 or 32 bits of src into dst (64-bit
// forms; the 32-bit forms then zero-extend from bit 31).
func (c *jitCompiler) movsx(in insn) {
	dst, src := int(in.dst), c.src(in.src)
	switch in.op {
	case opMovSX8to64:
		c.a.bfm(true, true, dst, src, 0, 7)
	case opMovSX16to64:
		c.a.bfm(true, true, dst, src, 0, 15)
	case opMovSX32to64:
		c.a.bfm(true, true, dst, src, 0, 31)
	case opMovSX8to32:
		c.a.bfm(true, false, dst, src, 0, 7)
	default: // opMovSX16to32
		c.a.bfm(true, false, dst, src, 0, 15)
	}
}

// byteSwap: to little-endian truncates (guest memory is little-endian),
// to big-endian swaps; both zero-extend.
func (c *jitCompiler) byteSwap(in insn) {
	a := &c.a
	dst := int(in.dst)
	switch in.op {
	case opLE16:
		a.bfm(false, false, dst, dst, 0, 15)
	case opLE32:
		a.mov(false, dst, dst)
	case opBE16:
		a.rev16(dst, dst)
		a.bfm(false, false, dst, dst, 0, 15)
	case opBE32:
		a.rev(false, dst, dst)
	case opBE64:
		a.rev(true, dst, dst)
	}
}

// addConst: rd = rn + v (64-bit).
func (c *jitCompiler) addConst(rd, rn int, v int64) {
	if fitsImm12(v) {
		c.a.addImm(true, rd, rn, v)
		return
	}
	c.a.movImm(tmp2, uint64(v))
	c.a.rrr(opADD, true, rd, rn, tmp2)
}

// cmpConst: flags of rn - v, v >= 0.
func (c *jitCompiler) cmpConst(rn int, v int64) {
	if v < 4096 {
		c.a.cmpImm(true, rn, v)
		return
	}
	c.a.movImm(tmp2, uint64(v))
	c.a.cmp(true, rn, tmp2)
}

// mem compiles a load or store of size bytes at [base + off]. Accesses
// through r10 that stay within the current frame need no check; any
// other address is checked against the stack and the data region (in
// the order the hints suggest), whose first roLen bytes refuse stores.
func (c *jitCompiler) mem(i int, in insn, size int, store, fromImm bool) {
	a := &c.a
	base := in.src
	if store {
		base = in.dst
	}
	signed := in.op >= opLdxSB && in.op <= opLdxSW
	access := func(host, idx int) {
		switch {
		case signed:
			a.ldrs(size, int(in.dst), host, idx)
		case !store:
			a.ldr(size, int(in.dst), host, idx)
		case fromImm:
			a.movImm(tmp2, uint64(in.imm))
			a.str(size, tmp2, host, idx)
		default:
			a.str(size, c.src(in.src), host, idx)
		}
	}
	if base == regFP && in.off >= -frameSize && int(in.off)+size <= 0 {
		a.addImm(true, addrR, hostFP, int64(in.off))
		access(addrR, zr)
		return
	}
	if base == regFP {
		a.ldrOff(addrR, stReg, offReg(regFP))
		c.addConst(addrR, addrR, int64(in.off))
	} else {
		c.addConst(addrR, int(base), int64(in.off))
	}
	// addrR: the guest address, 64 bits (the interpreter's p).
	back := a.newLabel()
	fault := c.stub(func() {
		a.strOff(addrR, stReg, offAddr)
		c.exitTo(exitMem, i, 0, false)
	})
	stackCheck := func(miss label) {
		a.rrr(opSUB, true, tmp, addrR, stackLoR)
		a.cmpImm(true, tmp, int64(c.stackLen)-int64(size))
		a.bcond(condHI, miss)
		access(stackR, tmp)
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
		c.addConst(tmp, addrR, -int64(DataBase+lo))
		c.cmpConst(tmp, int64(n-lo)-int64(size))
		a.bcond(condHI, miss)
		if lo != 0 {
			c.addConst(tmp, tmp, int64(lo))
		}
		access(dataR, tmp)
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

// frameAddr points addrR at st.frames[depth] less offFrames, depth in tmp.
func (c *jitCompiler) frameAddr() {
	c.a.emit(0x8b000000 | uint32(tmp)<<16 | 6<<10 | uint32(stReg)<<5 | uint32(addrR)) // add addrR, st, tmp, lsl 6
}

var calleeSaved = [4]int{6, 7, 8, 9}

// callLocal compiles a bpf-to-bpf call: r6-r9, the return address and
// index saved in st.frames, r10 one frame down; a checkpoint.
func (c *jitCompiler) callLocal(i int, in insn) {
	a := &c.a
	frames := int64(c.stackLen / frameSize)
	a.ldrOff(tmp, stReg, offDepth)
	a.cmpImm(true, tmp, frames-1)
	a.bcond(condHS, c.stub(func() { c.exitTo(exitDepth, i, 0, false) }))
	c.frameAddr()
	for k, r := range calleeSaved {
		a.strOff(r, addrR, offFrames+16+8*int32(k))
	}
	a.adr(tmp2, c.at[i+1])
	a.strOff(tmp2, addrR, offFrames)
	a.movImm(tmp2, uint64(i+1))
	a.strOff(tmp2, addrR, offFrames+8)
	a.addImm(true, tmp, tmp, 1)
	a.strOff(tmp, stReg, offDepth)
	a.addImm(true, hostFP, hostFP, -frameSize)
	a.ldrOff(tmp, stReg, offReg(regFP))
	a.addImm(true, tmp, tmp, -frameSize)
	a.strOff(tmp, stReg, offReg(regFP))
	t := int(in.off)
	c.charge(t, max(i-t+1, 1))
	a.jmp(c.at[t])
}

// exit compiles exit: the end of the run at depth 0, else a return to
// the caller's frame, a checkpoint charging the distance back.
func (c *jitCompiler) exit(i int) {
	a := &c.a
	a.ldrOff(tmp, stReg, offDepth)
	a.cmpImm(true, tmp, 0)
	a.bcond(condEQ, c.stub(func() { c.exitTo(exitDone, i, 0, false) }))
	a.addImm(true, tmp, tmp, -1)
	a.strOff(tmp, stReg, offDepth)
	c.frameAddr()
	for k, r := range calleeSaved {
		a.ldrOff(r, addrR, offFrames+16+8*int32(k))
	}
	a.addImm(true, hostFP, hostFP, frameSize)
	a.ldrOff(tmp, stReg, offReg(regFP))
	a.addImm(true, tmp, tmp, frameSize)
	a.strOff(tmp, stReg, offReg(regFP))
	// fuel -= max(i+1-ret, 1)
	a.ldrOff(tmp, addrR, offFrames+8)
	a.movImm(tmp2, uint64(i+1))
	a.rrr(opSUBS, true, tmp, tmp2, tmp)
	pos := a.newLabel()
	a.bcond(condGT, pos)
	a.movImm(tmp, 1)
	a.bind(pos)
	a.ldrOff(tmp2, stReg, offFuel)
	a.rrr(opSUBS, true, tmp2, tmp2, tmp)
	a.strOff(tmp2, stReg, offFuel)
	a.ldrOff(tmp, addrR, offFrames)
	poll := c.stub(func() {
		a.strOff(tmp, stReg, offResume)
		a.movImm(tmp, exitPoll)
		a.strOff32(tmp, stReg, offExit)
		a.movImm(tmp, uint64(i))
		a.strOff32(tmp, stReg, offArg)
		a.jmp(c.exitStub)
	})
	a.bcond(condLT, poll)
	a.br(tmp)
}
