package tflite

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// reader is a bounds-checked flatbuffer reader. Every structural byte it
// reads is recorded as a span; weight data is located but never read, so
// the recorded spans are exactly the bytes the parsed structure depends on.
type reader struct {
	b     []byte
	spans []span
	work  int
	pace  *pacer // nil: not paced
}

// span is a byte range [off, off+n) of the model.
type span struct{ off, n int }

func errf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidModel}, args...)...)
}

func (r *reader) spend(n int) error {
	r.work += n
	if r.work > maxParseWork {
		return fmt.Errorf("%w: model structure too large", ErrLimit)
	}
	if r.pace != nil && r.pace.tick(parseWeight*n) {
		return ErrStopped
	}
	return nil
}

// parseWeight is one unit of parse work (a table or vector element
// visited, tens of ns) in the pacer's units (a multiply-accumulate is a
// fraction of a ns).
const parseWeight = 64

// need checks that [off, off+n) lies inside the buffer and records it.
func (r *reader) need(off, n int, what string) error {
	if off < 0 || n < 0 || off > len(r.b) || n > len(r.b)-off {
		return errf("%s at %d+%d out of bounds (size %d)", what, off, n, len(r.b))
	}
	r.spans = append(r.spans, span{off, n})
	return nil
}

func (r *reader) u16(off int) int { return int(binary.LittleEndian.Uint16(r.b[off:])) }
func (r *reader) u32(off int) uint32 {
	return binary.LittleEndian.Uint32(r.b[off:])
}

// table is a decoded flatbuffer table header.
type table struct {
	r      *reader
	pos    int // table start
	vt     int // vtable start
	vtLen  int
	objLen int
}

// root returns the root table of the buffer.
func (r *reader) root() (table, error) {
	if err := r.need(0, 8, "header"); err != nil {
		return table{}, err
	}
	return r.table(int(r.u32(0)))
}

func (r *reader) table(pos int) (table, error) {
	if err := r.spend(1); err != nil {
		return table{}, err
	}
	if err := r.need(pos, 4, "table"); err != nil {
		return table{}, err
	}
	vt := int64(pos) - int64(int32(r.u32(pos)))
	if vt < 0 || vt > int64(len(r.b)) {
		return table{}, errf("vtable of table at %d out of bounds", pos)
	}
	if err := r.need(int(vt), 4, "vtable"); err != nil {
		return table{}, err
	}
	t := table{r: r, pos: pos, vt: int(vt), vtLen: r.u16(int(vt)), objLen: r.u16(int(vt) + 2)}
	if t.vtLen < 4 || t.vtLen%2 != 0 || t.objLen < 4 {
		return table{}, errf("malformed vtable at %d", vt)
	}
	if err := r.need(t.vt, t.vtLen, "vtable"); err != nil {
		return table{}, err
	}
	if err := r.need(pos, t.objLen, "table"); err != nil {
		return table{}, err
	}
	return t, nil
}

// field returns the position of field i and whether it is present with at
// least size bytes inside the table.
func (t table) field(i, size int) (int, bool, error) {
	o := 4 + 2*i
	if o+2 > t.vtLen {
		return 0, false, nil
	}
	fo := t.r.u16(t.vt + o)
	if fo == 0 {
		return 0, false, nil
	}
	if fo+size > t.objLen {
		return 0, false, errf("field %d of table at %d overruns it", i, t.pos)
	}
	return t.pos + fo, true, nil
}

func (t table) u8(i int, def uint8) (uint8, error) {
	p, ok, err := t.field(i, 1)
	if !ok || err != nil {
		return def, err
	}
	return t.r.b[p], nil
}

func (t table) i32(i int, def int32) (int32, error) {
	p, ok, err := t.field(i, 4)
	if !ok || err != nil {
		return def, err
	}
	return int32(t.r.u32(p)), nil
}

func (t table) u32(i int, def uint32) (uint32, error) {
	v, err := t.i32(i, int32(def))
	return uint32(v), err
}

func (t table) u64(i int, def uint64) (uint64, error) {
	p, ok, err := t.field(i, 8)
	if !ok || err != nil {
		return def, err
	}
	return binary.LittleEndian.Uint64(t.r.b[p:]), nil
}

func (t table) f32(i int, def float32) (float32, error) {
	v, err := t.i32(i, int32(math.Float32bits(def)))
	return math.Float32frombits(uint32(v)), err
}

// ref follows the uoffset stored in field i; ok is false when absent.
func (t table) ref(i int) (int, bool, error) {
	p, ok, err := t.field(i, 4)
	if !ok || err != nil {
		return 0, false, err
	}
	target := int64(p) + int64(t.r.u32(p))
	if target > int64(len(t.r.b)) {
		return 0, false, errf("offset in field %d of table at %d out of bounds", i, t.pos)
	}
	return int(target), true, nil
}

func (t table) subtable(i int) (table, bool, error) {
	p, ok, err := t.ref(i)
	if !ok || err != nil {
		return table{}, false, err
	}
	st, err := t.r.table(p)
	return st, err == nil, err
}

// vector locates the vector in field i with elements of elem bytes. When
// record is false only its length prefix is recorded (weight data).
type vector struct {
	r     *reader
	start int // first element
	n     int
	elem  int
}

func (t table) vector(i, elem int, record bool) (vector, error) {
	p, ok, err := t.ref(i)
	if !ok || err != nil {
		return vector{r: t.r}, err
	}
	if err := t.r.need(p, 4, "vector length"); err != nil {
		return vector{}, err
	}
	n := uint64(t.r.u32(p))
	if n*uint64(elem) > uint64(len(t.r.b)-p-4) {
		return vector{}, errf("vector at %d (%d elements) out of bounds", p, n)
	}
	v := vector{r: t.r, start: p + 4, n: int(n), elem: elem}
	if record {
		if err := t.r.spend(v.n); err != nil {
			return vector{}, err
		}
		t.r.spans = append(t.r.spans, span{v.start, v.n * elem})
	}
	return v, nil
}

func (v vector) i32(k int) int32 { return int32(v.r.u32(v.start + 4*k)) }
func (v vector) f32(k int) float32 {
	return math.Float32frombits(v.r.u32(v.start + 4*k))
}
func (v vector) i64(k int) int64 {
	return int64(binary.LittleEndian.Uint64(v.r.b[v.start+8*k:]))
}

// table returns the k-th element of a vector of tables.
func (v vector) table(k int) (table, error) {
	p := v.start + 4*k
	return v.r.table(p + int(v.r.u32(p)))
}

// ints returns a vector of int32 as ints.
func (v vector) ints() []int {
	out := make([]int, v.n)
	for k := range out {
		out[k] = int(v.i32(k))
	}
	return out
}

// str reads the string in field i (recorded: names are structure too).
func (t table) str(i int) (string, error) {
	v, err := t.vector(i, 1, true)
	if err != nil {
		return "", err
	}
	return string(t.r.b[v.start : v.start+v.n]), nil
}

// spanGap: spans closer than this are merged, gap included. Comparing a
// few extra bytes (at worst weight bytes, whose change then costs a
// re-parse) is cheaper than one more bytes.Equal call per small span.
const spanGap = 32

// mergedSpans sorts and coalesces the recorded spans.
func (r *reader) mergedSpans() []span {
	s := slices.Clone(r.spans)
	slices.SortFunc(s, func(a, b span) int { return a.off - b.off })
	out := s[:0]
	for _, x := range s {
		if x.n == 0 {
			continue
		}
		if k := len(out) - 1; k >= 0 && x.off <= out[k].off+out[k].n+spanGap {
			if e := x.off + x.n; e > out[k].off+out[k].n {
				out[k].n = e - out[k].off
			}
			continue
		}
		out = append(out, x)
	}
	return slices.Clip(out)
}
