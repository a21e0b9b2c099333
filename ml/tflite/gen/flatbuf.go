// Package gen writes int8 TFLite models with a small flatbuffer writer of
// its own, and defines the project's demo model.
package gen

import (
	"encoding/binary"
	"math"
)

// A flatbuffer object tree, serialized front to back: every object is
// placed after the one that refers to it, so all uoffsets point forward
// as the format requires; vtables sit right before their table.

type node interface{ place(w *writer) int }

// table is a flatbuffer table; fields are indexed as in the schema.
type table struct{ fields []field }

type field struct {
	idx    int
	scalar []byte // inline little-endian value, or nil
	ref    node   // child object, or nil
}

func (t *table) set(idx int, v []byte)  { t.fields = append(t.fields, field{idx: idx, scalar: v}) }
func (t *table) ref(idx int, n node)    { t.fields = append(t.fields, field{idx: idx, ref: n}) }
func (t *table) u8(idx int, v uint8)    { t.set(idx, []byte{v}) }
func (t *table) i32(idx int, v int32)   { t.set(idx, binary.LittleEndian.AppendUint32(nil, uint32(v))) }
func (t *table) f32(idx int, v float32) { t.i32(idx, int32(math.Float32bits(v))) }

// vec is a vector of scalars (elem bytes each) or of tables.
type vec struct {
	elem   int      // element size in bytes
	align  int      // payload alignment beyond elem (weights: 16)
	data   []byte   // scalar payload
	tables []*table // or table elements
	pos    int      // where it was placed
}

type str string

type writer struct{ b []byte }

func (w *writer) pad(align, extra int) {
	for (len(w.b)+extra)%align != 0 {
		w.b = append(w.b, 0)
	}
}

func (t *table) place(w *writer) int {
	// Inline layout: soffset, then 4-byte fields, then 1-byte fields.
	maxIdx := -1
	for _, f := range t.fields {
		maxIdx = max(maxIdx, f.idx)
	}
	offs := make([]int, maxIdx+1)
	size := 4
	for pass := range 2 {
		for i, f := range t.fields {
			n := 4
			if f.scalar != nil {
				n = len(f.scalar)
			}
			if (n == 4) == (pass == 0) {
				offs[t.fields[i].idx] = size
				size += n
			}
		}
	}
	vtLen := 4 + 2*(maxIdx+1)
	w.pad(4, vtLen)
	vt := len(w.b)
	w.b = binary.LittleEndian.AppendUint16(w.b, uint16(vtLen))
	w.b = binary.LittleEndian.AppendUint16(w.b, uint16(size))
	for _, o := range offs {
		w.b = binary.LittleEndian.AppendUint16(w.b, uint16(o))
	}
	pos := len(w.b)
	w.b = binary.LittleEndian.AppendUint32(w.b, uint32(int32(pos-vt)))
	w.b = append(w.b, make([]byte, size-4)...)
	for _, f := range t.fields {
		if f.scalar != nil {
			copy(w.b[pos+offs[f.idx]:], f.scalar)
		}
	}
	w.pad(4, 0)
	for _, f := range t.fields {
		if f.ref != nil {
			at := pos + offs[f.idx]
			child := f.ref.place(w)
			binary.LittleEndian.PutUint32(w.b[at:], uint32(child-at))
		}
	}
	return pos
}

func (v *vec) place(w *writer) int {
	if v.tables != nil {
		w.pad(4, 0)
		pos := len(w.b)
		w.b = binary.LittleEndian.AppendUint32(w.b, uint32(len(v.tables)))
		w.b = append(w.b, make([]byte, 4*len(v.tables))...)
		for i, t := range v.tables {
			at := pos + 4 + 4*i
			child := t.place(w)
			binary.LittleEndian.PutUint32(w.b[at:], uint32(child-at))
		}
		return pos
	}
	w.pad(max(4, v.elem, v.align), 4)
	pos := len(w.b)
	v.pos = pos
	w.b = binary.LittleEndian.AppendUint32(w.b, uint32(len(v.data)/v.elem))
	w.b = append(w.b, v.data...)
	return pos
}

func (s str) place(w *writer) int {
	w.pad(4, 0)
	pos := len(w.b)
	w.b = binary.LittleEndian.AppendUint32(w.b, uint32(len(s)))
	w.b = append(w.b, s...)
	w.b = append(w.b, 0)
	return pos
}

// finish serializes root with the file identifier.
func finish(root *table, ident string) []byte {
	w := &writer{b: make([]byte, 8)}
	copy(w.b[4:], ident)
	pos := root.place(w)
	binary.LittleEndian.PutUint32(w.b, uint32(pos))
	w.pad(16, 0)
	return w.b
}

func i32s(v []int32) *vec {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, uint32(x))
	}
	return &vec{elem: 4, data: b}
}

func f32s(v []float32) *vec {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return &vec{elem: 4, data: b}
}

func i64s(v []int64) *vec {
	b := make([]byte, 0, 8*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint64(b, uint64(x))
	}
	return &vec{elem: 8, data: b}
}
