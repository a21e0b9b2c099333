//go:build linux && arm64

package ebpf

import (
	"encoding/binary"
	"fmt"
)

// a64 assembles the AArch64 instruction forms the JIT needs. Register 31
// is the zero register in every form used here (never SP).
type a64 struct {
	labelTable
	b      []byte
	fixups []a64Fixup
}

// Branch kinds of a fixup: which field holds the word offset.
const (
	fixB    = iota // B: imm26
	fixCond        // B.cond: imm19
	fixADR         // ADR: byte offset, immlo/immhi (21 bits)
)

type a64Fixup struct {
	at   int
	l    label
	kind int
}

const zr = 31

// Condition codes.
const (
	condEQ = 0x0
	condNE = 0x1
	condHS = 0x2 // unsigned >=
	condLO = 0x3 // unsigned <
	condHI = 0x8 // unsigned >
	condLS = 0x9 // unsigned <=
	condGE = 0xa
	condLT = 0xb
	condGT = 0xc
	condLE = 0xd
)

var _ assembler = (*a64)(nil)

func (a *a64) bind(l label) { a.labels[l] = len(a.b) }

func (a *a64) code() []byte { return a.b }

func (a *a64) emit(w uint32) { a.b = binary.LittleEndian.AppendUint32(a.b, w) }

// link resolves every branch once all labels are bound; a target out of a
// branch's range is an error (the module is then interpreted).
func (a *a64) link() error {
	for _, f := range a.fixups {
		t := a.labels[f.l]
		if t < 0 {
			return fmt.Errorf("ebpf: jit: label %d never bound", f.l)
		}
		d := t - f.at
		w := binary.LittleEndian.Uint32(a.b[f.at:])
		switch f.kind {
		case fixB:
			if d/4 < -1<<25 || d/4 >= 1<<25 {
				return fmt.Errorf("ebpf: jit: branch out of range")
			}
			w |= uint32(d/4) & (1<<26 - 1)
		case fixCond:
			if d/4 < -1<<18 || d/4 >= 1<<18 {
				return fmt.Errorf("ebpf: jit: conditional branch out of range")
			}
			w |= (uint32(d/4) & (1<<19 - 1)) << 5
		default:
			if d < -1<<20 || d >= 1<<20 {
				return fmt.Errorf("ebpf: jit: address out of range")
			}
			w |= (uint32(d)&3)<<29 | (uint32(d)>>2&(1<<19-1))<<5
		}
		binary.LittleEndian.PutUint32(a.b[f.at:], w)
	}
	return nil
}

func (a *a64) fix(w uint32, l label, kind int) {
	a.fixups = append(a.fixups, a64Fixup{at: len(a.b), l: l, kind: kind})
	a.emit(w)
}

func (a *a64) jmp(l label)                { a.fix(0x14000000, l, fixB) }
func (a *a64) bcond(cond uint32, l label) { a.fix(0x54000000|cond, l, fixCond) }
func (a *a64) adr(rd int, l label)        { a.fix(0x10000000|uint32(rd), l, fixADR) }
func (a *a64) br(rn int)                  { a.emit(0xd61f0000 | uint32(rn)<<5) }
func (a *a64) ret()                       { a.emit(0xd65f03c0) }

func sf(w bool) uint32 {
	if w {
		return 1 << 31
	}
	return 0
}

// Three-register data processing: base | rm<<16 | rn<<5 | rd.
const (
	opADD  = 0x0b000000
	opSUB  = 0x4b000000
	opAND  = 0x0a000000
	opORR  = 0x2a000000
	opEOR  = 0x4a000000
	opSUBS = 0x6b000000
	opANDS = 0x6a000000
	opUDIV = 0x1ac00800
	opSDIV = 0x1ac00c00
	opLSLV = 0x1ac02000
	opLSRV = 0x1ac02400
	opASRV = 0x1ac02800
	opMUL  = 0x1b007c00 // MADD with ra = zr
)

func (a *a64) rrr(op uint32, w bool, rd, rn, rm int) {
	a.emit(op | sf(w) | uint32(rm)<<16 | uint32(rn)<<5 | uint32(rd))
}

// msub: rd = ra - rn*rm.
func (a *a64) msub(w bool, rd, rn, rm, ra int) {
	a.emit(0x1b008000 | sf(w) | uint32(rm)<<16 | uint32(ra)<<10 | uint32(rn)<<5 | uint32(rd))
}

func (a *a64) mov(w bool, rd, rm int) { a.rrr(opORR, w, rd, zr, rm) }

func (a *a64) cmp(w bool, rn, rm int) { a.rrr(opSUBS, w, zr, rn, rm) }

// addImm: rd = rn + imm for 0 <= imm < 4096 (sub for negative ones).
func (a *a64) addImm(w bool, rd, rn int, imm int64) {
	op := uint32(0x11000000)
	if imm < 0 {
		op, imm = 0x51000000, -imm
	}
	a.emit(op | sf(w) | uint32(imm)<<10 | uint32(rn)<<5 | uint32(rd))
}

// cmpImm: flags of rn - imm, 0 <= imm < 4096.
func (a *a64) cmpImm(w bool, rn int, imm int64) {
	a.emit(0x71000000 | sf(w) | uint32(imm)<<10 | uint32(rn)<<5 | zr)
}

func fitsImm12(v int64) bool { return v > -4096 && v < 4096 }

// movImm: rd = v (64-bit), with MOVZ/MOVN and MOVK.
func (a *a64) movImm(rd int, v uint64) {
	if ^v < 1<<16 { // MOVN
		a.emit(0x92800000 | uint32(^v&0xffff)<<5 | uint32(rd))
		return
	}
	first := true
	for hw := range 4 {
		part := uint32(v>>(16*hw)) & 0xffff
		if part == 0 && !(first && hw == 3) {
			continue
		}
		op := uint32(0xf2800000) // MOVK
		if first {
			op = 0xd2800000 // MOVZ
			first = false
		}
		a.emit(op | uint32(hw)<<21 | part<<5 | uint32(rd))
	}
	if first {
		a.emit(0xd2800000 | uint32(rd)) // MOVZ rd, #0
	}
}

// bfm: UBFM (unsigned) or SBFM with immr, imms.
func (a *a64) bfm(signed, w bool, rd, rn int, immr, imms uint32) {
	op := uint32(0x53000000)
	if signed {
		op = 0x13000000
	}
	if w {
		op |= 1<<31 | 1<<22
	}
	a.emit(op | immr<<16 | imms<<10 | uint32(rn)<<5 | uint32(rd))
}

// shiftImm by n (1..width-1): kind 0 lsl, 1 lsr, 2 asr.
func (a *a64) shiftImm(w bool, kind int, rd, rn int, n uint32) {
	width := uint32(32)
	if w {
		width = 64
	}
	switch kind {
	case 0:
		a.bfm(false, w, rd, rn, (width-n)%width, width-1-n)
	case 1:
		a.bfm(false, w, rd, rn, n, width-1)
	default:
		a.bfm(true, w, rd, rn, n, width-1)
	}
}

// Register-offset loads and stores: base | rm<<16 | rn<<5 | rt, address
// rn + rm.
var (
	ldrReg  = [4]uint32{0x38606800, 0x78606800, 0xb8606800, 0xf8606800} // zero-extending, by log2 size
	ldrsReg = [3]uint32{0x38a06800, 0x78a06800, 0xb8a06800}             // sign-extending to 64 bits
	strReg  = [4]uint32{0x38206800, 0x78206800, 0xb8206800, 0xf8206800}
)

func log2(size int) int {
	switch size {
	case 1:
		return 0
	case 2:
		return 1
	case 4:
		return 2
	}
	return 3
}

func (a *a64) ldr(size, rt, rn, rm int) {
	a.emit(ldrReg[log2(size)] | uint32(rm)<<16 | uint32(rn)<<5 | uint32(rt))
}

func (a *a64) ldrs(size, rt, rn, rm int) {
	a.emit(ldrsReg[log2(size)] | uint32(rm)<<16 | uint32(rn)<<5 | uint32(rt))
}

func (a *a64) str(size, rt, rn, rm int) {
	a.emit(strReg[log2(size)] | uint32(rm)<<16 | uint32(rn)<<5 | uint32(rt))
}

// ldrOff / strOff: 64-bit load or store at [rn + off], off a multiple of
// 8 below 32 KiB (the state block's fields).
func (a *a64) ldrOff(rt, rn int, off int32) {
	a.emit(0xf9400000 | uint32(off/8)<<10 | uint32(rn)<<5 | uint32(rt))
}

func (a *a64) strOff(rt, rn int, off int32) {
	a.emit(0xf9000000 | uint32(off/8)<<10 | uint32(rn)<<5 | uint32(rt))
}

// strOff32: 32-bit store at [rn + off], off a multiple of 4.
func (a *a64) strOff32(rt, rn int, off int32) {
	a.emit(0xb9000000 | uint32(off/4)<<10 | uint32(rn)<<5 | uint32(rt))
}

func (a *a64) rev(w bool, rd, rn int) {
	if w {
		a.emit(0xdac00c00 | uint32(rn)<<5 | uint32(rd))
		return
	}
	a.emit(0x5ac00800 | uint32(rn)<<5 | uint32(rd))
}

func (a *a64) rev16(rd, rn int) { a.emit(0x5ac00400 | uint32(rn)<<5 | uint32(rd)) }
