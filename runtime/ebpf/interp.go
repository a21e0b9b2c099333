package ebpf

import (
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

// helperFuel is what one helper call costs: a budget poll at least every
// 32 host calls. The bytes a call hands the host are charged on top, at
// bytesPerFuel each (a byte the host copies or makes costs about an
// instruction, some endpoints much more: sensor/microphone synthesizes
// each sample),
// so a loop of calls moving large buffers polls sooner.
const (
	helperFuel   = checkpointFuel / 32
	bytesPerFuel = 1
)

// callFuel is what a tc.call with these lengths costs, counted in 64
// bits and at most checkpointFuel+1 (a poll at once, whatever fuel is
// left). A length of 2^31 or more was a negative int on 32-bit platforms:
// the call gave the guest up to 2^31 instructions of fuel, so no poll of
// its budget for seconds.
func callFuel(inLen, bufCap uint32) int {
	return int(min(helperFuel+uint64(max(inLen, bufCap))/bytesPerFuel, checkpointFuel+1))
}

// memFault is the fault of the access before instruction next. Taking
// the next index (the interpreter's pc) rather than the faulting one keeps
// the compiler from holding pc-1 in a register across the dispatch.
func memFault(next int, what string, size, addr uint64) error {
	return &runtime.Fault{Kind: runtime.FaultMemory,
		Err: fmt.Errorf("%w: %d-byte %s at %#x (instruction %d)", ErrMemoryAccess, size, what, addr, next-1)}
}

// depthFault is the fault of a call before instruction next that would
// nest more than max frames.
func depthFault(next, max int) error {
	return &runtime.Fault{Kind: runtime.FaultTrap,
		Err: fmt.Errorf("%w: more than %d nested calls (instruction %d)", ErrCallDepth, max, next-1)}
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

// checkpoint ends a straight run of code at instruction end (exclusive)
// and starts the next one at next. It polls the budget when the fuel is
// out.
func (a *activation) checkpoint(end, next int) error {
	a.fuel -= end - a.seg
	a.seg = next
	if a.fuel < 0 {
		return a.poll(next)
	}
	return nil
}

// branch is the pc after a jump to t taken by the instruction before pc.
// It is small enough to inline; only backward jumps call out.
func (a *activation) branch(pc, t int) int {
	if t < pc {
		return a.back(pc, t)
	}
	return t
}

// back is a backward jump, a checkpoint. When the budget is over it
// records the fault and sends the run to the halt instruction after the
// program, which keeps the error path out of the interpreter's jump cases.
func (a *activation) back(pc, t int) int {
	if err := a.checkpoint(pc, t); err != nil {
		a.err = err
		return a.halt
	}
	return t
}

// helped charges a helper call against the fuel and returns the pc to
// go on at (the halt instruction when the budget is over). A host call
// can take far longer than an instruction, so a loop of them must reach
// a poll soon whatever the loop's length.
func (a *activation) helped(cost int) int {
	a.fuel -= cost
	if a.fuel < 0 {
		if err := a.poll(a.pc); err != nil {
			a.err = err
			return a.halt
		}
	}
	return a.pc
}

// call is helper 2. When the host has the BufHost fast path and the
// buffer lies within one region, the buffer is handed over already
// checked, which saves the host a Memory.Read interface call; otherwise
// Host.Call checks it and reports the ABI's errors in their order.
func (a *activation) call(h, op, ptr, inLen, bufCap uint32) int32 {
	if a.bufHost != nil {
		if b := a.ref(uint64(ptr), uint64(max(inLen, bufCap)), false); b != nil {
			return a.bufHost.CallBuf(&a.mem, h, op, ptr, b, inLen, bufCap)
		}
	}
	return a.host.Call(&a.mem, h, op, ptr, inLen, bufCap)
}

// poll reports a budget fault if the activation must end now. The
// activation may also be suspended here (Budget.Checkpoint blocks until
// its scheduler resumes it); no machine code is on the stack then.
func (a *activation) poll(pc int) error {
	a.fuel = checkpointFuel
	if a.budget.Checkpoint() {
		return &runtime.Fault{Kind: runtime.FaultBudget, Err: fmt.Errorf("%w (instruction %d)", runtime.ErrBudget, pc)}
	}
	if err := a.ctx.Err(); err != nil {
		return &runtime.Fault{Kind: runtime.FaultBudget, Err: fmt.Errorf("%w: %w (instruction %d)", runtime.ErrBudget, err, pc)}
	}
	return nil
}

// run interprets prog from instruction 0 until the entry function exits.
// The code was verified: every jump lands on an instruction of its own
// function and every function ends in exit or ja, so pc never leaves prog.
//
// The loop keeps few locals live (the rest is in a) so that the Go
// compiler can hold them in registers.
func (a *activation) run(prog []insn) (int32, error) {
	var r [16]uint64 // r0-r10; indexing with &15 needs no bounds check
	r[regFP] = StackTop

	stack := a.mem.stack
	stackLo := StackTop - uint64(len(stack))
	a.depth, a.fuel, a.seg = 0, checkpointFuel, 0
	a.halt, a.err = len(prog)-1, nil

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
		case opMod64X:
			if d := r[in.src&15]; d != 0 {
				r[in.dst&15] %= d
			}
		case opMod64K:
			r[in.dst&15] %= uint64(in.imm)
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
		case opJA:
			pc = a.branch(pc, int(in.off))
		case opJEq64X:
			if r[in.dst&15] == r[in.src&15] {
				pc = a.branch(pc, int(in.off))
			}
		case opJEq64K:
			if r[in.dst&15] == uint64(in.imm) {
				pc = a.branch(pc, int(in.off))
			}
		case opJGt64X:
			if r[in.dst&15] > r[in.src&15] {
				pc = a.branch(pc, int(in.off))
			}
		case opJGt64K:
			if r[in.dst&15] > uint64(in.imm) {
				pc = a.branch(pc, int(in.off))
			}
		case opJGe64X:
			if r[in.dst&15] >= r[in.src&15] {
				pc = a.branch(pc, int(in.off))
			}
		case opJGe64K:
			if r[in.dst&15] >= uint64(in.imm) {
				pc = a.branch(pc, int(in.off))
			}
		case opJSet64X:
			if r[in.dst&15]&r[in.src&15] != 0 {
				pc = a.branch(pc, int(in.off))
			}
		case opJSet64K:
			if r[in.dst&15]&uint64(in.imm) != 0 {
				pc = a.branch(pc, int(in.off))
			}
		case opJNe64X:
			if r[in.dst&15] != r[in.src&15] {
				pc = a.branch(pc, int(in.off))
			}
		case opJNe64K:
			if r[in.dst&15] != uint64(in.imm) {
				pc = a.branch(pc, int(in.off))
			}
		case opJSGt64X:
			if int64(r[in.dst&15]) > int64(r[in.src&15]) {
				pc = a.branch(pc, int(in.off))
			}
		case opJSGt64K:
			if int64(r[in.dst&15]) > in.imm {
				pc = a.branch(pc, int(in.off))
			}
		case opJSGe64X:
			if int64(r[in.dst&15]) >= int64(r[in.src&15]) {
				pc = a.branch(pc, int(in.off))
			}
		case opJSGe64K:
			if int64(r[in.dst&15]) >= in.imm {
				pc = a.branch(pc, int(in.off))
			}
		case opJLt64X:
			if r[in.dst&15] < r[in.src&15] {
				pc = a.branch(pc, int(in.off))
			}
		case opJLt64K:
			if r[in.dst&15] < uint64(in.imm) {
				pc = a.branch(pc, int(in.off))
			}
		case opJLe64X:
			if r[in.dst&15] <= r[in.src&15] {
				pc = a.branch(pc, int(in.off))
			}
		case opJLe64K:
			if r[in.dst&15] <= uint64(in.imm) {
				pc = a.branch(pc, int(in.off))
			}
		case opJSLt64X:
			if int64(r[in.dst&15]) < int64(r[in.src&15]) {
				pc = a.branch(pc, int(in.off))
			}
		case opJSLt64K:
			if int64(r[in.dst&15]) < in.imm {
				pc = a.branch(pc, int(in.off))
			}
		case opJSLe64X:
			if int64(r[in.dst&15]) <= int64(r[in.src&15]) {
				pc = a.branch(pc, int(in.off))
			}
		case opJSLe64K:
			if int64(r[in.dst&15]) <= in.imm {
				pc = a.branch(pc, int(in.off))
			}
		case opJEq32X:
			if uint32(r[in.dst&15]) == uint32(r[in.src&15]) {
				pc = a.branch(pc, int(in.off))
			}
		case opJEq32K:
			if uint32(r[in.dst&15]) == uint32(in.imm) {
				pc = a.branch(pc, int(in.off))
			}
		case opJGt32X:
			if uint32(r[in.dst&15]) > uint32(r[in.src&15]) {
				pc = a.branch(pc, int(in.off))
			}
		case opJGt32K:
			if uint32(r[in.dst&15]) > uint32(in.imm) {
				pc = a.branch(pc, int(in.off))
			}
		case opJGe32X:
			if uint32(r[in.dst&15]) >= uint32(r[in.src&15]) {
				pc = a.branch(pc, int(in.off))
			}
		case opJGe32K:
			if uint32(r[in.dst&15]) >= uint32(in.imm) {
				pc = a.branch(pc, int(in.off))
			}
		case opJNe32X:
			if uint32(r[in.dst&15]) != uint32(r[in.src&15]) {
				pc = a.branch(pc, int(in.off))
			}
		case opJNe32K:
			if uint32(r[in.dst&15]) != uint32(in.imm) {
				pc = a.branch(pc, int(in.off))
			}
		case opJSGt32X:
			if int32(r[in.dst&15]) > int32(r[in.src&15]) {
				pc = a.branch(pc, int(in.off))
			}
		case opJSGt32K:
			if int32(r[in.dst&15]) > int32(in.imm) {
				pc = a.branch(pc, int(in.off))
			}
		case opJSGe32X:
			if int32(r[in.dst&15]) >= int32(r[in.src&15]) {
				pc = a.branch(pc, int(in.off))
			}
		case opJSGe32K:
			if int32(r[in.dst&15]) >= int32(in.imm) {
				pc = a.branch(pc, int(in.off))
			}
		case opJLt32X:
			if uint32(r[in.dst&15]) < uint32(r[in.src&15]) {
				pc = a.branch(pc, int(in.off))
			}
		case opJLt32K:
			if uint32(r[in.dst&15]) < uint32(in.imm) {
				pc = a.branch(pc, int(in.off))
			}
		case opJLe32X:
			if uint32(r[in.dst&15]) <= uint32(r[in.src&15]) {
				pc = a.branch(pc, int(in.off))
			}
		case opJLe32K:
			if uint32(r[in.dst&15]) <= uint32(in.imm) {
				pc = a.branch(pc, int(in.off))
			}
		case opJSLt32X:
			if int32(r[in.dst&15]) < int32(r[in.src&15]) {
				pc = a.branch(pc, int(in.off))
			}
		case opJSLt32K:
			if int32(r[in.dst&15]) < int32(in.imm) {
				pc = a.branch(pc, int(in.off))
			}
		case opJSLe32X:
			if int32(r[in.dst&15]) <= int32(r[in.src&15]) {
				pc = a.branch(pc, int(in.off))
			}
		case opJSLe32K:
			if int32(r[in.dst&15]) <= int32(in.imm) {
				pc = a.branch(pc, int(in.off))
			}

		// Helpers: arguments truncated to u32, the i32 result
		// sign-extended into r0 (SPEC section 2).
		case opCallOpen:
			// pc goes through memory so that no register value has to
			// survive the call (which would cost a spill on every dispatch).
			a.pc = pc
			r[0] = uint64(int64(a.host.Open(&a.mem, uint32(r[1]), uint32(r[2]))))
			pc = a.helped(helperFuel)
		case opCallCall:
			a.pc = pc
			r[0] = uint64(int64(a.call(uint32(r[1]), uint32(r[2]), uint32(r[3]), uint32(r[4]), uint32(r[5]))))
			pc = a.helped(callFuel(uint32(r[4]), uint32(r[5])))
		case opCallClose:
			a.pc = pc
			r[0] = uint64(int64(a.host.Close(uint32(r[1]))))
			pc = a.helped(helperFuel)

		case opCallLocal:
			if a.depth+1 >= len(stack)/frameSize {
				return 0, depthFault(pc, len(stack)/frameSize)
			}
			f := &a.frames[a.depth]
			f.ret = pc
			f.regs = [4]uint64{r[6], r[7], r[8], r[9]}
			a.depth++
			r[regFP] -= frameSize
			pc = a.back(pc, int(in.off)) // a checkpoint, like a backward jump
		case opExit:
			if a.depth == 0 {
				return int32(r[0]), nil
			}
			a.depth--
			f := &a.frames[a.depth]
			r[6], r[7], r[8], r[9] = f.regs[0], f.regs[1], f.regs[2], f.regs[3]
			r[regFP] += frameSize
			pc = a.back(pc, f.ret)

		case opLDDW:
			r[in.dst&15] = uint64(in.imm)
			pc++

		case opLdxB:
			p := r[in.src&15] + uint64(int64(in.off))
			if o := p - stackLo; o < uint64(len(stack)) {
				r[in.dst&15] = uint64(stack[o])
			} else if b := a.dataRef(p, 1, false); b != nil {
				r[in.dst&15] = uint64(b[0])
			} else {
				return 0, memFault(pc, "load", 1, p)
			}
		case opLdxH:
			p := r[in.src&15] + uint64(int64(in.off))
			if o := p - stackLo; o < uint64(len(stack))-1 {
				r[in.dst&15] = uint64(le.Uint16(stack[o:]))
			} else if b := a.dataRef(p, 2, false); b != nil {
				r[in.dst&15] = uint64(le.Uint16(b))
			} else {
				return 0, memFault(pc, "load", 2, p)
			}
		case opLdxW:
			p := r[in.src&15] + uint64(int64(in.off))
			if o := p - stackLo; o < uint64(len(stack))-3 {
				r[in.dst&15] = uint64(le.Uint32(stack[o:]))
			} else if b := a.dataRef(p, 4, false); b != nil {
				r[in.dst&15] = uint64(le.Uint32(b))
			} else {
				return 0, memFault(pc, "load", 4, p)
			}
		case opLdxDW:
			p := r[in.src&15] + uint64(int64(in.off))
			if o := p - stackLo; o < uint64(len(stack))-7 {
				r[in.dst&15] = le.Uint64(stack[o:])
			} else if b := a.dataRef(p, 8, false); b != nil {
				r[in.dst&15] = le.Uint64(b)
			} else {
				return 0, memFault(pc, "load", 8, p)
			}
		case opStB:
			v := uint64(in.imm)
			p := r[in.dst&15] + uint64(int64(in.off))
			if o := p - stackLo; o < uint64(len(stack)) {
				stack[o] = byte(v)
			} else if b := a.dataRef(p, 1, true); b != nil {
				b[0] = byte(v)
			} else {
				return 0, memFault(pc, "store", 1, p)
			}
		case opStxB:
			v := r[in.src&15]
			p := r[in.dst&15] + uint64(int64(in.off))
			if o := p - stackLo; o < uint64(len(stack)) {
				stack[o] = byte(v)
			} else if b := a.dataRef(p, 1, true); b != nil {
				b[0] = byte(v)
			} else {
				return 0, memFault(pc, "store", 1, p)
			}
		case opStH:
			v := uint64(in.imm)
			p := r[in.dst&15] + uint64(int64(in.off))
			if o := p - stackLo; o < uint64(len(stack))-1 {
				le.PutUint16(stack[o:], uint16(v))
			} else if b := a.dataRef(p, 2, true); b != nil {
				le.PutUint16(b, uint16(v))
			} else {
				return 0, memFault(pc, "store", 2, p)
			}
		case opStxH:
			v := r[in.src&15]
			p := r[in.dst&15] + uint64(int64(in.off))
			if o := p - stackLo; o < uint64(len(stack))-1 {
				le.PutUint16(stack[o:], uint16(v))
			} else if b := a.dataRef(p, 2, true); b != nil {
				le.PutUint16(b, uint16(v))
			} else {
				return 0, memFault(pc, "store", 2, p)
			}
		case opStW:
			v := uint64(in.imm)
			p := r[in.dst&15] + uint64(int64(in.off))
			if o := p - stackLo; o < uint64(len(stack))-3 {
				le.PutUint32(stack[o:], uint32(v))
			} else if b := a.dataRef(p, 4, true); b != nil {
				le.PutUint32(b, uint32(v))
			} else {
				return 0, memFault(pc, "store", 4, p)
			}
		case opStxW:
			v := r[in.src&15]
			p := r[in.dst&15] + uint64(int64(in.off))
			if o := p - stackLo; o < uint64(len(stack))-3 {
				le.PutUint32(stack[o:], uint32(v))
			} else if b := a.dataRef(p, 4, true); b != nil {
				le.PutUint32(b, uint32(v))
			} else {
				return 0, memFault(pc, "store", 4, p)
			}
		case opStDW:
			v := uint64(in.imm)
			p := r[in.dst&15] + uint64(int64(in.off))
			if o := p - stackLo; o < uint64(len(stack))-7 {
				le.PutUint64(stack[o:], v)
			} else if b := a.dataRef(p, 8, true); b != nil {
				le.PutUint64(b, v)
			} else {
				return 0, memFault(pc, "store", 8, p)
			}

		case opStxDW:
			v := r[in.src&15]
			p := r[in.dst&15] + uint64(int64(in.off))
			if o := p - stackLo; o < uint64(len(stack))-7 {
				le.PutUint64(stack[o:], v)
			} else if b := a.dataRef(p, 8, true); b != nil {
				le.PutUint64(b, v)
			} else {
				return 0, memFault(pc, "store", 8, p)
			}

		case opMovAdd64K:
			r[in.dst&15] = r[in.src&15] + uint64(in.imm)
			pc++
		case opMovAnd64K:
			r[in.dst&15] = r[in.src&15] & uint64(in.imm)
			pc++
		case opMovLsh64K:
			r[in.dst&15] = r[in.src&15] << uint64(in.imm)
			pc++
		case opMovRsh64K:
			r[in.dst&15] = r[in.src&15] >> uint64(in.imm)
			pc++
		case opMovArsh64K:
			r[in.dst&15] = uint64(int64(r[in.src&15]) >> uint64(in.imm))
			pc++
		case opLdAdd64X:
			r[in.dst&15] = uint64(in.imm) + r[in.src&15]
			pc += 2
		case opLdAddLdxB:
			r[in.dst&15] = uint64(in.imm) + r[in.src&15]
			p := r[in.dst&15] + uint64(int64(in.off))
			if o := p - stackLo; o < uint64(len(stack)) {
				r[in.aux&15] = uint64(stack[o])
			} else if b := a.dataRef(p, 1, false); b != nil {
				r[in.aux&15] = uint64(b[0])
			} else {
				return 0, memFault(pc+3, "load", 1, p)
			}
			pc += 3
		case opLdAddLdxH:
			r[in.dst&15] = uint64(in.imm) + r[in.src&15]
			p := r[in.dst&15] + uint64(int64(in.off))
			if o := p - stackLo; o < uint64(len(stack))-1 {
				r[in.aux&15] = uint64(le.Uint16(stack[o:]))
			} else if b := a.dataRef(p, 2, false); b != nil {
				r[in.aux&15] = uint64(le.Uint16(b))
			} else {
				return 0, memFault(pc+3, "load", 2, p)
			}
			pc += 3
		case opLdAddLdxW:
			r[in.dst&15] = uint64(in.imm) + r[in.src&15]
			p := r[in.dst&15] + uint64(int64(in.off))
			if o := p - stackLo; o < uint64(len(stack))-3 {
				r[in.aux&15] = uint64(le.Uint32(stack[o:]))
			} else if b := a.dataRef(p, 4, false); b != nil {
				r[in.aux&15] = uint64(le.Uint32(b))
			} else {
				return 0, memFault(pc+3, "load", 4, p)
			}
			pc += 3
		case opLdAddLdxDW:
			r[in.dst&15] = uint64(in.imm) + r[in.src&15]
			p := r[in.dst&15] + uint64(int64(in.off))
			if o := p - stackLo; o < uint64(len(stack))-7 {
				r[in.aux&15] = le.Uint64(stack[o:])
			} else if b := a.dataRef(p, 8, false); b != nil {
				r[in.aux&15] = le.Uint64(b)
			} else {
				return 0, memFault(pc+3, "load", 8, p)
			}
			pc += 3
		case opZext32:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]))
			pc++
		case opSext32:
			r[in.dst&15] = uint64(int64(int32(r[in.dst&15])))
			pc++

		case opMovZext32:
			r[in.dst&15] = uint64(uint32(r[in.src&15]))
			pc += 2
		case opMovSext32:
			r[in.dst&15] = uint64(int64(int32(r[in.src&15])))
			pc += 2
		case opMovMov:
			r[in.dst&15] = r[in.src&15]
			r[in.aux&15] = r[in.off&15]
			pc++
		case opAndRsh64:
			r[in.dst&15] = (r[in.dst&15] & r[in.src&15]) >> uint64(in.imm)
			pc++
		case opXorLsh64:
			r[in.dst&15] = (r[in.dst&15] ^ r[in.src&15]) << uint64(in.imm)
			pc++

		case opHalt: // where branch sends a run that must end
			return 0, a.err

		default:
			// Everything else runs out of line: a smaller switch leaves the
			// register allocator room to keep the dispatch state in
			// registers.
			pc = a.rare(prog, &r, pc)
		}

	}
}

// rare runs the operations that clang seldom emits in hot loops (signed
// and 32-bit division, negation, sign extension, byte swaps, jset32,
// sign-extending loads, atomics) for run: prog[pc-1]. pc is the next
// instruction's;
// it returns the pc to go on at, the halt instruction after a fault
// (recorded in a.err).
//
//go:noinline
func (a *activation) rare(prog []insn, r *[16]uint64, pc int) int {
	if err := a.rareOp(&prog[pc-1], r, pc); err != nil {
		a.err = err
		return a.halt
	}
	return a.pc
}

func (a *activation) rareOp(in *insn, r *[16]uint64, pc int) error {
	a.pc = pc
	switch in.op {
	case opSDiv64X:
		if d := int64(r[in.src&15]); d == 0 {
			r[in.dst&15] = 0
		} else {
			r[in.dst&15] = uint64(int64(r[in.dst&15]) / d)
		}
	case opSDiv64K:
		r[in.dst&15] = uint64(int64(r[in.dst&15]) / in.imm)
	case opNeg64:
		r[in.dst&15] = -r[in.dst&15]
	case opSMod64X:
		if d := int64(r[in.src&15]); d != 0 {
			r[in.dst&15] = uint64(int64(r[in.dst&15]) % d)
		}
	case opSMod64K:
		r[in.dst&15] = uint64(int64(r[in.dst&15]) % in.imm)
	case opMovSX8to64:
		r[in.dst&15] = uint64(int64(int8(r[in.src&15])))
	case opMovSX16to64:
		r[in.dst&15] = uint64(int64(int16(r[in.src&15])))
	case opMovSX32to64:
		r[in.dst&15] = uint64(int64(int32(r[in.src&15])))

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

	case opJSet32X:
		if uint32(r[in.dst&15])&uint32(r[in.src&15]) != 0 {
			a.pc = a.branch(a.pc, int(in.off))
		}
	case opJSet32K:
		if uint32(r[in.dst&15])&uint32(in.imm) != 0 {
			a.pc = a.branch(a.pc, int(in.off))
		}
	case opLdxSB, opLdxSH, opLdxSW:
		size := uint64(1) << (in.op - opLdxSB)
		p := r[in.src&15] + uint64(int64(in.off))
		b := a.ref(p, size, false)
		if b == nil {
			return memFault(a.pc, "load", size, p)
		}
		switch in.op {
		case opLdxSB:
			r[in.dst&15] = uint64(int64(int8(b[0])))
		case opLdxSH:
			r[in.dst&15] = uint64(int64(int16(le.Uint16(b))))
		default:
			r[in.dst&15] = uint64(int64(int32(le.Uint32(b))))
		}
	case opAtomicAdd32, opAtomicOr32, opAtomicAnd32, opAtomicXor32,
		opAtomicFetchAdd32, opAtomicFetchOr32, opAtomicFetchAnd32, opAtomicFetchXor32,
		opAtomicXchg32, opAtomicCmpXchg32,
		opAtomicAdd64, opAtomicOr64, opAtomicAnd64, opAtomicXor64,
		opAtomicFetchAdd64, opAtomicFetchOr64, opAtomicFetchAnd64, opAtomicFetchXor64,
		opAtomicXchg64, opAtomicCmpXchg64:
		p := r[in.dst&15] + uint64(int64(in.off))
		if size := a.atomic(in.op, p, &r[in.src&15], &r[0]); size != 0 {
			return memFault(a.pc, "atomic access", size, p)
		}
	default: // opInvalid: the verifier lets no jump reach it
		return &runtime.Fault{Kind: runtime.FaultTrap, Err: fmt.Errorf("invalid instruction %d", a.pc-1)}
	}
	return nil
}

// atomic performs atomic operation o on the memory at p with operand
// *src, returning the old value in *src or *r0 as o asks. It returns the
// access size when p is outside the writable memory, else 0.
func (a *activation) atomic(o op, p uint64, src, r0 *uint64) uint64 {
	if (o-opAtomicAdd32)%2 == 0 {
		b := a.ref(p, 4, true)
		if b == nil {
			return 4
		}
		old := le.Uint32(b)
		le.PutUint32(b, atomic32(o, old, uint32(*src), uint32(*r0)))
		switch o {
		case opAtomicCmpXchg32:
			*r0 = uint64(old)
		case opAtomicFetchAdd32, opAtomicFetchOr32, opAtomicFetchAnd32, opAtomicFetchXor32, opAtomicXchg32:
			*src = uint64(old)
		}
		return 0
	}
	b := a.ref(p, 8, true)
	if b == nil {
		return 8
	}
	old := le.Uint64(b)
	le.PutUint64(b, atomic64(o, old, *src, *r0))
	switch o {
	case opAtomicCmpXchg64:
		*r0 = old
	case opAtomicFetchAdd64, opAtomicFetchOr64, opAtomicFetchAnd64, opAtomicFetchXor64, opAtomicXchg64:
		*src = old
	}
	return 0
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
