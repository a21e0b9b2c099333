//go:build linux && amd64

package ebpf

import (
	"encoding/binary"
	"fmt"
)

// x86 register numbers as the encodings use them.
const (
	rAX = iota
	rCX
	rDX
	rBX
	rSP
	rBP
	rSI
	rDI
	r8
	r9
	r10
	r11
	r12
	r13
	r14
	r15
)

// Condition codes (the low nibble of Jcc).
const (
	ccB  = 0x2 // unsigned <
	ccAE = 0x3 // unsigned >=
	ccE  = 0x4
	ccNE = 0x5
	ccBE = 0x6 // unsigned <=
	ccA  = 0x7 // unsigned >
	ccL  = 0xc // signed <
	ccGE = 0xd // signed >=
	ccLE = 0xe // signed <=
	ccG  = 0xf // signed >
)

// x86 assembles the few x86-64 instruction forms the JIT needs. Memory
// operands are always [base + disp] with a 32-bit or 8-bit displacement.
type x86 struct {
	labelTable
	b      []byte
	fixups []fixup
}

type fixup struct {
	at int // offset of the rel32 field
	l  label
}

var _ assembler = (*x86)(nil)

func (a *x86) bind(l label) { a.labels[l] = len(a.b) }

func (a *x86) code() []byte { return a.b }

func (a *x86) rel32(l label) {
	a.fixups = append(a.fixups, fixup{at: len(a.b), l: l})
	a.b = append(a.b, 0, 0, 0, 0)
}

// link resolves every rel32 once all labels are bound.
func (a *x86) link() error {
	for _, f := range a.fixups {
		t := a.labels[f.l]
		if t < 0 {
			return fmt.Errorf("ebpf: jit: label %d never bound", f.l)
		}
		binary.LittleEndian.PutUint32(a.b[f.at:], uint32(int32(t-(f.at+4))))
	}
	return nil
}

func (a *x86) byte1(v ...byte) { a.b = append(a.b, v...) }

func (a *x86) imm32(v int32) { a.b = binary.LittleEndian.AppendUint32(a.b, uint32(v)) }

// rex emits a REX prefix when one is needed: 64-bit operand size, an
// extended register, or (force) a byte access to SIL/DIL/SPL/BPL.
func (a *x86) rex(w bool, reg, rm int, force bool) {
	v := byte(0x40)
	if w {
		v |= 8
	}
	if reg >= 8 {
		v |= 4
	}
	if rm >= 8 {
		v |= 1
	}
	if v != 0x40 || force {
		a.b = append(a.b, v)
	}
}

// rr emits op with a register-direct ModRM: reg field reg, r/m field rm.
func (a *x86) rr(w bool, op []byte, reg, rm int) {
	a.rex(w, reg, rm, false)
	a.b = append(a.b, op...)
	a.b = append(a.b, 0xc0|byte(reg&7)<<3|byte(rm&7))
}

// rm emits op with a memory operand [base + disp]; byteReg asks for a REX
// prefix so that reg 4-7 name SPL/BPL/SIL/DIL.
func (a *x86) rm(w bool, op []byte, reg, base int, disp int32, byteReg bool) {
	a.rex(w, reg, base, byteReg && reg >= 4 && reg < 8)
	a.b = append(a.b, op...)
	mod := byte(0x80)
	switch {
	case disp == 0 && base&7 != rBP:
		mod = 0
	case disp >= -128 && disp <= 127:
		mod = 0x40
	}
	a.b = append(a.b, mod|byte(reg&7)<<3|byte(base&7))
	if base&7 == rSP {
		a.b = append(a.b, 0x24) // SIB: no index, base
	}
	switch mod {
	case 0x40:
		a.b = append(a.b, byte(int8(disp)))
	case 0x80:
		a.imm32(disp)
	}
}

// ALU opcodes: op r/m, reg (register form) and the /digit of 81 (imm32).
type aluOp struct {
	rmReg byte
	ext   int
}

var (
	xAdd = aluOp{0x01, 0}
	xOr  = aluOp{0x09, 1}
	xAnd = aluOp{0x21, 4}
	xSub = aluOp{0x29, 5}
	xXor = aluOp{0x31, 6}
	xCmp = aluOp{0x39, 7}
)

// alu: dst op= src.
func (a *x86) alu(w bool, o aluOp, dst, src int) { a.rr(w, []byte{o.rmReg}, src, dst) }

// aluImm: dst op= imm (sign-extended to 64 bits when w).
func (a *x86) aluImm(w bool, o aluOp, dst int, imm int32) {
	if imm >= -128 && imm <= 127 {
		a.rr(w, []byte{0x83}, o.ext, dst)
		a.b = append(a.b, byte(int8(imm)))
		return
	}
	a.rr(w, []byte{0x81}, o.ext, dst)
	a.imm32(imm)
}

// aluMemImm: [base+disp] op= imm, 64-bit.
func (a *x86) aluMemImm(o aluOp, base int, disp, imm int32) {
	if imm >= -128 && imm <= 127 {
		a.rm(true, []byte{0x83}, o.ext, base, disp, false)
		a.b = append(a.b, byte(int8(imm)))
		return
	}
	a.rm(true, []byte{0x81}, o.ext, base, disp, false)
	a.imm32(imm)
}

// aluRegMem: dst op= [base+disp], 64-bit (the reg, r/m form: opcode+2).
func (a *x86) aluRegMem(o aluOp, dst, base int, disp int32) {
	a.rm(true, []byte{o.rmReg + 2}, dst, base, disp, false)
}

func (a *x86) mov(w bool, dst, src int) { a.rr(w, []byte{0x89}, src, dst) }

// movImm loads v into dst: as a zero-extended imm32 when it fits, a
// sign-extended imm32, or a full imm64.
func (a *x86) movImm(dst int, v uint64) {
	switch {
	case v <= 0xffffffff:
		a.rex(false, 0, dst, false)
		a.b = append(a.b, 0xb8+byte(dst&7))
		a.imm32(int32(uint32(v)))
	case int64(v) < 0 && int64(v) >= -1<<31:
		a.rr(true, []byte{0xc7}, 0, dst)
		a.imm32(int32(v))
	default:
		a.rex(true, 0, dst, false)
		a.b = append(a.b, 0xb8+byte(dst&7))
		a.b = binary.LittleEndian.AppendUint64(a.b, v)
	}
}

// load: dst = [base+disp] zero-extended, size 1, 2, 4 or 8.
func (a *x86) load(size, dst, base int, disp int32) {
	switch size {
	case 1:
		a.rm(false, []byte{0x0f, 0xb6}, dst, base, disp, false)
	case 2:
		a.rm(false, []byte{0x0f, 0xb7}, dst, base, disp, false)
	case 4:
		a.rm(false, []byte{0x8b}, dst, base, disp, false)
	default:
		a.rm(true, []byte{0x8b}, dst, base, disp, false)
	}
}

// loadSigned: dst = [base+disp] sign-extended to 64 bits, size 1, 2 or 4.
func (a *x86) loadSigned(size, dst, base int, disp int32) {
	switch size {
	case 1:
		a.rm(true, []byte{0x0f, 0xbe}, dst, base, disp, false)
	case 2:
		a.rm(true, []byte{0x0f, 0xbf}, dst, base, disp, false)
	default:
		a.rm(true, []byte{0x63}, dst, base, disp, false)
	}
}

// store: [base+disp] = the low size bytes of src.
func (a *x86) store(size, src, base int, disp int32) {
	switch size {
	case 1:
		a.rm(false, []byte{0x88}, src, base, disp, true)
	case 2:
		a.b = append(a.b, 0x66)
		a.rm(false, []byte{0x89}, src, base, disp, false)
	case 4:
		a.rm(false, []byte{0x89}, src, base, disp, false)
	default:
		a.rm(true, []byte{0x89}, src, base, disp, false)
	}
}

// storeImm: [base+disp] = imm, size 1, 2, 4 or 8 (8: imm sign-extended).
func (a *x86) storeImm(size, base int, disp int32, imm int32) {
	switch size {
	case 1:
		a.rm(false, []byte{0xc6}, 0, base, disp, false)
		a.b = append(a.b, byte(imm))
	case 2:
		a.b = append(a.b, 0x66)
		a.rm(false, []byte{0xc7}, 0, base, disp, false)
		a.b = binary.LittleEndian.AppendUint16(a.b, uint16(imm))
	case 4:
		a.rm(false, []byte{0xc7}, 0, base, disp, false)
		a.imm32(imm)
	default:
		a.rm(true, []byte{0xc7}, 0, base, disp, false)
		a.imm32(imm)
	}
}

// lea: dst = base + disp (64-bit).
func (a *x86) lea(dst, base int, disp int32) { a.rm(true, []byte{0x8d}, dst, base, disp, false) }

// leaRIP: dst = the address of l.
func (a *x86) leaRIP(dst int, l label) {
	a.rex(true, dst, 0, false)
	a.b = append(a.b, 0x8d, 0x05|byte(dst&7)<<3)
	a.rel32(l)
}

// shiftImm: ext 4 shl, 5 shr, 7 sar.
func (a *x86) shiftImm(w bool, ext, dst int, n uint8) {
	a.rr(w, []byte{0xc1}, ext, dst)
	a.b = append(a.b, n)
}

// shiftCL: dst shifted by CL.
func (a *x86) shiftCL(w bool, ext, dst int) { a.rr(w, []byte{0xd3}, ext, dst) }

func (a *x86) imul(w bool, dst, src int) { a.rr(w, []byte{0x0f, 0xaf}, dst, src) }

func (a *x86) imulImm(w bool, dst int, imm int32) {
	a.rr(w, []byte{0x69}, dst, dst)
	a.imm32(imm)
}

// unary F7 group: ext 3 neg, 6 div.
func (a *x86) f7(w bool, ext, r int) { a.rr(w, []byte{0xf7}, ext, r) }

func (a *x86) test(w bool, x, y int) { a.rr(w, []byte{0x85}, y, x) }

func (a *x86) testImm(w bool, r int, imm int32) {
	a.rr(w, []byte{0xf7}, 0, r)
	a.imm32(imm)
}

func (a *x86) jmp(l label) {
	a.b = append(a.b, 0xe9)
	a.rel32(l)
}

func (a *x86) jcc(cc byte, l label) {
	a.b = append(a.b, 0x0f, 0x80|cc)
	a.rel32(l)
}

// jmpReg: jump to the address in r.
func (a *x86) jmpReg(r int) { a.rr(false, []byte{0xff}, 4, r) }

// jmpMem: jump to the address stored at [base+disp].
func (a *x86) jmpMem(base int, disp int32) { a.rm(false, []byte{0xff}, 4, base, disp, false) }

func (a *x86) ret() { a.b = append(a.b, 0xc3) }
