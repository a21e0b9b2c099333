package ebpf

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/tinycontainer/tinycontainer/runtime"
)

var le = binary.LittleEndian

// checkpointFuel is how many instructions may run between two polls of
// the budget. Fuel is only counted at back-edges, calls and returns: code
// between two such checkpoints runs straight forward, so its length is
// bounded by the distance between them and nothing is counted per
// instruction. A poll (a clock read) then costs well under 1% even for
// the tightest loop, and a runaway guest stops within ~100 µs of its
// deadline.
const checkpointFuel = 1 << 15

func memFault(pc int, what string, size, addr uint64) error {
	return &runtime.Fault{Kind: runtime.FaultMemory,
		Err: fmt.Errorf("%w: %d-byte %s at %#x (instruction %d)", ErrMemoryAccess, size, what, addr, pc)}
}

// dataRef returns the size bytes of the data region at guest address p,
// or nil. Stores may not touch the read-only part.
func (a *activation) dataRef(p, size uint64, store bool) []byte {
	d := a.mem.data
	o := p - DataBase
	if o >= uint64(len(d)) || uint64(len(d))-o < size || (store && o < uint64(a.mem.roLen)) {
		return nil
	}
	return d[o : o+size : o+size]
}

// ref returns the size bytes at guest address p in either region, or nil.
func (a *activation) ref(p, size uint64, store bool) []byte {
	s := a.mem.stack
	if o := p - (StackTop - uint64(len(s))); o < uint64(len(s)) && uint64(len(s))-o >= size {
		return s[o : o+size : o+size]
	}
	return a.dataRef(p, size, store)
}

// poll reports a budget fault if the activation must end now.
func poll(ctx context.Context, b *runtime.Budget, pc int) error {
	if b.Expired() {
		return &runtime.Fault{Kind: runtime.FaultBudget, Err: fmt.Errorf("%w (instruction %d)", runtime.ErrBudget, pc)}
	}
	if err := ctx.Err(); err != nil {
		return &runtime.Fault{Kind: runtime.FaultBudget, Err: fmt.Errorf("%w: %w (instruction %d)", runtime.ErrBudget, err, pc)}
	}
	return nil
}

// run interprets prog from instruction 0 until the entry function exits.
// The code was verified: every jump lands on an instruction of its own
// function and every function ends in exit or ja, so pc never leaves prog.
func (a *activation) run(ctx context.Context, prog []insn, host runtime.Host, budget *runtime.Budget) (int32, error) {
	var r [16]uint64 // r0-r10; indexing with &15 needs no bounds check
	r[regFP] = StackTop

	stack := a.mem.stack
	stackLo := StackTop - uint64(len(stack))
	// o <= stackMaxN  <=>  an N-byte access at stackLo+o fits the stack.
	stackMax1 := uint64(len(stack)) - 1
	stackMax2 := uint64(len(stack)) - 2
	stackMax4 := uint64(len(stack)) - 4
	stackMax8 := uint64(len(stack)) - 8
	maxDepth := len(stack) / frameSize
	mem := &a.mem

	depth := 0
	fuel := checkpointFuel
	seg := 0 // where the current straight run of code began
	pc := 0
	var in *insn
	for {
		in = &prog[pc]
		pc++
		switch in.op {
		case opAdd64X:
			r[in.dst&15] += r[in.src&15]
		case opAdd64K:
			r[in.dst&15] += uint64(in.imm)
		case opSub64X:
			r[in.dst&15] -= r[in.src&15]
		case opSub64K:
			r[in.dst&15] -= uint64(in.imm)
		case opMul64X:
			r[in.dst&15] *= r[in.src&15]
		case opMul64K:
			r[in.dst&15] *= uint64(in.imm)
		case opDiv64X:
			if d := r[in.src&15]; d == 0 {
				r[in.dst&15] = 0
			} else {
				r[in.dst&15] /= d
			}
		case opDiv64K:
			r[in.dst&15] /= uint64(in.imm)
		case opSDiv64X:
			if d := int64(r[in.src&15]); d == 0 {
				r[in.dst&15] = 0
			} else {
				r[in.dst&15] = uint64(int64(r[in.dst&15]) / d)
			}
		case opSDiv64K:
			r[in.dst&15] = uint64(int64(r[in.dst&15]) / in.imm)
		case opOr64X:
			r[in.dst&15] |= r[in.src&15]
		case opOr64K:
			r[in.dst&15] |= uint64(in.imm)
		case opAnd64X:
			r[in.dst&15] &= r[in.src&15]
		case opAnd64K:
			r[in.dst&15] &= uint64(in.imm)
		case opLsh64X:
			r[in.dst&15] <<= r[in.src&15] & 63
		case opLsh64K:
			r[in.dst&15] <<= uint64(in.imm)
		case opRsh64X:
			r[in.dst&15] >>= r[in.src&15] & 63
		case opRsh64K:
			r[in.dst&15] >>= uint64(in.imm)
		case opNeg64:
			r[in.dst&15] = -r[in.dst&15]
		case opMod64X:
			if d := r[in.src&15]; d != 0 {
				r[in.dst&15] %= d
			}
		case opMod64K:
			r[in.dst&15] %= uint64(in.imm)
		case opSMod64X:
			if d := int64(r[in.src&15]); d != 0 {
				r[in.dst&15] = uint64(int64(r[in.dst&15]) % d)
			}
		case opSMod64K:
			r[in.dst&15] = uint64(int64(r[in.dst&15]) % in.imm)
		case opXor64X:
			r[in.dst&15] ^= r[in.src&15]
		case opXor64K:
			r[in.dst&15] ^= uint64(in.imm)
		case opMov64X:
			r[in.dst&15] = r[in.src&15]
		case opMov64K:
			r[in.dst&15] = uint64(in.imm)
		case opArsh64X:
			r[in.dst&15] = uint64(int64(r[in.dst&15]) >> (r[in.src&15] & 63))
		case opArsh64K:
			r[in.dst&15] = uint64(int64(r[in.dst&15]) >> uint64(in.imm))
		case opMovSX8to64:
			r[in.dst&15] = uint64(int64(int8(r[in.src&15])))
		case opMovSX16to64:
			r[in.dst&15] = uint64(int64(int16(r[in.src&15])))
		case opMovSX32to64:
			r[in.dst&15] = uint64(int64(int32(r[in.src&15])))

		case opAdd32X:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) + uint32(r[in.src&15]))
		case opAdd32K:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) + uint32(in.imm))
		case opSub32X:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) - uint32(r[in.src&15]))
		case opSub32K:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) - uint32(in.imm))
		case opMul32X:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) * uint32(r[in.src&15]))
		case opMul32K:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) * uint32(in.imm))
		case opDiv32X:
			if d := uint32(r[in.src&15]); d == 0 {
				r[in.dst&15] = 0
			} else {
				r[in.dst&15] = uint64(uint32(r[in.dst&15]) / d)
			}
		case opDiv32K:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) / uint32(in.imm))
		case opSDiv32X:
			if d := int32(r[in.src&15]); d == 0 {
				r[in.dst&15] = 0
			} else {
				r[in.dst&15] = uint64(uint32(int32(r[in.dst&15]) / d))
			}
		case opSDiv32K:
			r[in.dst&15] = uint64(uint32(int32(r[in.dst&15]) / int32(in.imm)))
		case opOr32X:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) | uint32(r[in.src&15]))
		case opOr32K:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) | uint32(in.imm))
		case opAnd32X:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) & uint32(r[in.src&15]))
		case opAnd32K:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) & uint32(in.imm))
		case opLsh32X:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) << (r[in.src&15] & 31))
		case opLsh32K:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) << uint64(in.imm))
		case opRsh32X:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) >> (r[in.src&15] & 31))
		case opRsh32K:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) >> uint64(in.imm))
		case opNeg32:
			r[in.dst&15] = uint64(-uint32(r[in.dst&15]))
		case opMod32X:
			if d := uint32(r[in.src&15]); d == 0 {
				r[in.dst&15] = uint64(uint32(r[in.dst&15]))
			} else {
				r[in.dst&15] = uint64(uint32(r[in.dst&15]) % d)
			}
		case opMod32K:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) % uint32(in.imm))
		case opSMod32X:
			if d := int32(r[in.src&15]); d == 0 {
				r[in.dst&15] = uint64(uint32(r[in.dst&15]))
			} else {
				r[in.dst&15] = uint64(uint32(int32(r[in.dst&15]) % d))
			}
		case opSMod32K:
			r[in.dst&15] = uint64(uint32(int32(r[in.dst&15]) % int32(in.imm)))
		case opXor32X:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) ^ uint32(r[in.src&15]))
		case opXor32K:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) ^ uint32(in.imm))
		case opMov32X:
			r[in.dst&15] = uint64(uint32(r[in.src&15]))
		case opMov32K:
			r[in.dst&15] = uint64(uint32(in.imm))
		case opArsh32X:
			r[in.dst&15] = uint64(uint32(int32(r[in.dst&15]) >> (r[in.src&15] & 31)))
		case opArsh32K:
			r[in.dst&15] = uint64(uint32(int32(r[in.dst&15]) >> uint64(in.imm)))
		case opMovSX8to32:
			r[in.dst&15] = uint64(uint32(int32(int8(r[in.src&15]))))
		case opMovSX16to32:
			r[in.dst&15] = uint64(uint32(int32(int16(r[in.src&15]))))

		case opLE16:
			r[in.dst&15] = uint64(uint16(r[in.dst&15]))
		case opLE32:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]))
		case opBE16:
			r[in.dst&15] = uint64(bits.ReverseBytes16(uint16(r[in.dst&15])))
		case opBE32:
			r[in.dst&15] = uint64(bits.ReverseBytes32(uint32(r[in.dst&15])))
		case opBE64:
			r[in.dst&15] = bits.ReverseBytes64(r[in.dst&15])

		case opJA:
			goto jump
		case opJEq64X:
			if r[in.dst&15] == r[in.src&15] {
				goto jump
			}
		case opJEq64K:
			if r[in.dst&15] == uint64(in.imm) {
				goto jump
			}
		case opJGt64X:
			if r[in.dst&15] > r[in.src&15] {
				goto jump
			}
		case opJGt64K:
			if r[in.dst&15] > uint64(in.imm) {
				goto jump
			}
		case opJGe64X:
			if r[in.dst&15] >= r[in.src&15] {
				goto jump
			}
		case opJGe64K:
			if r[in.dst&15] >= uint64(in.imm) {
				goto jump
			}
		case opJSet64X:
			if r[in.dst&15]&r[in.src&15] != 0 {
				goto jump
			}
		case opJSet64K:
			if r[in.dst&15]&uint64(in.imm) != 0 {
				goto jump
			}
		case opJNe64X:
			if r[in.dst&15] != r[in.src&15] {
				goto jump
			}
		case opJNe64K:
			if r[in.dst&15] != uint64(in.imm) {
				goto jump
			}
		case opJSGt64X:
			if int64(r[in.dst&15]) > int64(r[in.src&15]) {
				goto jump
			}
		case opJSGt64K:
			if int64(r[in.dst&15]) > in.imm {
				goto jump
			}
		case opJSGe64X:
			if int64(r[in.dst&15]) >= int64(r[in.src&15]) {
				goto jump
			}
		case opJSGe64K:
			if int64(r[in.dst&15]) >= in.imm {
				goto jump
			}
		case opJLt64X:
			if r[in.dst&15] < r[in.src&15] {
				goto jump
			}
		case opJLt64K:
			if r[in.dst&15] < uint64(in.imm) {
				goto jump
			}
		case opJLe64X:
			if r[in.dst&15] <= r[in.src&15] {
				goto jump
			}
		case opJLe64K:
			if r[in.dst&15] <= uint64(in.imm) {
				goto jump
			}
		case opJSLt64X:
			if int64(r[in.dst&15]) < int64(r[in.src&15]) {
				goto jump
			}
		case opJSLt64K:
			if int64(r[in.dst&15]) < in.imm {
				goto jump
			}
		case opJSLe64X:
			if int64(r[in.dst&15]) <= int64(r[in.src&15]) {
				goto jump
			}
		case opJSLe64K:
			if int64(r[in.dst&15]) <= in.imm {
				goto jump
			}
		case opJEq32X:
			if uint32(r[in.dst&15]) == uint32(r[in.src&15]) {
				goto jump
			}
		case opJEq32K:
			if uint32(r[in.dst&15]) == uint32(in.imm) {
				goto jump
			}
		case opJGt32X:
			if uint32(r[in.dst&15]) > uint32(r[in.src&15]) {
				goto jump
			}
		case opJGt32K:
			if uint32(r[in.dst&15]) > uint32(in.imm) {
				goto jump
			}
		case opJGe32X:
			if uint32(r[in.dst&15]) >= uint32(r[in.src&15]) {
				goto jump
			}
		case opJGe32K:
			if uint32(r[in.dst&15]) >= uint32(in.imm) {
				goto jump
			}
		case opJSet32X:
			if uint32(r[in.dst&15])&uint32(r[in.src&15]) != 0 {
				goto jump
			}
		case opJSet32K:
			if uint32(r[in.dst&15])&uint32(in.imm) != 0 {
				goto jump
			}
		case opJNe32X:
			if uint32(r[in.dst&15]) != uint32(r[in.src&15]) {
				goto jump
			}
		case opJNe32K:
			if uint32(r[in.dst&15]) != uint32(in.imm) {
				goto jump
			}
		case opJSGt32X:
			if int32(r[in.dst&15]) > int32(r[in.src&15]) {
				goto jump
			}
		case opJSGt32K:
			if int32(r[in.dst&15]) > int32(in.imm) {
				goto jump
			}
		case opJSGe32X:
			if int32(r[in.dst&15]) >= int32(r[in.src&15]) {
				goto jump
			}
		case opJSGe32K:
			if int32(r[in.dst&15]) >= int32(in.imm) {
				goto jump
			}
		case opJLt32X:
			if uint32(r[in.dst&15]) < uint32(r[in.src&15]) {
				goto jump
			}
		case opJLt32K:
			if uint32(r[in.dst&15]) < uint32(in.imm) {
				goto jump
			}
		case opJLe32X:
			if uint32(r[in.dst&15]) <= uint32(r[in.src&15]) {
				goto jump
			}
		case opJLe32K:
			if uint32(r[in.dst&15]) <= uint32(in.imm) {
				goto jump
			}
		case opJSLt32X:
			if int32(r[in.dst&15]) < int32(r[in.src&15]) {
				goto jump
			}
		case opJSLt32K:
			if int32(r[in.dst&15]) < int32(in.imm) {
				goto jump
			}
		case opJSLe32X:
			if int32(r[in.dst&15]) <= int32(r[in.src&15]) {
				goto jump
			}
		case opJSLe32K:
			if int32(r[in.dst&15]) <= int32(in.imm) {
				goto jump
			}

		// Helpers: arguments truncated to u32, the i32 result
		// sign-extended into r0 (SPEC section 2).
		case opCallOpen:
			r[0] = uint64(int64(host.Open(mem, uint32(r[1]), uint32(r[2]))))
		case opCallCall:
			r[0] = uint64(int64(host.Call(mem, uint32(r[1]), uint32(r[2]), uint32(r[3]), uint32(r[4]), uint32(r[5]))))
		case opCallClose:
			r[0] = uint64(int64(host.Close(uint32(r[1]))))

		case opCallLocal:
			if depth+1 >= maxDepth {
				return 0, &runtime.Fault{Kind: runtime.FaultTrap,
					Err: fmt.Errorf("%w: more than %d nested calls (instruction %d)", ErrCallDepth, maxDepth, pc-1)}
			}
			f := &a.frames[depth]
			f.ret = pc
			f.regs = [4]uint64{r[6], r[7], r[8], r[9]}
			depth++
			r[regFP] -= frameSize
			fuel -= pc - seg
			pc = int(in.off)
			seg = pc
			if fuel < 0 {
				if err := poll(ctx, budget, pc); err != nil {
					return 0, err
				}
				fuel = checkpointFuel
			}
		case opExit:
			if depth == 0 {
				return int32(r[0]), nil
			}
			depth--
			f := &a.frames[depth]
			r[6], r[7], r[8], r[9] = f.regs[0], f.regs[1], f.regs[2], f.regs[3]
			r[regFP] += frameSize
			fuel -= pc - seg
			pc = f.ret
			seg = pc

		case opLDDW:
			r[in.dst&15] = uint64(in.imm)
			pc++

		case opLdxB:
			p := r[in.src&15] + uint64(int64(in.off))
			if o := p - stackLo; o <= stackMax1 {
				r[in.dst&15] = uint64(stack[o])
			} else if b := a.dataRef(p, 1, false); b != nil {
				r[in.dst&15] = uint64(b[0])
			} else {
				return 0, memFault(pc-1, "load", 1, p)
			}
		case opLdxH:
			p := r[in.src&15] + uint64(int64(in.off))
			if o := p - stackLo; o <= stackMax2 {
				r[in.dst&15] = uint64(le.Uint16(stack[o:]))
			} else if b := a.dataRef(p, 2, false); b != nil {
				r[in.dst&15] = uint64(le.Uint16(b))
			} else {
				return 0, memFault(pc-1, "load", 2, p)
			}
		case opLdxW:
			p := r[in.src&15] + uint64(int64(in.off))
			if o := p - stackLo; o <= stackMax4 {
				r[in.dst&15] = uint64(le.Uint32(stack[o:]))
			} else if b := a.dataRef(p, 4, false); b != nil {
				r[in.dst&15] = uint64(le.Uint32(b))
			} else {
				return 0, memFault(pc-1, "load", 4, p)
			}
		case opLdxDW:
			p := r[in.src&15] + uint64(int64(in.off))
			if o := p - stackLo; o <= stackMax8 {
				r[in.dst&15] = le.Uint64(stack[o:])
			} else if b := a.dataRef(p, 8, false); b != nil {
				r[in.dst&15] = le.Uint64(b)
			} else {
				return 0, memFault(pc-1, "load", 8, p)
			}
		case opLdxSB:
			p := r[in.src&15] + uint64(int64(in.off))
			b := a.ref(p, 1, false)
			if b == nil {
				return 0, memFault(pc-1, "load", 1, p)
			}
			r[in.dst&15] = uint64(int64(int8(b[0])))
		case opLdxSH:
			p := r[in.src&15] + uint64(int64(in.off))
			b := a.ref(p, 2, false)
			if b == nil {
				return 0, memFault(pc-1, "load", 2, p)
			}
			r[in.dst&15] = uint64(int64(int16(le.Uint16(b))))
		case opLdxSW:
			p := r[in.src&15] + uint64(int64(in.off))
			b := a.ref(p, 4, false)
			if b == nil {
				return 0, memFault(pc-1, "load", 4, p)
			}
			r[in.dst&15] = uint64(int64(int32(le.Uint32(b))))

		case opStB, opStxB:
			v := uint64(in.imm)
			if in.op == opStxB {
				v = r[in.src&15]
			}
			p := r[in.dst&15] + uint64(int64(in.off))
			if o := p - stackLo; o <= stackMax1 {
				stack[o] = byte(v)
			} else if b := a.dataRef(p, 1, true); b != nil {
				b[0] = byte(v)
			} else {
				return 0, memFault(pc-1, "store", 1, p)
			}
		case opStH, opStxH:
			v := uint64(in.imm)
			if in.op == opStxH {
				v = r[in.src&15]
			}
			p := r[in.dst&15] + uint64(int64(in.off))
			if o := p - stackLo; o <= stackMax2 {
				le.PutUint16(stack[o:], uint16(v))
			} else if b := a.dataRef(p, 2, true); b != nil {
				le.PutUint16(b, uint16(v))
			} else {
				return 0, memFault(pc-1, "store", 2, p)
			}
		case opStW, opStxW:
			v := uint64(in.imm)
			if in.op == opStxW {
				v = r[in.src&15]
			}
			p := r[in.dst&15] + uint64(int64(in.off))
			if o := p - stackLo; o <= stackMax4 {
				le.PutUint32(stack[o:], uint32(v))
			} else if b := a.dataRef(p, 4, true); b != nil {
				le.PutUint32(b, uint32(v))
			} else {
				return 0, memFault(pc-1, "store", 4, p)
			}
		case opStDW, opStxDW:
			v := uint64(in.imm)
			if in.op == opStxDW {
				v = r[in.src&15]
			}
			p := r[in.dst&15] + uint64(int64(in.off))
			if o := p - stackLo; o <= stackMax8 {
				le.PutUint64(stack[o:], v)
			} else if b := a.dataRef(p, 8, true); b != nil {
				le.PutUint64(b, v)
			} else {
				return 0, memFault(pc-1, "store", 8, p)
			}

		case opAtomicAdd32, opAtomicOr32, opAtomicAnd32, opAtomicXor32,
			opAtomicFetchAdd32, opAtomicFetchOr32, opAtomicFetchAnd32, opAtomicFetchXor32,
			opAtomicXchg32, opAtomicCmpXchg32:
			p := r[in.dst&15] + uint64(int64(in.off))
			b := a.ref(p, 4, true)
			if b == nil {
				return 0, memFault(pc-1, "atomic access", 4, p)
			}
			old, v := le.Uint32(b), uint32(r[in.src&15])
			le.PutUint32(b, atomic32(in.op, old, v, uint32(r[0])))
			switch in.op {
			case opAtomicCmpXchg32:
				r[0] = uint64(old)
			case opAtomicFetchAdd32, opAtomicFetchOr32, opAtomicFetchAnd32, opAtomicFetchXor32, opAtomicXchg32:
				r[in.src&15] = uint64(old)
			}
		case opAtomicAdd64, opAtomicOr64, opAtomicAnd64, opAtomicXor64,
			opAtomicFetchAdd64, opAtomicFetchOr64, opAtomicFetchAnd64, opAtomicFetchXor64,
			opAtomicXchg64, opAtomicCmpXchg64:
			p := r[in.dst&15] + uint64(int64(in.off))
			b := a.ref(p, 8, true)
			if b == nil {
				return 0, memFault(pc-1, "atomic access", 8, p)
			}
			old, v := le.Uint64(b), r[in.src&15]
			le.PutUint64(b, atomic64(in.op, old, v, r[0]))
			switch in.op {
			case opAtomicCmpXchg64:
				r[0] = old
			case opAtomicFetchAdd64, opAtomicFetchOr64, opAtomicFetchAnd64, opAtomicFetchXor64, opAtomicXchg64:
				r[in.src&15] = old
			}

		default: // opInvalid: the verifier lets no jump reach it
			return 0, &runtime.Fault{Kind: runtime.FaultTrap, Err: fmt.Errorf("invalid instruction %d", pc-1)}
		}
		continue

	jump:
		// A taken jump. Going backwards ends a straight run of code: count
		// it against the fuel and poll the budget when the fuel is out.
		if t := int(in.off); t >= pc {
			pc = t
		} else {
			fuel -= pc - seg
			pc = t
			seg = t
			if fuel < 0 {
				if err := poll(ctx, budget, pc); err != nil {
					return 0, err
				}
				fuel = checkpointFuel
			}
		}
	}
}

// atomic32 is the new value of a 32-bit atomic operation on old with
// operand v (and r0 for cmpxchg).
func atomic32(o op, old, v, r0 uint32) uint32 {
	switch o {
	case opAtomicAdd32, opAtomicFetchAdd32:
		return old + v
	case opAtomicOr32, opAtomicFetchOr32:
		return old | v
	case opAtomicAnd32, opAtomicFetchAnd32:
		return old & v
	case opAtomicXor32, opAtomicFetchXor32:
		return old ^ v
	case opAtomicXchg32:
		return v
	default: // cmpxchg
		if old == r0 {
			return v
		}
		return old
	}
}

func atomic64(o op, old, v, r0 uint64) uint64 {
	switch o {
	case opAtomicAdd64, opAtomicFetchAdd64:
		return old + v
	case opAtomicOr64, opAtomicFetchOr64:
		return old | v
	case opAtomicAnd64, opAtomicFetchAnd64:
		return old & v
	case opAtomicXor64, opAtomicFetchXor64:
		return old ^ v
	case opAtomicXchg64:
		return v
	default: // cmpxchg
		if old == r0 {
			return v
		}
		return old
	}
}
