// Package instrument rewrites a WebAssembly module so that a runaway guest
// always reaches the host: a checkpoint import is called every Interval
// ticks of loop iterations and function entries, call depth is bounded,
// and memory and tables are clamped to the container's limits.
//
// It is a pure function over module bytes. It decodes every section and
// every instruction (MVP, sign extension, saturating truncation, bulk
// memory, reference types, multi-value, SIMD, tail calls) and refuses
// anything else (threads, exceptions, GC, multiple memories) with an error
// naming where. Errors wrap runtime.ErrInvalidCode, or runtime.ErrLimit
// when the module cannot fit the limits.
//
// Design (see docs/notes/wasm.md): fuel is a mutable i32 global charged
// by weight (one tick per 64 estimated instructions, at least one per
// pass) at function entry and, in functions with loops, at every loop
// header through a local copy that lives in a register. Small loop-free
// non-recursive functions are left untouched and charged at their call
// sites, so hot leaf helpers pay nothing. In innermost loops and at
// function entries the checkpoint call is out of line, with the locals
// saved in scratch globals around it, so that no value of the hot code
// lives across a call; the checkpoint import must never call back into
// the guest, since those globals are shared. Long memory.fill and
// memory.copy run in a helper in 64 KiB pieces with checkpoints between
// them (bulk.go). Before anything is rewritten the module is validated
// (validate.go); the output is measured against the install-time bounds
// (bounds.go) before it is returned.
package instrument

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/tinycontainer/tinycontainer/runtime"
)

// The checkpoint import added as the module's last import, type () -> ().
const (
	CheckpointModule = "tc_internal"
	CheckpointName   = "checkpoint"
)

// Names of the exports the instrumenter adds. Guest exports may not use
// the prefix.
const (
	ExportPrefix = "tc_internal."
	FuelExport   = ExportPrefix + "fuel"
	DepthExport  = ExportPrefix + "depth"
	globalExport = ExportPrefix + "global."
)

// Defaults.
const (
	DefaultInterval   = 4096
	DefaultStackLimit = 512 << 10
	DefaultMaxTable   = 1 << 16
	PageSize          = 65536
	maxPages          = 65536
)

// Cost model: a tick is worth unitsPerTick estimated instructions.
const (
	unitsPerTick = 64
	// cutUnitsPerTick is the tick of long straight-line code (regions cut
	// into pieces): the interval is tuned for loops, whose every pass is
	// charged a whole tick however short, and straight-line code runs
	// every instruction it is charged for, so at 64 units a tick its
	// checkpoints came ~4x further apart in time (~150 µs on the
	// development VM against ~40 µs now).
	cutUnitsPerTick = 16
	freeCost        = 64      // largest inclusive cost of an uninstrumented function
	maxWeight       = 1 << 20 // keeps fuel arithmetic far from overflow
	// maxCum bounds a cut region's cumulative charge, so that fuel
	// arithmetic stays far from overflow (a piece past it starts the
	// count again).
	maxCum      = 1 << 28
	maxInterval = 1 << 30
	maxTables   = 64
)

// Options are the container's limits and the checkpoint interval.
type Options struct {
	// MemoryLimit is the guest memory ceiling in bytes; the memory's
	// maximum is clamped to it.
	MemoryLimit uint64
	// Interval is the number of ticks between checkpoints (default
	// DefaultInterval). A tick is one loop iteration or function entry,
	// or more for long straight-line code.
	Interval uint32
	// StackLimit bounds the estimated bytes of recursive call frames
	// (default DefaultStackLimit); past it the guest traps.
	StackLimit uint32
	// MaxTableElements bounds the sum of the tables' sizes (default
	// DefaultMaxTable).
	MaxTableElements uint32
}

// Import is one import of the guest (the checkpoint excluded).
type Import struct {
	Module, Name string
	Kind         byte     // ExternFunc, ExternTable, ExternMemory, ExternGlobal
	Type         FuncType // functions only
}

// Export is one export of the guest (the added ones excluded).
type Export struct {
	Name string
	Kind byte
	Type FuncType // functions only
}

// Result is an instrumented module and what the engine needs to know of it.
type Result struct {
	Code      []byte
	Imports   []Import
	Exports   []Export
	HasMemory bool
	// Globals are the export names of every mutable global the module
	// defines, the added ones included, so a host can save and restore
	// them.
	Globals []string
	// StackLimit is the depth counter's limit: after a trap, the export
	// DepthExport above it means the guest recursed too deep.
	StackLimit uint32
}

// Instrument rewrites code under opts.
func Instrument(wasm []byte, opts Options) (*Result, error) {
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Interval > maxInterval {
		opts.Interval = maxInterval
	}
	if opts.StackLimit == 0 {
		opts.StackLimit = DefaultStackLimit
	}
	if opts.StackLimit > 1<<30 {
		opts.StackLimit = 1 << 30
	}
	if opts.MaxTableElements == 0 {
		opts.MaxTableElements = DefaultMaxTable
	}
	m, err := decodeModule(wasm)
	if err != nil {
		return nil, err
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	if err := m.checkSegments(); err != nil {
		return nil, err
	}
	// Bounds that instrumenting can only make worse are checked before
	// it (checkBounds checks them all on the output).
	if p := uint64(len(m.types)) * uint64(len(m.codes)); p > MaxTypeFuncs {
		return nil, boundErr("%d types x %d functions = %d, at most %d", len(m.types), len(m.codes), p, MaxTypeFuncs)
	}
	res := &Result{StackLimit: opts.StackLimit, HasMemory: m.memory != nil}
	if err := m.clampLimits(opts); err != nil {
		return nil, err
	}
	nImports := m.nImportFuncs
	nDef := uint32(len(m.funcTypes))
	nFuncs := nImports + nDef
	funcType := func(f uint32) FuncType {
		if f < nImports {
			return m.types[m.importFuncs[f]]
		}
		return m.types[m.funcTypes[f-nImports]]
	}
	for _, im := range m.imports {
		out := Import{Module: im.module, Name: im.name, Kind: im.kind}
		if im.kind == ExternFunc {
			out.Type = m.types[im.typeIdx]
		}
		res.Imports = append(res.Imports, out)
	}
	seen := map[string]bool{}
	for _, ex := range m.exports {
		if strings.HasPrefix(ex.name, ExportPrefix) {
			return nil, fmt.Errorf("%w: export %q uses the reserved prefix %q", runtime.ErrInvalidCode, ex.name, ExportPrefix)
		}
		if seen[ex.name] {
			return nil, fmt.Errorf("%w: duplicate export %q", runtime.ErrInvalidCode, ex.name)
		}
		seen[ex.name] = true
		out := Export{Name: ex.name, Kind: ex.kind}
		if ex.kind == ExternFunc {
			if ex.idx >= nFuncs {
				return nil, fmt.Errorf("%w: export %q names function %d of %d", runtime.ErrInvalidCode, ex.name, ex.idx, nFuncs)
			}
			out.Type = funcType(ex.idx)
		}
		res.Exports = append(res.Exports, out)
	}

	// Pass 1: analyze every body; collect the functions whose address
	// is taken (possible targets of indirect calls).
	c := costs{indirect: freeCost, bulk: bulkCost(opts.MemoryLimit), table: max(bulkCost(opts.MemoryLimit), tableCost), split: splitUnits(opts.Interval)}
	infos := make([]fnInfo, nDef)
	taken := make([]bool, nDef)
	take := func(f uint32) error {
		if f >= nFuncs {
			return fmt.Errorf("%w: reference to function %d of %d", runtime.ErrInvalidCode, f, nFuncs)
		}
		if f >= nImports {
			taken[f-nImports] = true
		}
		return nil
	}
	var locals uint64
	for i := range m.codes {
		fi := &infos[i]
		if err := analyze(m.codes[i], nImports, nImports+uint32(i), len(m.types[m.funcTypes[i]].Params), m.nGlobals(), uint32(len(m.types)), c, fi); err != nil {
			return nil, err
		}
		if locals += uint64(len(m.types[m.funcTypes[i]].Params)) + fi.nLocals; locals > MaxModuleLocals {
			return nil, boundErr("the functions up to %d have %d locals, at most %d in all", nImports+uint32(i), locals, MaxModuleLocals)
		}
		for _, d := range fi.callees {
			if d >= nDef {
				return nil, fmt.Errorf("%w: function %d calls function %d of %d", runtime.ErrInvalidCode, nImports+uint32(i), d+nImports, nFuncs)
			}
		}
		for _, f := range fi.refFuncs {
			if err := take(f); err != nil {
				return nil, err
			}
		}
	}
	renum := func(f uint32) uint32 {
		if f < nImports {
			return f
		}
		return f + 1
	}
	var takeErr error
	record := func(f uint32) uint32 {
		if err := take(f); err != nil && takeErr == nil {
			takeErr = err
		}
		return renum(f)
	}
	var elements []byte
	if m.elements != nil {
		if elements, err = rewriteElements(m.elements, m.elementsBase, m.constGlobal, record, nil); err != nil {
			return nil, err
		}
	}
	globalInits := make([][]byte, len(m.globals))
	for i, g := range m.globals {
		if globalInits[i], err = rewriteExpr(nil, g.init, record); err != nil {
			return nil, err
		}
	}
	if takeErr != nil {
		return nil, takeErr
	}
	for _, ex := range m.exports {
		if ex.kind == ExternFunc {
			_ = take(ex.idx) // in range: checked above
		}
	}
	if m.start != nil {
		if err := take(*m.start); err != nil {
			return nil, err
		}
	}

	plans := classify(m, infos, taken, opts)

	// Output.
	// typeIndex finds or adds a type: one map lookup, so a module of many
	// multi-result functions costs linear time (a scan per function made
	// 32,000 of them take 75 s).
	types := m.types
	typeIdx := make(map[string]uint32, len(types))
	for i := len(types) - 1; i >= 0; i-- {
		typeIdx[types[i].key()] = uint32(i)
	}
	typeIndex := func(t FuncType) uint32 {
		k := t.key()
		if i, ok := typeIdx[k]; ok {
			return i
		}
		types = append(types[:len(types):len(types)], t)
		typeIdx[k] = uint32(len(types) - 1)
		return uint32(len(types) - 1)
	}
	cpType := typeIndex(FuncType{})
	fuelGlobal := m.nImportGlobs + uint32(len(m.globals))
	// Scratch globals hold the locals a loop saves around its checkpoint
	// call. The checkpoint never calls back into the guest, so every loop
	// shares them: one per value type and position.
	var scratch []byte // value type of each, after fuel and depth
	slots := map[[2]int]uint32{}
	e := &emitter{
		fuel: fuelGlobal, depth: fuelGlobal + 1, checkpoint: nImports,
		interval: int32(opts.Interval), stackLimit: int32(opts.StackLimit),
		scratch: func(t byte, k int) uint32 {
			key := [2]int{int(t), k}
			g, ok := slots[key]
			if !ok {
				g = fuelGlobal + 2 + uint32(len(scratch))
				scratch = append(scratch, t)
				slots[key] = g
			}
			return g
		},
	}
	// Helpers for long bulk memory instructions, after the guest's
	// functions (bulk.go).
	var helpers []bulkHelper
	if m.memory != nil {
		var used [2]bool
		for i := range infos {
			used[0] = used[0] || infos[i].bulk[0]
			used[1] = used[1] || infos[i].bulk[1]
		}
		for k, op := range []byte{opCopy, opFill} {
			if used[k] {
				h := bulkHelper{op: op, idx: nImports + 1 + nDef + uint32(len(helpers))}
				e.bulkFn[k] = h.idx
				helpers = append(helpers, h)
			}
		}
		// memory.init of a segment longer than a piece (at most
		// MaxCode/bulkChunk of them: 64 helpers for 4 MiB).
		for i := range infos {
			for _, seg := range infos[i].inits {
				if _, done := e.initFn[seg]; done || seg >= uint32(len(m.dataSizes)) || m.dataSizes[seg] <= bulkChunk {
					continue
				}
				if e.initFn == nil {
					e.initFn = map[uint32]uint32{}
				}
				h := bulkHelper{op: opInit, seg: seg, idx: nImports + 1 + nDef + uint32(len(helpers))}
				e.initFn[seg] = h.idx
				helpers = append(helpers, h)
			}
		}
	}
	var helperType uint32
	if len(helpers) > 0 {
		helperType = typeIndex(FuncType{Params: []byte{0x7F, 0x7F, 0x7F}})
	}
	syncs := func(f uint32) bool { return f >= nImports && plans[f-nImports].class != classFree }
	var code []byte
	code = appendU32(code, nDef+uint32(len(helpers)))
	var fnBuf []byte
	for i := range m.codes {
		p := &plans[i]
		ft := m.types[m.funcTypes[i]]
		var bt []byte
		switch len(ft.Results) {
		case 0:
			bt = []byte{0x40}
		case 1:
			bt = []byte{ft.Results[0]}
		default:
			bt = appendS64(nil, int64(typeIndex(FuncType{Results: ft.Results}))) // a type index is a positive s33
		}
		e.p = p
		e.params = ft.Params
		e.local = uint32(len(ft.Params)) + uint32(infos[i].nLocals)
		e.out = fnBuf[:0]
		if err := rewriteBody(e, m.codes[i], &infos[i], bt, renum, syncs); err != nil {
			return nil, err
		}
		fnBuf = e.out
		code = appendU32(code, uint32(len(fnBuf)))
		code = append(code, fnBuf...)
	}
	for _, h := range helpers {
		fnBuf = appendHelper(fnBuf[:0], h, fuelGlobal, nImports, int32(opts.Interval))
		code = appendU32(code, uint32(len(fnBuf)))
		code = append(code, fnBuf...)
	}

	out := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	var sec []byte
	sec = appendU32(sec[:0], uint32(len(types)))
	for _, t := range types {
		sec = append(sec, 0x60)
		sec = appendU32(sec, uint32(len(t.Params)))
		sec = append(sec, t.Params...)
		sec = appendU32(sec, uint32(len(t.Results)))
		sec = append(sec, t.Results...)
	}
	out = appendSection(out, secType, sec)

	sec = appendU32(sec[:0], uint32(len(m.imports)+1))
	for _, im := range m.imports {
		sec = append(sec, im.raw...)
	}
	sec = appendName(sec, CheckpointModule)
	sec = appendName(sec, CheckpointName)
	sec = append(sec, ExternFunc)
	sec = appendU32(sec, cpType)
	out = appendSection(out, secImport, sec)

	if nDef > 0 {
		sec = appendU32(sec[:0], nDef+uint32(len(helpers)))
		for _, t := range m.funcTypes {
			sec = appendU32(sec, t)
		}
		for range helpers {
			sec = appendU32(sec, helperType)
		}
		out = appendSection(out, secFunction, sec)
	}
	if len(m.tables) > 0 {
		sec = appendU32(sec[:0], uint32(len(m.tables)))
		for i, t := range m.tables {
			sec = append(sec, m.tableRefs[i])
			sec = appendLimits(sec, t)
		}
		out = appendSection(out, secTable, sec)
	}
	if m.memory != nil {
		sec = appendU32(sec[:0], 1)
		sec = appendLimits(sec, *m.memory)
		out = appendSection(out, secMemory, sec)
	}

	sec = appendU32(sec[:0], uint32(len(m.globals)+2+len(scratch)))
	for i, g := range m.globals {
		mut := byte(0)
		if g.mutable {
			mut = 1
		}
		sec = append(sec, g.valType, mut)
		sec = append(sec, globalInits[i]...)
	}
	sec = append(sec, 0x7F, 1, 0x41) // fuel: mut i32 = interval
	sec = appendS32(sec, int32(opts.Interval))
	sec = append(sec, 0x0B, 0x7F, 1, 0x41, 0, 0x0B) // depth: mut i32 = 0
	for _, t := range scratch {
		sec = append(sec, t, 1)
		sec = appendZero(sec, t)
		sec = append(sec, 0x0B)
	}
	out = appendSection(out, secGlobal, sec)

	var internal []exportEntry
	for i, g := range m.globals {
		if g.mutable {
			name := globalExport + strconv.Itoa(i)
			internal = append(internal, exportEntry{name: name, kind: ExternGlobal, idx: m.nImportGlobs + uint32(i)})
			res.Globals = append(res.Globals, name)
		}
	}
	internal = append(internal,
		exportEntry{name: FuelExport, kind: ExternGlobal, idx: fuelGlobal},
		exportEntry{name: DepthExport, kind: ExternGlobal, idx: fuelGlobal + 1})
	res.Globals = append(res.Globals, FuelExport, DepthExport)
	sec = appendU32(sec[:0], uint32(len(m.exports)+len(internal)))
	for _, ex := range append(m.exports[:len(m.exports):len(m.exports)], internal...) {
		sec = appendName(sec, ex.name)
		sec = append(sec, ex.kind)
		if ex.kind == ExternFunc {
			sec = appendU32(sec, renum(ex.idx))
		} else {
			sec = appendU32(sec, ex.idx)
		}
	}
	out = appendSection(out, secExport, sec)

	if m.start != nil {
		out = appendSection(out, secStart, appendU32(sec[:0], renum(*m.start)))
	}
	if elements != nil {
		out = appendSection(out, secElement, elements)
	}
	if m.dataCount != nil {
		out = appendSection(out, secDataCount, m.dataCount)
	}
	if nDef > 0 {
		out = appendSection(out, secCode, code)
	}
	if m.data != nil {
		out = appendSection(out, secData, m.data)
	}
	if err := checkBounds(out, nImports); err != nil {
		return nil, err
	}
	res.Code = out
	return res, nil
}

// appendZero appends a constant instruction for the zero value of t.
func appendZero(b []byte, t byte) []byte {
	switch t {
	case 0x7F:
		return append(b, 0x41, 0)
	case 0x7E:
		return append(b, 0x42, 0)
	case 0x7D:
		return append(b, 0x43, 0, 0, 0, 0)
	case 0x7C:
		return append(b, 0x44, 0, 0, 0, 0, 0, 0, 0, 0)
	case 0x7B:
		return append(append(b, 0xFD, 0x0C), make([]byte, 16)...)
	}
	return append(b, 0xD0, t) // ref.null of a reference type
}

func appendName(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}

func appendLimits(b []byte, l limits) []byte {
	if l.hasMax {
		b = append(b, 0x01)
		b = appendU32(b, l.min)
		return appendU32(b, l.max)
	}
	b = append(b, 0x00)
	return appendU32(b, l.min)
}

// tableCost is what one table.init, table.copy, table.fill or table.grow
// is charged at least: it may touch every element of the tables (65,536
// in all; a table.fill of 65,536 elements measured ~30 µs), so a loop of
// them reaches a checkpoint every few instructions whatever the memory.
const tableCost = 65536

// bulkCost is what one bulk memory instruction is charged: it
// may touch the whole memory, about 16 bytes per estimated instruction.
func bulkCost(memLimit uint64) uint64 {
	c := memLimit / 16
	if c < unitsPerTick {
		c = unitsPerTick
	}
	if c > maxWeight*unitsPerTick {
		c = maxWeight * unitsPerTick
	}
	return c
}

// clampLimits fits the memory and tables into the container's limits.
func (m *module) clampLimits(opts Options) error {
	if mem := m.memory; mem != nil {
		limit := opts.MemoryLimit / PageSize
		if limit > maxPages {
			limit = maxPages
		}
		if limit == 0 {
			return fmt.Errorf("%w: the memory limit of %d bytes is below one 64 KiB page", runtime.ErrLimit, opts.MemoryLimit)
		}
		if uint64(mem.min) > limit {
			return fmt.Errorf("%w: the module needs %d KiB of memory, the limit is %d KiB", runtime.ErrLimit, uint64(mem.min)*64, opts.MemoryLimit>>10)
		}
		if !mem.hasMax || uint64(mem.max) > limit {
			mem.max = uint32(limit)
			mem.hasMax = true
		}
	}
	if len(m.tables) > maxTables {
		return fmt.Errorf("%w: %d tables, at most %d", runtime.ErrLimit, len(m.tables), maxTables)
	}
	var total uint64
	for _, t := range m.tables {
		total += uint64(t.min)
	}
	if total > uint64(opts.MaxTableElements) {
		return fmt.Errorf("%w: tables of %d elements, at most %d", runtime.ErrLimit, total, opts.MaxTableElements)
	}
	// The tables share what their minimums leave, so all of them grown
	// to their maximums still fit.
	share := (uint64(opts.MaxTableElements) - total) / uint64(max(len(m.tables), 1))
	for i := range m.tables {
		t := &m.tables[i]
		if room := uint64(t.min) + share; !t.hasMax || uint64(t.max) > room {
			t.max = uint32(room)
			t.hasMax = true
		}
	}
	return nil
}
