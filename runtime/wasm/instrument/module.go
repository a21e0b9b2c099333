package instrument

import (
	"bytes"
	"fmt"

	"github.com/tinycontainer/tinycontainer/runtime"
)

// Section ids.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// Extern kinds of imports and exports.
const (
	ExternFunc   byte = 0
	ExternTable  byte = 1
	ExternMemory byte = 2
	ExternGlobal byte = 3
	externTag    byte = 4
)

// FuncType is a function signature; value types use their binary codes
// (0x7F i32, 0x7E i64, 0x7D f32, 0x7C f64, 0x7B v128, 0x70 funcref,
// 0x6F externref).
type FuncType struct {
	Params, Results []byte
}

func (t FuncType) equal(u FuncType) bool {
	return bytes.Equal(t.Params, u.Params) && bytes.Equal(t.Results, u.Results)
}

// key is a map key for t: no value type is 0x00.
func (t FuncType) key() string { return string(t.Params) + "\x00" + string(t.Results) }

func (t FuncType) String() string {
	return "(" + typeList(t.Params) + ") -> (" + typeList(t.Results) + ")"
}

func typeList(ts []byte) string {
	s := ""
	for i, t := range ts {
		if i > 0 {
			s += ","
		}
		s += valTypeName(t)
	}
	return s
}

func valTypeName(t byte) string {
	switch t {
	case 0x7F:
		return "i32"
	case 0x7E:
		return "i64"
	case 0x7D:
		return "f32"
	case 0x7C:
		return "f64"
	case 0x7B:
		return "v128"
	case 0x70:
		return "funcref"
	case 0x6F:
		return "externref"
	}
	return fmt.Sprintf("type(%#02x)", t)
}

type importEntry struct {
	module, name string
	kind         byte
	typeIdx      uint32 // functions
	raw          []byte // the whole entry as it was
}

type globalEntry struct {
	valType byte
	mutable bool
	init    []byte // constant expression including its end
}

type exportEntry struct {
	name string
	kind byte
	idx  uint32
}

type limits struct {
	min, max uint32
	hasMax   bool
}

// module is a decoded module: what instrumentation rewrites is decoded,
// the rest is kept as raw bytes.
type module struct {
	types         []FuncType
	imports       []importEntry
	nImportFuncs  uint32
	nImportGlobs  uint32
	nImportTabs   uint32
	importFuncs   []uint32 // type index of each imported function
	importGlobMut []bool   // mutability of each imported global
	funcTypes     []uint32 // type index of each defined function
	tables        []limits
	tableRefs     []byte
	memory        *limits
	globals       []globalEntry
	exports       []exportEntry
	start         *uint32
	elements      []byte // section payload, rewritten later
	elementsBase  int
	dataCount     []byte // section payload
	codes         []body
	data          []byte   // section payload
	dataSizes     []uint32 // length of each data segment
	active        []segment
}

// nGlobals is the number of globals the guest has, imported or defined.
func (m *module) nGlobals() uint32 { return m.nImportGlobs + uint32(len(m.globals)) }

// constGlobal reports whether a constant expression may read global g:
// only an immutable imported one (WebAssembly 2.0).
func (m *module) constGlobal(g uint32) bool {
	return g < m.nImportGlobs && !m.importGlobMut[g]
}

// body is one function body: its raw bytes and the absolute offset of
// its first byte.
type body struct {
	b    []byte
	base int
}

var sectionOrder = map[byte]int{
	secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5, secGlobal: 7,
	secExport: 8, secStart: 9, secElement: 10, secDataCount: 11, secCode: 12, secData: 13,
}

func decodeModule(code []byte) (*module, error) {
	r := &reader{b: code}
	magic, err := r.bytes(8)
	if err != nil || !bytes.Equal(magic, []byte{0, 'a', 's', 'm', 1, 0, 0, 0}) {
		return nil, fmt.Errorf("%w: not a WebAssembly 1.0 binary module (bad magic or version)", runtime.ErrInvalidCode)
	}
	m := &module{}
	last := 0
	nFuncs := -1
	for !r.eof() {
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		start := r.off
		payload, err := r.bytes(size)
		if err != nil {
			return nil, err
		}
		sr := &reader{b: payload, base: start}
		if id == secCustom {
			// Custom sections are dropped, but their name must be sound.
			if _, err := sr.name(); err != nil {
				return nil, err
			}
			continue
		}
		if id == secTag {
			return nil, sr.errorf("tag section: exception handling is not supported")
		}
		order, ok := sectionOrder[id]
		if !ok {
			return nil, sr.errorf("unknown section id %d", id)
		}
		if order <= last {
			return nil, sr.errorf("section %d out of order or repeated", id)
		}
		last = order
		switch id {
		case secType:
			err = m.decodeTypes(sr)
		case secImport:
			err = m.decodeImports(sr)
		case secFunction:
			err = m.decodeFunctions(sr)
			nFuncs = len(m.funcTypes)
		case secTable:
			err = m.decodeTables(sr)
		case secMemory:
			err = m.decodeMemories(sr)
		case secGlobal:
			err = m.decodeGlobals(sr)
		case secExport:
			err = m.decodeExports(sr)
		case secStart:
			var s uint32
			s, err = sr.u32()
			m.start = &s
		case secElement:
			// Checked now, so that every length is known sound once the
			// module decodes; rewritten once functions are renumbered.
			m.elements, m.elementsBase = payload, start
			_, err = rewriteElements(payload, start, m.constGlobal, func(f uint32) uint32 { return f }, m.addActive)
			sr.off = len(payload)
		case secDataCount:
			m.dataCount = payload
			sr.off = len(payload)
		case secCode:
			err = m.decodeCode(sr)
		case secData:
			m.data = payload
			m.dataSizes, err = checkData(sr, m.constGlobal, m.addActive)
		}
		if err != nil {
			return nil, err
		}
		if !sr.eof() {
			return nil, sr.errorf("section %d has %d trailing bytes", id, sr.left())
		}
	}
	if nFuncs < 0 {
		nFuncs = 0
	}
	if len(m.codes) != nFuncs {
		return nil, fmt.Errorf("%w: %d functions declared but %d bodies", runtime.ErrInvalidCode, nFuncs, len(m.codes))
	}
	return m, nil
}

// checkData checks the data section's structure; it is copied as is, but
// every length in it must be sound before it reaches a decoder that
// allocates what the lengths say. It returns each segment's length and
// passes each active segment to active.
func checkData(r *reader, constGlobal func(uint32) bool, active func(segment)) ([]uint32, error) {
	n, err := count(r, 2)
	if err != nil {
		return nil, err
	}
	sizes := make([]uint32, 0, n)
	for i := uint32(0); i < n; i++ {
		flags, err := r.u32()
		if err != nil {
			return nil, err
		}
		switch flags {
		case 0:
		case 1:
		case 2:
			mem, err := r.u32()
			if err != nil {
				return nil, err
			}
			if mem != 0 {
				return nil, r.errorf("data segment %d: memory %d (multiple memories are not supported)", i, mem)
			}
		default:
			return nil, r.errorf("data segment %d: unknown flags %d", i, flags)
		}
		var offset []byte
		if flags != 1 {
			if offset, err = constExpr(r, constGlobal); err != nil {
				return nil, err
			}
		}
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		if _, err := r.bytes(size); err != nil {
			return nil, err
		}
		sizes = append(sizes, size)
		if flags != 1 {
			active(segment{data: true, i: i, offset: offset, n: size})
		}
	}
	return sizes, nil
}

// count reads a vector length and checks it against the bytes left, each
// element taking at least min bytes, so hostile lengths cannot make the
// decoder allocate.
func count(r *reader, min int) (uint32, error) {
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	if uint64(n)*uint64(min) > uint64(r.left()) {
		return 0, r.errorf("vector of %d entries exceeds its section", n)
	}
	return n, nil
}

func valTypes(r *reader) ([]byte, error) {
	n, err := count(r, 1)
	if err != nil {
		return nil, err
	}
	ts, err := r.bytes(n)
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		if !isValType(t) {
			return nil, r.errorf("unknown value type %#02x", t)
		}
	}
	return ts, nil
}

func (m *module) decodeTypes(r *reader) error {
	n, err := count(r, 3)
	if err != nil {
		return err
	}
	m.types = make([]FuncType, 0, n)
	for i := uint32(0); i < n; i++ {
		form, err := r.byte()
		if err != nil {
			return err
		}
		if form != 0x60 {
			return r.errorf("type %d: form %#02x is not a function type (GC types are not supported)", i, form)
		}
		var t FuncType
		if t.Params, err = valTypes(r); err != nil {
			return err
		}
		if t.Results, err = valTypes(r); err != nil {
			return err
		}
		m.types = append(m.types, t)
	}
	return nil
}

func readLimits(r *reader, what string) (limits, error) {
	flag, err := r.byte()
	if err != nil {
		return limits{}, err
	}
	var l limits
	switch flag {
	case 0x00:
	case 0x01:
		l.hasMax = true
	case 0x02, 0x03:
		return l, r.errorf("%s: shared memory (threads) is not supported", what)
	default:
		return l, r.errorf("%s: limits flag %#02x is not supported (64-bit memories and tables are not)", what, flag)
	}
	if l.min, err = r.u32(); err != nil {
		return l, err
	}
	if l.hasMax {
		if l.max, err = r.u32(); err != nil {
			return l, err
		}
	}
	return l, nil
}

func (m *module) decodeImports(r *reader) error {
	n, err := count(r, 4)
	if err != nil {
		return err
	}
	m.imports = make([]importEntry, 0, n)
	for i := uint32(0); i < n; i++ {
		start := r.off
		var e importEntry
		if e.module, err = r.name(); err != nil {
			return err
		}
		if e.name, err = r.name(); err != nil {
			return err
		}
		if e.kind, err = r.byte(); err != nil {
			return err
		}
		switch e.kind {
		case ExternFunc:
			if e.typeIdx, err = r.u32(); err != nil {
				return err
			}
			if e.typeIdx >= uint32(len(m.types)) {
				return r.errorf("import %q.%q: type index %d out of range", e.module, e.name, e.typeIdx)
			}
			m.nImportFuncs++
			m.importFuncs = append(m.importFuncs, e.typeIdx)
		case ExternTable:
			m.nImportTabs++
			t, err := r.byte()
			if err != nil {
				return err
			}
			if !isRefType(t) {
				return r.errorf("import %q.%q: unknown table element type %#02x", e.module, e.name, t)
			}
			if _, err = readLimits(r, "imported table"); err != nil {
				return err
			}
		case ExternMemory:
			return r.errorf("import %q.%q: imported memories are not supported (a guest must define its own memory)", e.module, e.name)
		case ExternGlobal:
			t, err := r.byte()
			if err != nil {
				return err
			}
			if !isValType(t) {
				return r.errorf("import %q.%q: unknown value type %#02x", e.module, e.name, t)
			}
			mut, err := r.byte()
			if err != nil {
				return err
			}
			if mut > 1 {
				return r.errorf("import %q.%q: bad mutability %#02x", e.module, e.name, mut)
			}
			m.nImportGlobs++
			m.importGlobMut = append(m.importGlobMut, mut == 1)
		case externTag:
			return r.errorf("import %q.%q: tags (exception handling) are not supported", e.module, e.name)
		default:
			return r.errorf("import %q.%q: unknown import kind %#02x", e.module, e.name, e.kind)
		}
		e.raw = r.b[start:r.off]
		m.imports = append(m.imports, e)
	}
	return nil
}

func (m *module) decodeFunctions(r *reader) error {
	n, err := count(r, 1)
	if err != nil {
		return err
	}
	m.funcTypes = make([]uint32, n)
	for i := range m.funcTypes {
		t, err := r.u32()
		if err != nil {
			return err
		}
		if t >= uint32(len(m.types)) {
			return r.errorf("function %d: type index %d out of range", uint32(i)+m.nImportFuncs, t)
		}
		m.funcTypes[i] = t
	}
	return nil
}

func (m *module) decodeTables(r *reader) error {
	n, err := count(r, 3)
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		t, err := r.byte()
		if err != nil {
			return err
		}
		if !isRefType(t) {
			return r.errorf("table %d: unknown element type %#02x (table initializers are not supported)", i, t)
		}
		l, err := readLimits(r, "table")
		if err != nil {
			return err
		}
		m.tables = append(m.tables, l)
		m.tableRefs = append(m.tableRefs, t)
	}
	return nil
}

func (m *module) decodeMemories(r *reader) error {
	n, err := count(r, 2)
	if err != nil {
		return err
	}
	if n > 1 {
		return r.errorf("%d memories: multiple memories are not supported", n)
	}
	if n == 1 {
		l, err := readLimits(r, "memory")
		if err != nil {
			return err
		}
		m.memory = &l
	}
	return nil
}

// constExpr reads a constant expression up to and including its end:
// one constant instruction (WebAssembly 2.0 has no extended constants);
// global.get may only name a global for which constGlobal is true (never
// one that instrumentation adds).
func constExpr(r *reader, constGlobal func(uint32) bool) ([]byte, error) {
	start := r.off
	in, err := decodeInst(r)
	if err != nil {
		return nil, err
	}
	op := r.b[in.start]
	switch {
	case in.kind == kGlobal && op == 0x23:
		if !constGlobal(in.idx) {
			return nil, r.errorf("constant expression: global %d is not an immutable imported global", in.idx)
		}
	case op >= 0x41 && op <= 0x44, op == 0xD0, op == 0xD2:
	case op == 0xFD && r.b[in.start+1] == 0x0C: // v128.const
	default:
		return nil, r.errorf("constant expression required (opcode %#02x)", op)
	}
	if in, err = decodeInst(r); err != nil {
		return nil, err
	}
	if in.kind != kEnd {
		return nil, r.errorf("constant expression of more than one instruction")
	}
	return r.b[start:r.off], nil
}

func (m *module) decodeGlobals(r *reader) error {
	n, err := count(r, 3)
	if err != nil {
		return err
	}
	m.globals = make([]globalEntry, 0, n)
	for i := uint32(0); i < n; i++ {
		var g globalEntry
		if g.valType, err = r.byte(); err != nil {
			return err
		}
		if !isValType(g.valType) {
			return r.errorf("global %d: unknown value type %#02x", i, g.valType)
		}
		mut, err := r.byte()
		if err != nil {
			return err
		}
		if mut > 1 {
			return r.errorf("global %d: bad mutability %#02x", i, mut)
		}
		g.mutable = mut == 1
		if g.init, err = constExpr(r, m.constGlobal); err != nil {
			return err
		}
		m.globals = append(m.globals, g)
	}
	return nil
}

func (m *module) decodeExports(r *reader) error {
	n, err := count(r, 3)
	if err != nil {
		return err
	}
	m.exports = make([]exportEntry, 0, n)
	for i := uint32(0); i < n; i++ {
		var e exportEntry
		if e.name, err = r.name(); err != nil {
			return err
		}
		if e.kind, err = r.byte(); err != nil {
			return err
		}
		if e.kind > ExternGlobal {
			return r.errorf("export %q: unsupported export kind %#02x", e.name, e.kind)
		}
		if e.idx, err = r.u32(); err != nil {
			return err
		}
		m.exports = append(m.exports, e)
	}
	return nil
}

func (m *module) decodeCode(r *reader) error {
	n, err := count(r, 2)
	if err != nil {
		return err
	}
	m.codes = make([]body, 0, n)
	for i := uint32(0); i < n; i++ {
		size, err := r.u32()
		if err != nil {
			return err
		}
		base := r.pos()
		b, err := r.bytes(size)
		if err != nil {
			return err
		}
		m.codes = append(m.codes, body{b: b, base: base})
	}
	return nil
}

// rewriteExpr copies a constant expression, renumbering ref.func.
func rewriteExpr(dst, expr []byte, fn func(uint32) uint32) ([]byte, error) {
	r := &reader{b: expr}
	for !r.eof() {
		in, err := decodeInst(r)
		if err != nil {
			return nil, err
		}
		if in.kind == kRefFunc {
			dst = append(dst, expr[in.start:in.idxStart]...)
			dst = appendU32(dst, fn(in.idx))
		} else {
			dst = append(dst, expr[in.start:in.end]...)
		}
	}
	return dst, nil
}

// rewriteElements re-encodes the element section with every function
// index renumbered, in all eight segment forms. It passes each active
// segment to active (when not nil).
func rewriteElements(payload []byte, base int, constGlobal func(uint32) bool, fn func(uint32) uint32, active func(segment)) ([]byte, error) {
	r := &reader{b: payload, base: base}
	n, err := count(r, 2)
	if err != nil {
		return nil, err
	}
	out := appendU32(nil, n)
	for i := uint32(0); i < n; i++ {
		flags, err := r.u32()
		if err != nil {
			return nil, err
		}
		if flags > 7 {
			return nil, r.errorf("element segment %d: unknown flags %d", i, flags)
		}
		out = appendU32(out, flags)
		var table uint32
		if flags&3 == 2 { // explicit table index
			if table, err = r.u32(); err != nil {
				return nil, err
			}
			out = appendU32(out, table)
		}
		var offset []byte
		if flags&1 == 0 { // active: offset expression
			if offset, err = constExpr(r, constGlobal); err != nil {
				return nil, err
			}
			out = append(out, offset...)
		}
		if flags&3 != 0 { // elemkind or reftype
			k, err := r.byte()
			if err != nil {
				return nil, err
			}
			if flags&4 == 0 && k != 0x00 {
				return nil, r.errorf("element segment %d: unknown element kind %#02x", i, k)
			}
			if flags&4 != 0 && !isRefType(k) {
				return nil, r.errorf("element segment %d: unknown reference type %#02x", i, k)
			}
			out = append(out, k)
		}
		cnt, err := count(r, 1)
		if err != nil {
			return nil, err
		}
		if flags&1 == 0 && active != nil {
			active(segment{i: i, table: table, offset: offset, n: cnt})
		}
		out = appendU32(out, cnt)
		for j := uint32(0); j < cnt; j++ {
			if flags&4 == 0 {
				f, err := r.u32()
				if err != nil {
					return nil, err
				}
				out = appendU32(out, fn(f))
				continue
			}
			e, err := constExpr(r, constGlobal)
			if err != nil {
				return nil, err
			}
			if out, err = rewriteExpr(out, e, fn); err != nil {
				return nil, err
			}
		}
	}
	if !r.eof() {
		return nil, r.errorf("element section has %d trailing bytes", r.left())
	}
	return out, nil
}
