// Package adversary makes hostile guest code: modules and programs that
// are valid and small enough to be accepted but cost the device as much
// as possible to install (the shapes of issue 11, and random mixes of
// them for fuzzing). Tests of both runtimes and their fuzz targets use
// it: every image it makes must install within the install-time bounds
// or be refused quickly with a reason naming the limit.
package adversary

// Wasm value types.
const (
	I32  = 0x7F
	V128 = 0x7B
)

// Module builds a WebAssembly module: types, functions, one exported
// function tc_main () -> (i32) as the last function.
type Module struct {
	types   [][]byte // encoded function types (0x60 ...)
	funcs   []uint32 // type index of each function
	bodies  [][]byte // encoded bodies (locals and code, without the size)
	memory  []byte   // the memory section's contents, if any
	exports []export // exported besides tc_main
}

type export struct {
	name  string
	kind  byte
	index uint32
}

// Type adds a function type and returns its index.
func (m *Module) Type(params, results []byte) uint32 {
	t := []byte{0x60}
	t = AppendU32(t, uint32(len(params)))
	t = append(t, params...)
	t = AppendU32(t, uint32(len(results)))
	t = append(t, results...)
	m.types = append(m.types, t)
	return uint32(len(m.types) - 1)
}

// Func adds a function of type typ whose locals are given as runs of
// (count, type) and whose code is code (which must end with 0x0B).
func (m *Module) Func(typ uint32, locals [][2]uint32, code []byte) uint32 {
	b := AppendU32(nil, uint32(len(locals)))
	for _, l := range locals {
		b = AppendU32(b, l[0])
		b = append(b, byte(l[1]))
	}
	b = append(b, code...)
	m.funcs = append(m.funcs, typ)
	m.bodies = append(m.bodies, b)
	return uint32(len(m.funcs) - 1)
}

// Bytes encodes the module with a tc_main that returns 0 added last.
func (m *Module) Bytes() []byte {
	main := m.Type(nil, []byte{I32})
	mainIdx := m.Func(main, nil, []byte{0x41, 0, 0x0B})
	out := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	var sec []byte
	sec = AppendU32(sec, uint32(len(m.types)))
	for _, t := range m.types {
		sec = append(sec, t...)
	}
	out = section(out, 1, sec)
	sec = AppendU32(nil, uint32(len(m.funcs)))
	for _, f := range m.funcs {
		sec = AppendU32(sec, f)
	}
	out = section(out, 3, sec)
	if m.memory != nil {
		out = section(out, 5, m.memory)
	}
	sec = AppendU32(nil, uint32(1+len(m.exports)))
	sec = AppendU32(sec, 7)
	sec = append(sec, "tc_main"...)
	sec = append(sec, 0)
	sec = AppendU32(sec, mainIdx)
	for _, e := range m.exports {
		sec = AppendU32(sec, uint32(len(e.name)))
		sec = append(sec, e.name...)
		sec = append(sec, e.kind)
		sec = AppendU32(sec, e.index)
	}
	out = section(out, 7, sec)
	sec = AppendU32(nil, uint32(len(m.bodies)))
	for _, b := range m.bodies {
		sec = AppendU32(sec, uint32(len(b)))
		sec = append(sec, b...)
	}
	out = section(out, 10, sec)
	m.types, m.funcs, m.bodies = m.types[:len(m.types)-1], m.funcs[:len(m.funcs)-1], m.bodies[:len(m.bodies)-1]
	return out
}

func section(out []byte, id byte, payload []byte) []byte {
	out = append(out, id)
	out = AppendU32(out, uint32(len(payload)))
	return append(out, payload...)
}

// AppendU32 appends the unsigned LEB128 of v.
func AppendU32(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// MultiResult is n functions, each of its own type with two results (the
// instrumenter once looked each block type up by scanning every type:
// 32,000 of them took 75 s).
func MultiResult(n int) []byte {
	var m Module
	m.AddMultiResult(0, n)
	return m.Bytes()
}

// AddMultiResult adds n functions of distinct two-result types, from the
// first-th such type on.
func (m *Module) AddMultiResult(first, n int) {
	vals := []byte{0x7F, 0x7E, 0x7D, 0x7C}
	for i := first; i < first+n; i++ {
		var params []byte
		for x := i; ; x /= 4 {
			params = append(params, vals[x%4])
			if x < 4 {
				break
			}
		}
		t := m.Type(params, []byte{I32, I32})
		m.Func(t, nil, []byte{0x41, 1, 0x41, 2, 0x0B})
	}
}

// Loops is one function with `locals` v128 locals and n loops one after
// the other, each copying every local to the next (each loop touches all
// of them: an out-of-line checkpoint saves and restores each).
func Loops(n, locals int) []byte {
	var m Module
	m.AddLoops(n, locals)
	return m.Bytes()
}

// AddLoops adds the functions of Loops to m.
func (m *Module) AddLoops(n, locals int) {
	t := m.Type(nil, nil)
	var code []byte
	for range n {
		code = append(code, 0x03, 0x40)
		for k := range locals {
			code = append(code, 0x20)
			code = AppendU32(code, uint32(k))
			code = append(code, 0x21)
			code = AppendU32(code, uint32((k+1)%locals))
		}
		code = append(code, 0x0B)
	}
	code = append(code, 0x0B)
	m.Func(t, [][2]uint32{{uint32(locals), V128}}, code)
}

// NestedLoops is one function with `locals` i32 locals and depth nested
// loops whose innermost body reads `reads` distinct locals (spread over
// all of them): a compiler building SSA form may give each read a phi in
// every enclosing loop header.
func NestedLoops(depth, locals, reads int) []byte {
	var m Module
	m.AddNestedLoops(depth, locals, reads)
	return m.Bytes()
}

// AddNestedLoops adds the functions of NestedLoops to m.
func (m *Module) AddNestedLoops(depth, locals, reads int) {
	t := m.Type(nil, nil)
	var code []byte
	for range depth {
		code = append(code, 0x03, 0x40)
	}
	step := max(locals/max(reads, 1), 1)
	for i := range reads {
		code = append(code, 0x20)
		code = AppendU32(code, uint32((i*step)%locals))
		code = append(code, 0x1A) // drop
	}
	for range depth {
		code = append(code, 0x0B)
	}
	code = append(code, 0x0B)
	m.Func(t, [][2]uint32{{uint32(locals), I32}}, code)
}

// StraightLine is one function of about size bytes of code without a
// branch: arithmetic over eight locals.
func StraightLine(size int) []byte {
	var m Module
	m.AddStraightLine(size)
	return m.Bytes()
}

// AddStraightLine adds the functions of StraightLine to m.
func (m *Module) AddStraightLine(size int) {
	t := m.Type(nil, nil)
	code := make([]byte, 0, size+16)
	for i := 0; len(code) < size; i++ {
		a, b, c := byte(i%8), byte((i*3+1)%8), byte((i*5+2)%8)
		code = append(code, 0x20, a, 0x20, b, 0x6A, 0x21, c) // c = a + b
	}
	code = append(code, 0x0B)
	m.Func(t, [][2]uint32{{8, I32}}, code)
}

// Blocks is funcs functions of n `if` blocks one after the other, each
// adding to a local: n basic blocks and no loop.
func Blocks(funcs, n int) []byte {
	var m Module
	m.AddBlocks(funcs, n)
	return m.Bytes()
}

// AddBlocks adds the functions of Blocks to m.
func (m *Module) AddBlocks(funcs, n int) {
	t := m.Type([]byte{I32}, []byte{I32})
	var code []byte
	for range n {
		code = append(code, 0x20, 0, 0x04, 0x40, 0x20, 0, 0x41, 1, 0x6A, 0x21, 0, 0x0B)
	}
	code = append(code, 0x20, 0, 0x0B)
	for range funcs {
		m.Func(t, nil, code)
	}
}

// DeepStack is funcs functions of straight-line code that pushes n
// values before it adds them up: n values live at once.
func DeepStack(funcs, n int) []byte {
	var m Module
	m.AddDeepStack(funcs, n)
	return m.Bytes()
}

// AddDeepStack adds the functions of DeepStack to m.
func (m *Module) AddDeepStack(funcs, n int) {
	t := m.Type([]byte{I32}, []byte{I32})
	var code []byte
	for range n {
		code = append(code, 0x20, 0, 0x41, 3, 0x6C) // local.get 0; i32.const 3; i32.mul
	}
	for range n - 1 {
		code = append(code, 0x6A) // i32.add
	}
	code = append(code, 0x0B)
	for range funcs {
		m.Func(t, nil, code)
	}
}

// ManyLocals is n functions, each declaring `locals` i32 locals in four
// bytes (compiled code zeroes each at entry) and using the last.
func ManyLocals(n, locals int) []byte {
	var m Module
	m.AddManyLocals(n, locals)
	return m.Bytes()
}

// AddManyLocals adds the functions of ManyLocals to m.
func (m *Module) AddManyLocals(n, locals int) {
	t := m.Type(nil, []byte{I32})
	code := AppendU32([]byte{0x20}, uint32(locals-1))
	code = append(code, 0x0B)
	for range n {
		m.Func(t, [][2]uint32{{uint32(locals), I32}}, code)
	}
}

// BrTable is one function with a br_table of n targets, alternating
// between two enclosing blocks.
func BrTable(n int) []byte {
	var m Module
	m.AddBrTable(n)
	return m.Bytes()
}

// AddBrTable adds the functions of BrTable to m.
func (m *Module) AddBrTable(n int) {
	t := m.Type([]byte{I32}, []byte{I32})
	code := []byte{0x02, 0x40, 0x02, 0x40, 0x20, 0, 0x0E}
	code = AppendU32(code, uint32(n))
	for i := range n + 1 {
		code = append(code, byte(i%2))
	}
	code = append(code, 0x0B, 0x0B, 0x20, 0, 0x0B)
	m.Func(t, nil, code)
}

// Mix is a module of up to eight parts chosen and sized by data (a
// fuzzer's input): the shapes above, each from tiny to beyond the bounds.
func Mix(data []byte) []byte {
	var m Module
	multi := 0
	for i := 0; i+3 <= len(data) && i < 24; i += 3 {
		a, b := int(data[i+1]), int(data[i+2])
		switch data[i] % 8 {
		case 0:
			m.AddMultiResult(multi, a*64+1)
			multi += a*64 + 1
		case 1:
			m.AddLoops(1+a*4, 1+b%128)
		case 2:
			m.AddNestedLoops(1+a, 1+b*200, 1+b*8)
		case 3:
			m.AddStraightLine(a*b*16 + 1)
		case 4:
			m.AddBlocks(1+a%8, b*40+1)
		case 5:
			m.AddDeepStack(1+a%16, b*20+1)
		case 6:
			m.AddManyLocals(1+a*4, 1+b*200)
		case 7:
			m.AddBrTable(a*b*8 + 1)
		}
	}
	return m.Bytes()
}

// ExportMissingGlobal is a module exporting global 0, which it does not
// have: invalid, but after instrumentation the added fuel counter is
// global 0 and the export would name it.
func ExportMissingGlobal() []byte {
	var m Module
	m.exports = append(m.exports, export{"g", 3, 0})
	return m.Bytes()
}

// MemoryMaxOver is a module whose memory's maximum is 65,537 pages (over
// the 4 GiB of a 32-bit memory): invalid, but clamping the maximum to the
// container's limit would make it valid.
func MemoryMaxOver() []byte {
	var m Module
	m.memory = []byte{1, 1, 0, 0x81, 0x80, 0x04} // one memory with a maximum: min 0, max 65,537
	return m.Bytes()
}
