package instrument

import (
	"fmt"
	"slices"

	"github.com/tinycontainer/tinycontainer/runtime"
)

// maxLocals bounds the locals of one function: every local is a slot of
// every frame, so this bounds a frame's size.
const maxLocals = 50000

// maxSaved bounds the locals a loop's out-of-line checkpoint saves and
// restores; a loop that touches more keeps its checkpoint inline.
const maxSaved = 64

// maxSavedPerFunc bounds the locals saved by all the out-of-line
// checkpoints of one function (each costs about 10 bytes of code and a
// phi in wazero's compiler); loops past it keep their checkpoint inline.
// 4,000 loops touching 64 v128 locals each once made a 1 MB function
// compile in 11 s and 670 MB.
const maxSavedPerFunc = 1024

// region is straight-line code that runs once per pass: a function's
// top level (once per call) or a loop body (once per iteration), nested
// loops excluded. base counts its instructions; calls lists the defined
// functions it calls directly, whose cost depends on their class.
//
// A long region is cut into pieces of about splitCost units (issue 10):
// each piece after the first is a region of its own, charged at a check
// inserted where it starts (split, its offset in the body), so the code
// between two charges is bounded whatever the shape of the code.
type region struct {
	base  uint64
	calls []uint32 // defined-function indices (0-based among defined)
	head  int      // the region's first piece (itself for a first piece)
	depth int      // loops around it (the loop whose body it is included)
	split int      // a later piece: the body offset where it starts; else -1
	est   uint64   // units so far, calls counted at their most (analysis only)
}

// slowOp is what a single-byte instruction costs past one unit: integer
// division and remainder take tens of cycles (a straight line of i64.div_u
// measured ~15-25 ns each here, where a unit is ~0.3 ns), float division
// and square root about ten.
var slowOp = func() (t [256]uint8) {
	for _, op := range []byte{0x6D, 0x6E, 0x6F, 0x70, 0x7F, 0x80, 0x81, 0x82} { // i32/i64 div_s, div_u, rem_s, rem_u
		t[op] = 31
	}
	for _, op := range []byte{0x95, 0x91, 0xA3, 0x9F} { // f32/f64 div, sqrt
		t[op] = 15
	}
	return t
}()

// splitTicks is the most ticks one piece of a region is estimated to run
// before the next piece's check, at the default interval (a checkpoint
// comes every Interval ticks, 4,096 by default). Regions shorter than
// this, which is every region of the compute kernels, are not cut. A
// shorter interval cuts into pieces of Interval/16 ticks (at least 8
// units), which lets the tests that run with tiny intervals exercise the
// cuts everywhere.
const splitTicks = 256

// splitUnits is the piece size for an interval, in units.
func splitUnits(interval uint32) uint64 {
	return min(splitTicks*unitsPerTick, max(8, uint64(interval)*unitsPerTick/16))
}

// fnInfo is what the first pass learns about one function body.
type fnInfo struct {
	exprStart  int    // offset of the first instruction
	splits     []int  // the regions that are later pieces, in code order
	splitDepth int    // 1 + the deepest loop nesting with a split (0: none)
	localDecls []byte // the raw local declarations (after their count)
	nDecls     uint32
	nLocals    uint64
	hasLoop    bool
	bulk       [2]bool  // memory.copy, memory.fill (0xFC 10, 11) seen
	inits      []uint32 // data segments of its memory.init instructions
	indirect   bool     // call_indirect or return_call_indirect
	callees    []uint32 // defined-function indices called directly
	regions    []region // [0] is the top level, then loops in order
	loops      []loopInfo
	refFuncs   []uint32 // ref.func operands (module function indices)
}

// loopInfo is what the rewriter needs to know of one loop (in order).
type loopInfo struct {
	// simple: the loop has no parameters and at most one result, so it
	// can be wrapped in blocks of the same type.
	simple bool
	// region is the region of its body (its first piece).
	region int
	// locals are the locals its body touches (nested loops included),
	// sorted; nil with many, when there were more than maxSaved.
	locals []uint32
	many   bool
	// calls are the first direct calls of defined functions at the top
	// level of its body that come before any branch back to it: each
	// runs on every iteration, and if it spends fuel it can charge the
	// iteration too.
	calls []loopCall
	back  bool // a branch back to the loop was seen
	outer bool // it contains another loop
}

// loopCall is a call instruction at body offset off to function f.
type loopCall struct {
	off int
	f   uint32
}

// maxLoopCalls bounds loopInfo.calls.
const maxLoopCalls = 4

// brTargets calls f with each label depth of a br, br_if or br_table
// that decodeInst decoded.
func brTargets(raw []byte, f func(d uint32)) {
	r := &reader{b: raw, off: 1}
	n := uint32(1)
	if raw[0] == 0x0E {
		n, _ = r.u32()
		n++
	}
	for range n {
		d, _ := r.u32()
		f(d)
	}
}

// touch adds local x to the loop's set.
func (l *loopInfo) touch(x uint32) {
	if l.many {
		return
	}
	i, found := slices.BinarySearch(l.locals, x)
	if found {
		return
	}
	if len(l.locals) == maxSaved {
		l.locals, l.many = nil, true
		return
	}
	l.locals = slices.Insert(l.locals, i, x)
}

// costs are the cost units the analysis charges for what one instruction
// cannot show.
type costs struct {
	bulk     uint64 // memory.fill/copy/init/grow
	table    uint64 // table.init/copy/grow/fill
	indirect uint64 // an indirect call may reach an uninstrumented function
	split    uint64 // the most units of one piece of a region
}

// analyze decodes a body completely, checking its structure, and collects
// the facts that classify it.
//
// Indices of locals and globals are checked here because the instrumented
// module has more of both: a reference past the guest's own, invalid in
// the original, would reach the fuel counter in the output.
func analyze(b body, nImports, funcIdx uint32, nParams int, nGlobals, nTypes uint32, c costs, fi *fnInfo) error {
	if len(b.b) > MaxFuncSize {
		// Instrumenting never shrinks a body: refused before it is.
		return boundErr("function %d is %d bytes, at most %d", funcIdx, len(b.b), MaxFuncSize)
	}
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
	fi.regions = []region{{split: -1}}
	// For each open label, the region that resumes after its end, and
	// the loop it is (-1: a block).
	outer := []int{0}
	labelLoop := []int{-1}
	var loops []int // the open loops, innermost last
	cur := 0
	for {
		if r.eof() {
			return r.errorf("function %d: body ends without end", funcIdx)
		}
		in, err := decodeInst(r)
		if err != nil {
			return fmt.Errorf("function %d: %w", funcIdx, err)
		}
		if in.hasType && in.typ >= nTypes {
			// The output has more types: this must not name one of them.
			return r.errorf("function %d: type %d out of range", funcIdx, in.typ)
		}
		// Cut a long region before this instruction (see region).
		op := b.b[in.start]
		add := 1 + uint64(slowOp[op])
		switch in.kind {
		case kCall, kReturnCall:
			add += freeCost
		case kCallIndirect, kReturnCallIndirect:
			add += c.indirect
		case kBulk:
			// memory.fill/copy/init do at most bulkChunk bytes before a
			// charge of their own (the helpers), table operations at most
			// the table cap, memory.grow the memory.
			add += c.bulk
			if sub := b.b[in.start+1]; b.b[in.start] == 0xFC {
				switch sub {
				case 0x08, 0x0A, 0x0B:
					add = 1 + min(c.bulk, bulkChunk/16)
				case 0x0C, 0x0E, 0x0F, 0x11:
					add = 1 + c.table
				}
			}
		}
		if rg := &fi.regions[cur]; rg.est > 0 && rg.est+add > c.split {
			fi.regions = append(fi.regions, region{head: rg.head, depth: rg.depth, split: in.start})
			cur = len(fi.regions) - 1
			fi.splits = append(fi.splits, cur)
			fi.splitDepth = max(fi.splitDepth, fi.regions[cur].depth+1)
		}
		fi.regions[cur].est += add
		fi.regions[cur].base += 1 + uint64(slowOp[op])
		switch in.kind {
		case kBlock:
			outer = append(outer, cur)
			labelLoop = append(labelLoop, -1)
		case kLoop:
			fi.hasLoop = true
			outer = append(outer, cur)
			fi.regions = append(fi.regions, region{head: len(fi.regions), depth: len(loops) + 1, split: -1})
			cur = len(fi.regions) - 1
			bt := b.b[in.start+1]
			if len(loops) > 0 {
				fi.loops[loops[len(loops)-1]].outer = true
			}
			labelLoop = append(labelLoop, len(fi.loops))
			loops = append(loops, len(fi.loops))
			fi.loops = append(fi.loops, loopInfo{simple: bt == 0x40 || isValType(bt), region: cur})
		case kEnd:
			cur = outer[len(outer)-1]
			outer = outer[:len(outer)-1]
			if l := labelLoop[len(labelLoop)-1]; l >= 0 {
				loops = loops[:len(loops)-1]
				if len(loops) > 0 {
					// The enclosing loop's body includes this one's.
					in, out := &fi.loops[l], &fi.loops[loops[len(loops)-1]]
					if in.many {
						out.locals, out.many = nil, true
					}
					for _, x := range in.locals {
						out.touch(x)
					}
				}
			}
			labelLoop = labelLoop[:len(labelLoop)-1]
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
				if l := labelLoop[len(labelLoop)-1]; in.kind == kCall && l >= 0 {
					if li := &fi.loops[l]; !li.back && len(li.calls) < maxLoopCalls {
						li.calls = append(li.calls, loopCall{off: in.start, f: in.idx})
					}
				}
			}
		case kBr, kBrTable:
			brTargets(b.b[in.start:in.end], func(d uint32) {
				if uint64(d) < uint64(len(labelLoop)) {
					if l := labelLoop[len(labelLoop)-1-int(d)]; l >= 0 {
						fi.loops[l].back = true
					}
				}
			})
		case kCallIndirect, kReturnCallIndirect:
			fi.indirect = true
			fi.regions[cur].base += c.indirect
		case kRefFunc:
			fi.refFuncs = append(fi.refFuncs, in.idx)
		case kBulk:
			cost := c.bulk
			if b.b[in.start] == 0xFC {
				switch sub := b.b[in.start+1]; sub {
				case 0x0A, 0x0B:
					fi.bulk[sub-0x0A] = true
				case 0x08:
					seg, _ := (&reader{b: b.b[:in.end], off: in.start + 2}).u32() // decoded before
					fi.inits = append(fi.inits, seg)
				case 0x0C, 0x0E, 0x0F, 0x11:
					cost = c.table
				}
			}
			fi.regions[cur].base += cost
		case kLocal:
			if uint64(in.idx) >= uint64(nParams)+fi.nLocals {
				return r.errorf("function %d: local %d out of range", funcIdx, in.idx)
			}
			if len(loops) > 0 {
				fi.loops[loops[len(loops)-1]].touch(in.idx)
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
	// cum is, for each region, its weight plus the weights of the
	// earlier pieces of its region: what the region has been charged
	// once its piece's check has run. A negative value -w is a piece
	// that starts the count again (charged w; see maxCum).
	cum []int32
	// cut says which regions (first pieces) have later pieces.
	cut []bool
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
	// scratch gives the global that holds the k-th saved local of type t.
	scratch  func(t byte, k int) uint32
	params   []byte      // parameter types of the function
	decls    []localDecl // its local declarations
	labels   labels
	saves    []scratchSave
	paramIdx []uint32
	// saved counts the locals the function's wrapped loops save so far.
	saved int
	// bulkFn are the function indices of the memory.copy and memory.fill
	// helpers (0: none).
	bulkFn [2]uint32
	// initFn are the function indices of the memory.init helpers, by
	// data segment (only segments longer than bulkChunk have one).
	initFn map[uint32]uint32
}

// localDecl is a run of locals of one type; end is the index after it.
type localDecl struct {
	end uint64
	t   byte
}

// setLocals records the local declarations of fi for localType.
func (e *emitter) setLocals(fi *fnInfo) {
	e.decls = e.decls[:0]
	r := &reader{b: fi.localDecls}
	end := uint64(len(e.params))
	for range fi.nDecls {
		n, _ := r.u32() // decoded before
		t, _ := r.byte()
		end += uint64(n)
		e.decls = append(e.decls, localDecl{end: end, t: t})
	}
}

// localType is the type of local x, which analyze checked is in range.
func (e *emitter) localType(x uint32) byte {
	if uint64(x) < uint64(len(e.params)) {
		return e.params[x]
	}
	i, _ := slices.BinarySearchFunc(e.decls, uint64(x), func(d localDecl, x uint64) int {
		if d.end <= x {
			return -1
		}
		return 1
	})
	return e.decls[i].t
}

func (e *emitter) op(b ...byte) { e.out = append(e.out, b...) }
func (e *emitter) u32(v uint32) { e.out = appendU32(e.out, v) }
func (e *emitter) i32(v int32)  { e.op(0x41); e.out = appendS32(e.out, v) }

// charge subtracts w from the fuel value on the stack, keeps the result in
// L (and in F for entry-charged functions) and leaves L and 0 on the stack
// for the comparison that follows.
func (e *emitter) charge(w int32) {
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
}

// refuel resets the fuel (L or F) to the interval after a checkpoint.
func (e *emitter) refuel() {
	e.i32(e.interval)
	if e.p.class == classLocal {
		e.op(0x21)
		e.u32(e.local)
	} else {
		e.op(0x24)
		e.u32(e.fuel)
	}
}

// fuelCheck charges w and calls the checkpoint when the fuel runs out.
func (e *emitter) fuelCheck(w int32) {
	e.getFuel()
	e.chargeCheck(w)
}

// getFuel pushes the fuel: L in a function with loops, F otherwise.
func (e *emitter) getFuel() {
	if e.p.class == classLocal {
		e.op(0x20)
		e.u32(e.local) // local.get L
	} else {
		e.op(0x23)
		e.u32(e.fuel) // global.get F
	}
}

// chargeCheck charges w to the fuel value on the stack (charge) and calls
// the checkpoint, then refuels, when the fuel runs out.
func (e *emitter) chargeCheck(w int32) {
	e.charge(w)
	e.op(0x48, 0x04, 0x40, 0x10) // i32.lt_s; if; call checkpoint
	e.u32(e.checkpoint)
	e.refuel()
	e.op(0x0B)
}

// setPos records at the first piece of a cut region (a function's top
// level or a loop body, at depth loops) that c is charged of it.
func (e *emitter) setPos(depth int, c int32) {
	e.i32(c)
	e.op(0x21)
	e.u32(e.local + 1 + uint32(depth)) // local.set pos
}

// splitCheck charges the piece that starts here and calls the checkpoint
// when the fuel runs out. What it charges is what the region has cost up
// to the end of this piece (cum) less what was charged of it so far (the
// pos local of its depth): a branch that skipped earlier checks of the
// region does not leave the code after them uncharged.
func (e *emitter) splitCheck(depth int, cum int32) {
	e.getFuel()
	pos := e.local + 1 + uint32(depth)
	if cum >= 0 {
		e.op(0x20)
		e.u32(pos)
		e.op(0x6A) // local.get pos; i32.add
	} else {
		cum = -cum // the count starts again here
	}
	e.i32(cum)
	e.op(0x21)
	e.u32(pos) // pos = cum
	e.chargeCheck(cum)
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
	w := e.p.weights[0]
	if len(e.params) > maxSaved {
		if e.p.class == classLocal {
			e.syncIn() // L = F
		}
		e.fuelCheck(w)
		return
	}
	// As at loop headers, the slow path is out of line and saves the
	// parameters, the only locals that are not zero yet.
	e.op(0x02, 0x40, 0x02, 0x40) // block $go; block $slow
	e.op(0x23)
	e.u32(e.fuel) // global.get F
	e.charge(w)
	e.op(0x48, 0x0D, 0, 0x0C, 1, 0x0B) // i32.lt_s; br_if $slow; br $go; end $slow
	params := e.paramIdx[:0]
	for i := range e.params {
		params = append(params, uint32(i))
	}
	e.paramIdx = params
	e.checkpointCall(params)
	e.refuel()
	e.op(0x0B) // end $go
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

// callHelper calls f, a bulk memory helper (bulk.go), in place of the
// instruction: the helper charges the fuel global by the piece, so a
// function whose fuel is in L hands it over and takes it back.
func (e *emitter) callHelper(f uint32) {
	if e.p.class == classLocal {
		e.syncOut()
	}
	e.op(0x10)
	e.u32(f) // call f
	if e.p.class == classLocal {
		e.syncIn()
	}
}

func (e *emitter) syncOut() { e.op(0x20); e.u32(e.local); e.op(0x24); e.u32(e.fuel) }
func (e *emitter) syncIn()  { e.op(0x23); e.u32(e.fuel); e.op(0x21); e.u32(e.local) }

// label is an open label of the original body.
type label struct {
	// wrapped: a loop rewritten as block $exit; loop $retry; block $slow;
	// loop, so three labels of the output lie between it and the labels
	// that enclose it.
	wrapped bool
	weight  int32
	loop    *loopInfo
	// fold is the offset of the call that charges the loop's iterations
	// instead of a check at its header (-1: none).
	fold int
}

// labels is the stack of open labels, with running counts of wrapped
// loops so a branch depth converts in constant time.
type labels struct {
	l       []label
	wrapped []int // wrapped[i]: wrapped loops among l[:i]
}

func (s *labels) push(l label) {
	if len(s.wrapped) == 0 {
		s.wrapped = append(s.wrapped, 0)
	}
	n := s.wrapped[len(s.wrapped)-1]
	if l.wrapped {
		n++
	}
	s.l = append(s.l, l)
	s.wrapped = append(s.wrapped, n)
}

func (s *labels) pop() label {
	l := s.l[len(s.l)-1]
	s.l = s.l[:len(s.l)-1]
	s.wrapped = s.wrapped[:len(s.wrapped)-1]
	return l
}

// depth converts a branch depth of the original into the output's: every
// wrapped loop the branch leaves adds three labels.
func (s *labels) depth(d uint32) (uint32, bool) {
	if uint64(d) >= uint64(len(s.l)) {
		return 0, false
	}
	target := len(s.l) - 1 - int(d)
	return d + 3*uint32(s.wrapped[len(s.l)]-s.wrapped[target+1]), true
}

// loopHead opens a wrapped loop whose original opening is raw, and
// charges w at its header: the slow path is out of line, after the loop,
// so the loop itself never contains a call.
func (e *emitter) loopHead(raw []byte, w int32) {
	bt := raw[1]
	e.op(0x02, bt, 0x03, bt, 0x02, 0x40) // block $exit; loop $retry; block $slow
	e.op(raw...)
	e.op(0x20)
	e.u32(e.local) // local.get L
	e.i32(w)
	e.op(0x6B, 0x22) // i32.sub; local.tee L
	e.u32(e.local)
	e.i32(0)
	e.op(0x48, 0x0D, 1) // i32.lt_s; br_if $slow
}

// loopTail closes a wrapped loop after the original's end: normal exits
// leave through $exit; the slow path saves the locals the loop touches
// in scratch globals, calls the checkpoint, restores them, refuels and
// re-enters the loop through $retry. Saving them keeps the loop's values
// from living across the call, which would make wazero's register
// allocator spill them on every iteration.
func (e *emitter) loopTail(l label) {
	e.op(0x0C, 2, 0x0B) // br $exit; end $slow
	e.checkpointCall(l.loop.locals)
	// The header charges l.weight again on re-entry.
	e.i32(e.interval + l.weight)
	e.op(0x21)
	e.u32(e.local)
	e.op(0x0C, 0, 0x0B, 0x0B) // br $retry; end $retry; end $exit
}

// checkpointCall calls the checkpoint with locals saved in scratch
// globals around the call, so that no value of theirs lives across it.
// Numbers are packed into v128 globals, four 32-bit or two 64-bit lanes
// each (every global costs each instance an allocation); v128 and
// reference locals get a global each.
func (e *emitter) checkpointCall(locals []uint32) {
	saves := e.saves[:0]
	v128s := 0 // v128 scratch globals used
	var refs [256]int
	for _, width := range []int{32, 64} {
		lanes := 128 / width
		var cur *scratchSave
		for _, x := range locals {
			t := e.localType(x)
			if laneWidth(t) != width {
				continue
			}
			if cur == nil || len(cur.locals) == lanes {
				saves = append(saves, scratchSave{g: e.scratch(0x7B, v128s)})
				v128s++
				cur = &saves[len(saves)-1]
			}
			cur.locals = append(cur.locals, x)
			cur.types = append(cur.types, t)
		}
	}
	for _, x := range locals {
		switch t := e.localType(x); {
		case t == 0x7B:
			saves = append(saves, scratchSave{g: e.scratch(t, v128s), locals: []uint32{x}})
			v128s++
		case laneWidth(t) == 0:
			saves = append(saves, scratchSave{g: e.scratch(t, refs[t]), locals: []uint32{x}})
			refs[t]++
		}
	}
	for _, sv := range saves {
		if sv.types == nil { // a whole global
			e.op(0x20)
			e.u32(sv.locals[0]) // local.get x
			e.op(0x24)
			e.u32(sv.g) // global.set g
			continue
		}
		e.op(0x23)
		e.u32(sv.g) // global.get g: its lanes are overwritten
		for lane, x := range sv.locals {
			e.op(0x20)
			e.u32(x)
			e.op(0xFD, laneOp(sv.types[lane], true), byte(lane)) // T.replace_lane
		}
		e.op(0x24)
		e.u32(sv.g)
	}
	e.op(0x10)
	e.u32(e.checkpoint)
	for _, sv := range saves {
		for lane, x := range sv.locals {
			e.op(0x23)
			e.u32(sv.g)
			if sv.types != nil {
				e.op(0xFD, laneOp(sv.types[lane], false), byte(lane)) // T.extract_lane
			}
			e.op(0x21)
			e.u32(x) // local.set x
		}
	}
	e.saves = saves
}

// scratchSave is one scratch global of a checkpoint call and the locals
// it holds: lanes of the given types, or (types nil) the whole global.
type scratchSave struct {
	g      uint32
	locals []uint32
	types  []byte
}

// laneWidth is the bits a number type takes in a v128 lane, 0 for the
// types that are saved whole.
func laneWidth(t byte) int {
	switch t {
	case 0x7F, 0x7D:
		return 32
	case 0x7E, 0x7C:
		return 64
	}
	return 0
}

// laneOp is the SIMD opcode that puts (replace) or gets a lane of type t.
func laneOp(t byte, replace bool) byte {
	var op byte
	switch t {
	case 0x7F:
		op = 0x1B // i32x4.extract_lane
	case 0x7E:
		op = 0x1D // i64x2.extract_lane
	case 0x7D:
		op = 0x1F // f32x4.extract_lane
	default:
		op = 0x21 // f64x2.extract_lane
	}
	if replace {
		op++
	}
	return op
}

// branch copies a br, br_if or br_table with its depths converted.
func (e *emitter) branch(raw []byte, ls *labels) error {
	e.op(raw[0])
	if raw[0] == 0x0E {
		r := &reader{b: raw, off: 1}
		n, _ := r.u32() // decoded before
		e.u32(n)
	}
	var err error
	brTargets(raw, func(d uint32) {
		nd, ok := ls.depth(d)
		if !ok && err == nil {
			err = fmt.Errorf("%w: branch to label %d of %d", runtime.ErrInvalidCode, d, len(ls.l))
		}
		e.u32(nd)
	})
	return err
}

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
	e.setLocals(fi)
	e.saved = 0
	if p.class != classFree {
		// i32 locals: L, then a pos per loop depth with a cut region.
		e.u32(1 + uint32(fi.splitDepth))
		e.op(0x7F)
		e.prologue()
		if p.cut != nil && p.cut[0] {
			e.setPos(0, p.cum[0])
		}
		if p.wrapped() {
			e.op(0x02)
			e.op(blockType...)
		}
	}
	ls := &e.labels
	ls.l, ls.wrapped = ls.l[:0], ls.wrapped[:0]
	ls.push(label{fold: -1}) // the function's
	r := &reader{b: b.b, base: b.base, off: fi.exprStart}
	loop := 0
	splits := fi.splits
	if p.class == classFree {
		splits = nil // never cut (cost <= freeCost)
	}
	for {
		in, err := decodeInst(r)
		if err != nil {
			return err // cannot happen: analyze decoded the same bytes
		}
		if len(splits) > 0 && fi.regions[splits[0]].split == in.start {
			rg := &fi.regions[splits[0]]
			e.splitCheck(rg.depth, p.cum[splits[0]])
			splits = splits[1:]
		}
		raw := b.b[in.start:in.end]
		switch in.kind {
		case kBlock:
			ls.push(label{fold: -1})
		case kLoop:
			loop++
			l := label{loop: &fi.loops[loop-1], weight: p.weights[fi.loops[loop-1].region], fold: -1}
			if p.class == classLocal {
				for _, c := range l.loop.calls {
					if syncs(c.f) && !l.loop.outer {
						l.fold = c.off
						break
					}
				}
				l.wrapped = l.fold < 0 && l.loop.simple && !l.loop.many && !l.loop.outer &&
					e.saved+len(l.loop.locals) <= maxSavedPerFunc
				if l.wrapped {
					e.saved += len(l.loop.locals)
				}
				if l.fold >= 0 {
					e.op(raw...)
				} else if l.wrapped {
					e.loopHead(raw, l.weight)
				} else {
					e.op(raw...)
					e.fuelCheck(l.weight)
				}
				if rg := l.loop.region; p.cut != nil && p.cut[rg] {
					e.setPos(fi.regions[rg].depth, p.cum[rg])
				}
			} else {
				e.op(raw...)
			}
			ls.push(l)
			continue
		case kEnd:
			l := ls.pop()
			if len(ls.l) == 0 {
				if p.wrapped() {
					e.op(0x0B)
					e.epilogue()
				}
				e.op(0x0B)
				return nil
			}
			if l.wrapped {
				e.op(raw...)
				e.loopTail(l)
				continue
			}
		case kBr, kBrTable:
			if ls.wrapped[len(ls.l)] > 0 {
				if err := e.branch(raw, ls); err != nil {
					return err
				}
				continue
			}
		case kReturn:
			if p.wrapped() {
				e.epilogue()
			}
		case kCall:
			sync := p.class == classLocal && syncs(in.idx)
			if top := ls.l[len(ls.l)-1]; sync && top.fold == in.start {
				// This call charges the loop's iteration: the callee
				// checks the fuel at its entry.
				e.op(0x20)
				e.u32(e.local)
				e.i32(top.weight)
				e.op(0x6B, 0x24) // i32.sub; global.set F
				e.u32(e.fuel)
			} else if sync {
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
		case kBulk:
			if sub := raw[1]; raw[0] == 0xFC && (sub == opCopy || sub == opFill) && e.bulkFn[sub-opCopy] != 0 {
				e.callHelper(e.bulkFn[sub-opCopy])
				continue
			}
			if raw[0] == 0xFC && raw[1] == opInit && len(e.initFn) > 0 {
				seg, _ := (&reader{b: raw, off: 2}).u32() // decoded before
				if f, ok := e.initFn[seg]; ok {
					e.callHelper(f)
					continue
				}
			}
		}
		e.op(raw...)
	}
}
