package instrument

import (
	"fmt"

	"github.com/tinycontainer/tinycontainer/runtime"
)

// Install-time bounds. wazero's compiler costs far more than linear time
// for some shapes of valid code, all of which fit in a few hundred KB
// (measured on wazero v1.12, see docs/notes/wasm.md and RATIONALE.md):
//   - basic blocks of one function: its dominator and loop passes walk
//     chains of blocks, about 25 ns x blocks² (20,000 `if`s: 11 s);
//   - br_table targets of one function, less than 0.5 ns x targets²
//     (50,000: 1.1 s; 500,000: 39 s and 1.1 GB);
//   - locals live in a loop: each loop header gets a phi per local read
//     inside it, and phis cost about 1 ns x (phis of the header)²
//     (400 nested loops reading 20,000 locals: minutes and 1 GB);
//   - types x functions: every function's compilation walks every
//     signature, about 10 ns per pair (32,000 of each: 14 s);
//   - operand stack height: each value live at once costs about 11 µs and
//     2 KB (300,000 pushed values: 4 s, 670 MB);
//   - declared locals: zeroed at every entry, about 40 ns and 8 bytes of
//     compiler memory each (1,000 functions of 50,000: 1.9 s, 390 MB).
//
// Each quantity is bounded so that a module at every bound at once still
// compiles within the install-time budget (2 s of CPU, 256 MB on the
// reference machine). The bounds are checked on the instrumented code,
// which is what wazero compiles, before wazero sees it; real guests are
// far below them (the largest function of the bench kernels and examples
// has 190 blocks and branches instrumented, a stack of 23 values and 25
// locals).
const (
	// MaxFuncSize bounds one function body in bytes; instrumented, it may
	// grow by an eighth (maxInstrumentedFunc): the checks that cut long
	// straight-line code (issue 10) add about 20 bytes per 256 ticks of
	// its estimated work, at most ~4 % for a function of calls, ~0.2 % for
	// plain instructions.
	MaxFuncSize         = 128 << 10
	maxInstrumentedFunc = MaxFuncSize + MaxFuncSize/8
	// MaxBlocks bounds the blocks and branches of one function; and
	// MaxBlocksSquared their squares summed over the module.
	MaxBlocks        = 4096
	MaxBlocksSquared = 2 * MaxBlocks * MaxBlocks
	// MaxTargetsSquared bounds the squares of the br_table targets of
	// each function, summed over the module.
	MaxTargetsSquared = 1 << 30
	// MaxLoopLocalsSquared bounds the sum over loops of the square of the
	// number of distinct locals each loop's body (nested loops included)
	// uses.
	MaxLoopLocalsSquared = 1 << 28
	// MaxTypeFuncs bounds types x defined functions.
	MaxTypeFuncs = 1 << 24
	// MaxStack bounds the operand stack height of one function, and
	// MaxStackSum the heights summed over the module.
	MaxStack    = 1024
	MaxStackSum = 1 << 18
	// MaxModuleLocals bounds the locals (parameters included) of all
	// functions together.
	MaxModuleLocals = 1 << 20
)

// boundErr is an error of checkBounds: it wraps runtime.ErrLimit and says
// which bound.
func boundErr(format string, args ...any) error {
	return fmt.Errorf("%w: install-time bound: "+format, append([]any{runtime.ErrLimit}, args...)...)
}

// checkBounds measures the instrumented module out and refuses it when a
// quantity is over its bound. nImports is the guest's number of imported
// functions, so that errors name functions as the guest numbers them.
func checkBounds(out []byte, nImports uint32) error {
	m, err := decodeModule(out)
	if err != nil {
		return fmt.Errorf("instrumented module: %w", err) // cannot happen
	}
	nDef := uint64(len(m.codes))
	if p := uint64(len(m.types)) * nDef; p > MaxTypeFuncs {
		return boundErr("%d types x %d functions = %d, at most %d", len(m.types), nDef, p, MaxTypeFuncs)
	}
	funcType := func(f uint32) (FuncType, bool) {
		if f < m.nImportFuncs {
			return m.types[m.importFuncs[f]], true
		}
		if f -= m.nImportFuncs; f < uint32(len(m.funcTypes)) {
			return m.types[m.funcTypes[f]], true
		}
		return FuncType{}, false
	}
	var s scanner
	var blocksSq, targetsSq, loopSq, locals, stacks uint64
	for i, b := range m.codes {
		fn := nImports + uint32(i) // the guest's numbering
		if len(b.b) > maxInstrumentedFunc {
			return boundErr("function %d is %d bytes instrumented, at most %d", fn, len(b.b), maxInstrumentedFunc)
		}
		ft := m.types[m.funcTypes[i]]
		st, err := s.scan(b, len(ft.Params), m.types, funcType)
		if err != nil {
			return fmt.Errorf("instrumented function %d: %w", fn, err) // cannot happen
		}
		if st.blocks > MaxBlocks {
			return boundErr("function %d has %d blocks and branches instrumented, at most %d", fn, st.blocks, MaxBlocks)
		}
		if st.stack > MaxStack {
			return boundErr("function %d has an operand stack of %d values, at most %d", fn, st.stack, MaxStack)
		}
		if stacks += st.stack; stacks > MaxStackSum {
			return boundErr("the functions up to %d have operand stacks of %d values in all, at most %d", fn, stacks, MaxStackSum)
		}
		blocksSq += st.blocks * st.blocks
		if blocksSq > MaxBlocksSquared {
			return boundErr("the functions up to %d have %d blocks and branches squared and summed, at most %d", fn, blocksSq, MaxBlocksSquared)
		}
		if targetsSq += st.targets * st.targets; targetsSq > MaxTargetsSquared {
			return boundErr("the functions up to %d have %d br_table targets squared and summed per function, at most %d", fn, targetsSq, MaxTargetsSquared)
		}
		if loopSq += st.loopLocalsSq; loopSq > MaxLoopLocalsSquared {
			return boundErr("the loops of the functions up to %d use %d locals squared and summed per loop, at most %d", fn, loopSq, MaxLoopLocalsSquared)
		}
		if locals += st.locals; locals > MaxModuleLocals {
			return boundErr("the functions up to %d have %d locals, at most %d in all", fn, locals, MaxModuleLocals)
		}
	}
	return nil
}

// bodyStats is what checkBounds measures of one function.
type bodyStats struct {
	blocks       uint64 // block, loop, if, else, br, br_if, br_table, return, unreachable
	targets      uint64 // of br_tables
	stack        uint64 // highest operand stack
	loopLocalsSq uint64 // sum over loops of (distinct locals used inside)²
	locals       uint64 // parameters and locals
}

// scanner keeps its buffers from one body to the next.
type scanner struct {
	// Open labels: the stack height at their start and their results.
	ctl []scanLabel
	// Open loops: their ids; loopParent and loopUses by id.
	open       []int
	loopDepth  []int
	loopParent []int
	loopUses   []uint64
	// For each local, the deepest open loop (id, depth) whose uses it
	// was counted in, or -1; the loops that enclose that one count it too.
	deepID []int
}

type scanLabel struct {
	height          uint64
	params, results uint64
	loop            bool
}

func (s *scanner) scan(b body, nParams int, types []FuncType, funcType func(uint32) (FuncType, bool)) (bodyStats, error) {
	var st bodyStats
	r := &reader{b: b.b, base: b.base}
	n, err := count(r, 2)
	if err != nil {
		return st, err
	}
	st.locals = uint64(nParams)
	for range n {
		c, err := r.u32()
		if err != nil {
			return st, err
		}
		if _, err := r.byte(); err != nil {
			return st, err
		}
		st.locals += uint64(c)
	}
	if st.locals > maxLocals+uint64(nParams)+1 {
		return st, r.errorf("%d locals", st.locals)
	}
	if cap(s.deepID) < int(st.locals) {
		s.deepID = make([]int, st.locals)
	}
	s.deepID = s.deepID[:st.locals]
	for i := range s.deepID {
		s.deepID[i] = -1
	}
	s.ctl = append(s.ctl[:0], scanLabel{})
	s.open, s.loopDepth, s.loopParent, s.loopUses = s.open[:0], s.loopDepth[:0], s.loopParent[:0], s.loopUses[:0]
	var h uint64 // operand stack height
	push := func(k uint64) {
		if h += k; h > st.stack {
			st.stack = h
		}
	}
	pop := func(k uint64) {
		base := s.ctl[len(s.ctl)-1].height
		if h-base < k {
			h = base // unreachable code, or invalid (wazero refuses it)
			return
		}
		h -= k
	}
	blockArity := func(in inst, raw []byte) (params, results uint64) {
		if in.hasType {
			if in.typ < uint32(len(types)) {
				t := types[in.typ]
				return uint64(len(t.Params)), uint64(len(t.Results))
			}
			return 0, 0
		}
		if raw[1] == 0x40 {
			return 0, 0
		}
		return 0, 1
	}
	for !r.eof() {
		in, err := decodeInst(r)
		if err != nil {
			return st, err
		}
		raw := b.b[in.start:in.end]
		op := raw[0]
		switch op {
		case 0x00, 0x0C, 0x0F: // unreachable, br, return: the rest of the block is unreachable
			st.blocks++
			h = s.ctl[len(s.ctl)-1].height
			continue
		case 0x0E: // br_table: each target is an edge of the graph
			tr := &reader{b: raw, off: 1}
			targets, _ := tr.u32()
			st.blocks++
			st.targets += uint64(targets) + 1
			h = s.ctl[len(s.ctl)-1].height
			continue
		case 0x0D: // br_if
			st.blocks++
			pop(1)
			continue
		case 0x02, 0x03, 0x04: // block, loop, if
			st.blocks++
			if op == 0x04 {
				pop(1)
			}
			p, res := blockArity(in, raw)
			pop(p)
			s.ctl = append(s.ctl, scanLabel{height: h, params: p, results: res, loop: op == 0x03})
			push(p)
			if op == 0x03 {
				id := len(s.loopUses)
				parent := -1
				if len(s.open) > 0 {
					parent = s.open[len(s.open)-1]
				}
				s.open = append(s.open, id)
				s.loopDepth = append(s.loopDepth, len(s.open)-1)
				s.loopParent = append(s.loopParent, parent)
				s.loopUses = append(s.loopUses, 0)
			}
			continue
		case 0x05: // else
			st.blocks++
			l := s.ctl[len(s.ctl)-1]
			h = l.height + l.params
			continue
		case 0x0B: // end
			l := s.ctl[len(s.ctl)-1]
			s.ctl = s.ctl[:len(s.ctl)-1]
			if l.loop {
				id := s.open[len(s.open)-1]
				s.open = s.open[:len(s.open)-1]
				st.loopLocalsSq += s.loopUses[id] * s.loopUses[id]
			}
			if len(s.ctl) == 0 {
				return st, nil
			}
			h = l.height
			push(l.results)
			continue
		case 0x20, 0x21, 0x22: // local.get, set, tee
			s.use(in.idx)
		}
		pops, pushes := arity(op, raw, in, types, funcType)
		pop(pops)
		push(pushes)
	}
	return st, r.errorf("body ends without end")
}

// use counts local x in every open loop that has not counted it yet: the
// loops that have form a prefix of the open ones (outermost first).
func (s *scanner) use(x uint32) {
	if uint64(x) >= uint64(len(s.deepID)) || len(s.open) == 0 {
		return
	}
	// The longest counted prefix still open: walk from the deepest loop
	// that counted x out to the first one still open.
	k := 0 // loops open[:k] counted x
	for id := s.deepID[x]; id >= 0; id = s.loopParent[id] {
		if d := s.loopDepth[id]; d < len(s.open) && s.open[d] == id {
			k = d + 1
			break
		}
	}
	for _, id := range s.open[k:] {
		s.loopUses[id]++
	}
	s.deepID[x] = s.open[len(s.open)-1]
}

// arity is how many values an instruction other than control and
// local.get/set/tee pops and pushes (for valid code; 0xFC and 0xFD
// included). Unknown cases count as 1 -> 1 ... never more pops than the
// instruction has, so the height is never underestimated.
func arity(op byte, raw []byte, in inst, types []FuncType, funcType func(uint32) (FuncType, bool)) (pops, pushes uint64) {
	switch {
	case op == 0x01: // nop
		return 0, 0
	case op == 0x10 || op == 0x12: // call, return_call
		if t, ok := funcType(in.idx); ok {
			return uint64(len(t.Params)), uint64(len(t.Results))
		}
		return 0, 0
	case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
		if in.typ < uint32(len(types)) {
			t := types[in.typ]
			return uint64(len(t.Params)) + 1, uint64(len(t.Results))
		}
		return 1, 0
	case op == 0x1A: // drop
		return 1, 0
	case op == 0x1B || op == 0x1C: // select
		return 3, 1
	case op == 0x20:
		return 0, 1
	case op == 0x21:
		return 1, 0
	case op == 0x22:
		return 1, 1
	case op == 0x23:
		return 0, 1
	case op == 0x24:
		return 1, 0
	case op == 0x25: // table.get
		return 1, 1
	case op == 0x26: // table.set
		return 2, 0
	case op >= 0x28 && op <= 0x35: // loads
		return 1, 1
	case op >= 0x36 && op <= 0x3E: // stores
		return 2, 0
	case op == 0x3F: // memory.size
		return 0, 1
	case op == 0x40: // memory.grow
		return 1, 1
	case op >= 0x41 && op <= 0x44: // constants
		return 0, 1
	case op == 0x45 || op == 0x50: // eqz
		return 1, 1
	case op >= 0x46 && op <= 0x66: // comparisons
		return 2, 1
	case op >= 0x67 && op <= 0x69, op >= 0x79 && op <= 0x7B: // clz, ctz, popcnt
		return 1, 1
	case op >= 0x6A && op <= 0x78, op >= 0x7C && op <= 0x8A: // integer binops
		return 2, 1
	case op >= 0x8B && op <= 0x91, op >= 0x99 && op <= 0x9F: // float unops
		return 1, 1
	case op >= 0x92 && op <= 0x98, op >= 0xA0 && op <= 0xA6: // float binops
		return 2, 1
	case op >= 0xA7 && op <= 0xC4: // conversions, sign extension
		return 1, 1
	case op == 0xD0 || op == 0xD2: // ref.null, ref.func
		return 0, 1
	case op == 0xD1: // ref.is_null
		return 1, 1
	case op == 0xFC:
		r := &reader{b: raw, off: 1}
		sub, _ := r.u32()
		switch {
		case sub <= 7:
			return 1, 1
		case sub == 8, sub == 10, sub == 11, sub == 12, sub == 14, sub == 17:
			return 3, 0
		case sub == 15: // table.grow
			return 2, 1
		case sub == 16: // table.size
			return 0, 1
		}
		return 0, 0 // data.drop, elem.drop
	case op == 0xFD:
		r := &reader{b: raw, off: 1}
		sub, _ := r.u32()
		return simdArity(sub)
	}
	return 1, 1
}

// simdArity is the arity of SIMD instruction sub.
func simdArity(sub uint32) (pops, pushes uint64) {
	switch {
	case sub <= 0x0A, sub == 0x5C, sub == 0x5D: // loads
		return 1, 1
	case sub == 0x0B: // store
		return 2, 0
	case sub == 0x0C: // const
		return 0, 1
	case sub == 0x0D, sub == 0x0E: // shuffle, swizzle
		return 2, 1
	case sub >= 0x0F && sub <= 0x14: // splat
		return 1, 1
	case sub >= 0x15 && sub <= 0x22: // lanes: extract 1 -> 1, replace 2 -> 1
		switch sub {
		case 0x17, 0x1A, 0x1C, 0x1E, 0x20, 0x22:
			return 2, 1
		}
		return 1, 1
	case sub == 0x52: // bitselect
		return 3, 1
	case sub >= 0x54 && sub <= 0x57: // load_lane
		return 2, 1
	case sub >= 0x58 && sub <= 0x5B: // store_lane
		return 2, 0
	}
	if simdUnary[sub&0xFF] {
		return 1, 1
	}
	return 2, 1
}

// simdUnary marks the one-operand SIMD instructions from 0x23 up.
var simdUnary = func() (t [256]bool) {
	for _, op := range []int{
		0x4D, 0x53, 0x5E, 0x5F, 0x60, 0x61, 0x62, 0x63, 0x64, 0x67, 0x68, 0x69, 0x6A,
		0x74, 0x75, 0x7A, 0x7C, 0x7D, 0x7E, 0x7F, 0x80, 0x81, 0x83, 0x84, 0x87, 0x88, 0x89, 0x8A,
		0x94, 0xA0, 0xA1, 0xA3, 0xA4, 0xA7, 0xA8, 0xA9, 0xAA, 0xC0, 0xC1, 0xC3, 0xC4,
		0xC7, 0xC8, 0xC9, 0xCA, 0xE0, 0xE1, 0xE3, 0xEC, 0xED, 0xEF,
		0xF8, 0xF9, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF,
	} {
		t[op] = true
	}
	return t
}()
