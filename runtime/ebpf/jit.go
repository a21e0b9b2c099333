package ebpf

import (
	"fmt"
	goruntime "runtime"
	"unsafe"
)

// MaxMachineCode bounds the executable memory of one module. Code
// generation stops as soon as it is passed, so it also bounds the time
// spent: a program that needs more (the longest, 65,536 slots of memory
// accesses, needs 5.3 MB and 0.4 s of CPU) runs in the interpreter, on
// every platform alike, as when the platform has no executable memory.
const MaxMachineCode = 1 << 20

// errMachineCode: the program needs more than MaxMachineCode.
var errMachineCode = fmt.Errorf("ebpf: jit: more than %d bytes of machine code", MaxMachineCode)

// Why generated code returned to runJIT (jitState.exit).
const (
	exitDone  = iota // the entry function returned r0
	exitOpen         // helper 1 (open) at arg; go on at resume
	exitCall         // helper 2 (call)
	exitClose        // helper 3 (close)
	exitPoll         // fuel ran out at arg: poll the budget, go on at resume
	exitStep         // rare instruction at arg for the interpreter; go on at resume
	exitMem          // memory fault by instruction arg at guest address addr
	exitDepth        // call at arg nests too deep
)

// jitState is what generated code reads and writes besides the guest
// registers it holds: the register file between exits, the fuel, where
// to go on, and the host addresses of the container's memory. Its
// layout is read by the code generator through unsafe.Offsetof.
type jitState struct {
	regs   [16]uint64 // r0-r10 between exits; r10 always current
	fuel   int64
	resume uintptr // code address the next entry jumps to
	exit   uint32
	arg    uint32
	addr   uint64    // faulting guest address
	depth  uint64    // frames below the entry function's
	hostFP uintptr   // host address of guest r10
	stack  uintptr   // host address of the lowest stack byte
	data   uintptr   // host address of DataBase (0 when there is no data)
	save   [2]uint64 // guest registers parked around a few x86 sequences
	frames [maxCallDepth]jitFrame
}

// jitFrame is a suspended caller: return address (code and instruction
// index) and r6-r9. 64 bytes, so the code indexes with a shift.
type jitFrame struct {
	ret    uintptr
	retIdx uint64
	regs   [4]uint64
	_      [2]uint64
}

// runJIT runs the module's machine code until the entry function exits,
// serving its exits: helper calls, budget polls, the rare instructions
// the code generator leaves to the interpreter, and faults.
func (a *activation) runJIT(j *jitCode, prog []insn) (int32, error) {
	st := &a.jit
	st.regs = [16]uint64{regFP: StackTop}
	st.fuel, st.depth = checkpointFuel, 0
	stack := a.mem.stack
	st.stack = uintptr(unsafe.Pointer(unsafe.SliceData(stack)))
	st.hostFP = st.stack + uintptr(len(stack))
	st.data = uintptr(unsafe.Pointer(unsafe.SliceData(a.mem.data)))
	st.resume = j.startPC()
	defer goruntime.KeepAlive(j)
	defer goruntime.KeepAlive(a)
	for {
		jitCall(j.entryPC(), st)
		pc := int(st.arg)
		switch st.exit {
		case exitDone:
			return int32(st.regs[0]), nil
		case exitCall, exitOpen, exitClose:
			r := &st.regs
			cost := helperFuel
			switch st.exit {
			case exitCall:
				// a.call, with its commonest case (a buffer on the stack)
				// written out: it saves a call per helper call.
				ptr, inLen, bufCap := uint32(r[3]), uint32(r[4]), uint32(r[5])
				n := uint64(max(inLen, bufCap))
				cost = callFuel(inLen, bufCap)
				if o := uint64(ptr) - (StackTop - uint64(len(stack))); a.bufHost != nil && o < uint64(len(stack)) && uint64(len(stack))-o >= n {
					r[0] = uint64(int64(a.bufHost.CallBuf(&a.mem, uint32(r[1]), uint32(r[2]), ptr, stack[o:o+n:o+n], inLen, bufCap)))
				} else {
					r[0] = uint64(int64(a.call(uint32(r[1]), uint32(r[2]), ptr, inLen, bufCap)))
				}
			case exitOpen:
				r[0] = uint64(int64(a.host.Open(&a.mem, uint32(r[1]), uint32(r[2]))))
			default:
				r[0] = uint64(int64(a.host.Close(uint32(r[1]))))
			}
			if st.fuel -= int64(cost); st.fuel < 0 {
				if err := a.poll(pc + 1); err != nil {
					return 0, err
				}
				st.fuel = checkpointFuel
			}
		case exitPoll:
			if err := a.poll(pc); err != nil {
				return 0, err
			}
			st.fuel = checkpointFuel
		case exitStep:
			if err := a.rareOp(&prog[pc], &st.regs, pc+1); err != nil {
				return 0, err
			}
		case exitMem:
			in := &prog[pc]
			what := "load"
			if in.op >= opStB {
				what = "store"
			}
			return 0, memFault(pc+1, what, accessSize(in.op), st.addr)
		default: // exitDepth
			return 0, depthFault(pc+1, len(stack)/frameSize)
		}
	}
}

// accessSize is the width of a load or store (not atomic).
func accessSize(o op) uint64 {
	switch {
	case o >= opLdxB && o <= opLdxDW:
		return 1 << (o - opLdxB)
	case o >= opLdxSB && o <= opLdxSW:
		return 1 << (o - opLdxSB)
	case o >= opStB && o <= opStDW:
		return 1 << (o - opStB)
	default:
		return 1 << (o - opStxB)
	}
}
