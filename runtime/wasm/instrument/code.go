package instrument

import (
	"fmt"

	"github.com/tinycontainer/tinycontainer/runtime"
)

// maxLocals bounds the locals of one function: every local is a slot of
// every frame, so this bounds a frame's size.
const maxLocals = 50000

// region is straight-line code that runs once per pass: a function's
// top level (once per call) or a loop body (once per iteration), nested
// loops excluded. base counts its instructions; calls lists the defined
// functions it calls directly, whose cost depends on their class.
type region struct {
	base  uint64
	calls []uint32 // defined-function indices (0-based among defined)
}

// fnInfo is what the first pass learns about one function body.
type fnInfo struct {
	exprStart  int    // offset of the first instruction
	localDecls []byte // the raw local declarations (after their count)
	nDecls     uint32
	nLocals    uint64
	hasLoop    bool
	indirect   bool     // call_indirect or return_call_indirect
	callees    []uint32 // defined-function indices called directly
	regions    []region // [0] is the top level, then loops in order
	refFuncs   []uint32 // ref.func operands (module function indices)
}

// costs are the cost units the analysis charges for what one instruction
// cannot show.
type costs struct {
	bulk     uint64 // memory.fill/copy/init/grow and table bulk ops
	indirect uint64 // an indirect call may reach an uninstrumented function
}

// analyze decodes a body completely, checking its structure, and collects
// the facts that classify it.
//
// Indices of locals and globals are checked here because the instrumented
// module has more of both: a reference past the guest's own, invalid in
// the original, would reach the fuel counter in the output.
func analyze(b body, nImports, funcIdx uint32, nParams int, nGlobals uint32, c costs, fi *fnInfo) error {
	r := &reader{b: b.b, base: b.base}
	n, err := count(r, 2)
	if err != nil {
		return err
	}
	declStart := r.off
	for i := uint32(0); i < n; i++ {
		cnt, err := r.u32()
		if err != nil {
			return err
		}
		t, err := r.byte()
		if err != nil {
			return err
		}
		if !isValType(t) {
			return r.errorf("function %d: unknown local type %#02x", funcIdx, t)
		}
		fi.nLocals += uint64(cnt)
		if fi.nLocals > maxLocals {
			return fmt.Errorf("%w: function %d declares more than %d locals", runtime.ErrLimit, funcIdx, maxLocals)
		}
	}
	fi.nDecls = n
	fi.localDecls = b.b[declStart:r.off]
	fi.exprStart = r.off
	fi.regions = []region{{}}
	// For each open label, the region that resumes after its end.
	outer := []int{0}
	cur := 0
	for {
		if r.eof() {
			return r.errorf("function %d: body ends without end", funcIdx)
		}
		in, err := decodeInst(r)
		if err != nil {
			return fmt.Errorf("function %d: %w", funcIdx, err)
		}
		fi.regions[cur].base++
		switch in.kind {
		case kBlock:
			outer = append(outer, cur)
		case kLoop:
			fi.hasLoop = true
			outer = append(outer, cur)
			fi.regions = append(fi.regions, region{})
			cur = len(fi.regions) - 1
		case kEnd:
			cur = outer[len(outer)-1]
			outer = outer[:len(outer)-1]
			if len(outer) == 0 {
				if !r.eof() {
					return r.errorf("function %d: %d bytes after the final end", funcIdx, r.left())
				}
				return nil
			}
		case kCall, kReturnCall:
			if in.idx >= nImports {
				d := in.idx - nImports
				fi.callees = append(fi.callees, d)
				fi.regions[cur].calls = append(fi.regions[cur].calls, d)
			}
		case kCallIndirect, kReturnCallIndirect:
			fi.indirect = true
			fi.regions[cur].base += c.indirect
		case kRefFunc:
			fi.refFuncs = append(fi.refFuncs, in.idx)
		case kBulk:
			fi.regions[cur].base += c.bulk
		case kLocal:
			if uint64(in.idx) >= uint64(nParams)+fi.nLocals {
				return r.errorf("function %d: local %d out of range", funcIdx, in.idx)
			}
		case kGlobal:
			if in.idx >= nGlobals {
				return r.errorf("function %d: global %d out of range", funcIdx, in.idx)
			}
		}
	}
}

// Function classes.
const (
	// classFree: no loop, no recursion, no indirect call and at most
	// freeCost units including its callees: left as is, its callers
	// charge its cost where they call it.
	classFree = iota
	// classEntry: no loop; the fuel global is charged at entry.
	classEntry
	// classLocal: has loops; fuel lives in a local (a register in
	// compiled code) and is synchronized with the global around calls.
	classLocal
)

// plan is how one function is rewritten.
type plan struct {
	class     int
	recursive bool   // tracks call depth
	inclusive uint64 // classFree: cost of a call including callees
	frame     int32  // classFree excluded: estimated frame bytes
	weights   []int32
}

// wrapped reports whether the body needs an epilogue on every exit.
func (p *plan) wrapped() bool { return p.class == classLocal || p.recursive }

// emitter writes instrumented code for one function.
type emitter struct {
	out        []byte
	fuel       uint32 // global index of the fuel counter
	depth      uint32 // global index of the depth counter
	checkpoint uint32 // function index of the checkpoint import
	interval   int32
	stackLimit int32
	local      uint32 // index of the added local
	p          *plan
}

func (e *emitter) op(b ...byte) { e.out = append(e.out, b...) }
func (e *emitter) u32(v uint32) { e.out = appendU32(e.out, v) }
func (e *emitter) i32(v int32)  { e.op(0x41); e.out = appendS32(e.out, v) }

// fuelCheck charges w and calls the checkpoint when the fuel runs out.
func (e *emitter) fuelCheck(w int32) {
	if e.p.class == classLocal {
		e.op(0x20)
		e.u32(e.local) // local.get L
	} else {
		e.op(0x23)
		e.u32(e.fuel) // global.get F
	}
	e.i32(w)
	e.op(0x6B, 0x22) // i32.sub; local.tee L
	e.u32(e.local)
	if e.p.class == classEntry {
		e.op(0x24)
		e.u32(e.fuel) // global.set F
		e.op(0x20)
		e.u32(e.local) // local.get L
	}
	e.i32(0)
	e.op(0x48, 0x04, 0x40, 0x10) // i32.lt_s; if; call checkpoint
	e.u32(e.checkpoint)
	e.i32(e.interval)
	if e.p.class == classLocal {
		e.op(0x21)
		e.u32(e.local)
	} else {
		e.op(0x24)
		e.u32(e.fuel)
	}
	e.op(0x0B)
}

func (e *emitter) prologue() {
	if e.p.recursive {
		e.op(0x23)
		e.u32(e.depth) // global.get D
		e.i32(e.p.frame)
		e.op(0x6A, 0x22) // i32.add; local.tee L
		e.u32(e.local)
		e.op(0x24)
		e.u32(e.depth) // global.set D
		e.op(0x20)
		e.u32(e.local)
		e.i32(e.stackLimit)
		e.op(0x4B, 0x04, 0x40, 0x00, 0x0B) // i32.gt_u; if; unreachable; end
	}
	if e.p.class == classLocal {
		e.op(0x23)
		e.u32(e.fuel)
		e.op(0x21)
		e.u32(e.local) // L = F
	}
	e.fuelCheck(e.p.weights[0])
}

func (e *emitter) epilogue() {
	if e.p.class == classLocal {
		e.syncOut()
	}
	if e.p.recursive {
		e.op(0x23)
		e.u32(e.depth)
		e.i32(e.p.frame)
		e.op(0x6B, 0x24) // i32.sub; global.set D
		e.u32(e.depth)
	}
}

func (e *emitter) syncOut() { e.op(0x20); e.u32(e.local); e.op(0x24); e.u32(e.fuel) }
func (e *emitter) syncIn()  { e.op(0x23); e.u32(e.fuel); e.op(0x21); e.u32(e.local) }

// rewriteBody instruments one function body. renum maps module function
// indices to their new values; syncs reports whether a direct call to a
// module function index can spend fuel.
func rewriteBody(e *emitter, b body, fi *fnInfo, blockType []byte, renum func(uint32) uint32, syncs func(uint32) bool) error {
	p := e.p
	if p.class == classFree {
		e.out = appendU32(e.out, fi.nDecls)
	} else {
		e.out = appendU32(e.out, fi.nDecls+1)
	}
	e.out = append(e.out, fi.localDecls...)
	if p.class != classFree {
		e.op(1, 0x7F) // one i32 local
		e.prologue()
		if p.wrapped() {
			e.op(0x02)
			e.op(blockType...)
		}
	}
	r := &reader{b: b.b, base: b.base, off: fi.exprStart}
	depth := 1
	loop := 0
	for {
		in, err := decodeInst(r)
		if err != nil {
			return err // cannot happen: analyze decoded the same bytes
		}
		raw := b.b[in.start:in.end]
		switch in.kind {
		case kBlock:
			depth++
		case kLoop:
			depth++
			loop++
			e.op(raw...)
			if p.class == classLocal {
				e.fuelCheck(p.weights[loop])
			}
			continue
		case kEnd:
			depth--
			if depth == 0 {
				if p.wrapped() {
					e.op(0x0B)
					e.epilogue()
				}
				e.op(0x0B)
				return nil
			}
		case kReturn:
			if p.wrapped() {
				e.epilogue()
			}
		case kCall:
			sync := p.class == classLocal && syncs(in.idx)
			if sync {
				e.syncOut()
			}
			e.op(b.b[in.start:in.idxStart]...)
			e.u32(renum(in.idx))
			if sync {
				e.syncIn()
			}
			continue
		case kCallIndirect:
			if p.class == classLocal {
				e.syncOut()
				e.op(raw...)
				e.syncIn()
				continue
			}
		case kReturnCall, kReturnCallIndirect:
			if p.wrapped() {
				e.epilogue()
			}
			if in.kind == kReturnCall {
				e.op(b.b[in.start:in.idxStart]...)
				e.u32(renum(in.idx))
				continue
			}
		case kRefFunc:
			e.op(b.b[in.start:in.idxStart]...)
			e.u32(renum(in.idx))
			continue
		}
		e.op(raw...)
	}
}
