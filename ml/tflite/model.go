package tflite

import (
	"bytes"
	"fmt"
	"math"
)

// TensorType is the TFLite tensor element type (schema TensorType).
type TensorType uint8

// The tensor types this package names; others are reported by number.
const (
	Float32 TensorType = 0
	Int32   TensorType = 2
	Uint8   TensorType = 3
	Int64   TensorType = 4
	Int16   TensorType = 7
	Int8    TensorType = 9
)

var typeSizes = map[TensorType]int{0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 12: 8, 15: 4, 16: 2}

func (t TensorType) String() string {
	switch t {
	case Float32:
		return "float32"
	case Int32:
		return "int32"
	case Uint8:
		return "uint8"
	case Int64:
		return "int64"
	case Int16:
		return "int16"
	case Int8:
		return "int8"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Builtin operator codes (schema BuiltinOperator) the engine knows.
const (
	opAdd             = 0
	opAveragePool2D   = 1
	opConv2D          = 3
	opDepthwiseConv2D = 4
	opDequantize      = 6
	opFullyConnected  = 9
	opMaxPool2D       = 17
	opReshape         = 22
	opSoftmax         = 25
	opQuantize        = 114
)

var opNames = map[int]string{
	opAdd: "ADD", opAveragePool2D: "AVERAGE_POOL_2D", opConv2D: "CONV_2D",
	opDepthwiseConv2D: "DEPTHWISE_CONV_2D", opDequantize: "DEQUANTIZE",
	opFullyConnected: "FULLY_CONNECTED", opMaxPool2D: "MAX_POOL_2D",
	opReshape: "RESHAPE", opSoftmax: "SOFTMAX", opQuantize: "QUANTIZE",
}

func opName(code int) string {
	if n, ok := opNames[code]; ok {
		return n
	}
	return fmt.Sprintf("builtin operator %d", code)
}

// TensorInfo describes a tensor: shape, type and affine quantization.
type TensorInfo struct {
	Name  string
	Type  TensorType
	Shape []int
	// ShapeSignature is the shape with -1 for dynamic dimensions (often
	// the batch); nil when the model does not carry one.
	ShapeSignature []int
	// Scale and ZeroPoint hold one entry per tensor, or one per slice
	// along QuantizedDimension (per-channel weights); empty if unquantized.
	Scale              []float32
	ZeroPoint          []int64
	QuantizedDimension int
	Bytes              int // element count times element size
}

// tensor is a parsed tensor plus where its constant data lives.
type tensor struct {
	TensorInfo
	constant bool
	dataOff  int // constant data in the model bytes
	variable bool
}

func (t *tensor) elems() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Operator options the supported kernels use (schema *Options tables).
type options struct {
	padding          uint8 // 0 SAME, 1 VALID
	strideW, strideH int
	dilW, dilH       int
	filterW, filterH int
	depthMultiplier  int
	activation       uint8
	beta             float32
	keepNumDims      bool
	weightsFormat    uint8
}

type operator struct {
	code    int
	inputs  []int // -1 marks an omitted optional input
	outputs []int
	opts    options
}

// Model is a parsed, structurally validated model. It holds no reference
// to the model bytes: constant data is located by offset and read in place
// by the interpreter from the bytes handed to Invoke.
type Model struct {
	size     int
	tensors  []tensor
	ops      []operator
	inputs   []int
	outputs  []int
	spans    []span // structural byte ranges (sorted, disjoint)
	snapshot []byte // the bytes of spans, concatenated
}

// Input returns the first input tensor's description.
func (m *Model) Input() TensorInfo { return m.tensors[m.inputs[0]].TensorInfo }

// Output returns the first output tensor's description.
func (m *Model) Output() TensorInfo { return m.tensors[m.outputs[0]].TensorInfo }

// Size is the length in bytes of the model the structure was parsed from.
func (m *Model) Size() int { return m.size }

// StructureBytes is how many bytes of the model are structure (everything
// the parser read); the rest is weight data or unused.
func (m *Model) StructureBytes() int { return len(m.snapshot) }

// Matches reports whether b has the same length and the same structural
// bytes as the parsed model, so that it parses to an identical structure
// and may differ only in weight data (which is read in place).
func (m *Model) Matches(b []byte) bool {
	if len(b) != m.size {
		return false
	}
	k := 0
	for _, s := range m.spans {
		if !bytes.Equal(b[s.off:s.off+s.n], m.snapshot[k:k+s.n]) {
			return false
		}
		k += s.n
	}
	return true
}

// Parse validates the structure of a TFLite flatbuffer (subgraph 0) and
// returns its description. It never reads weight data.
func Parse(b []byte) (*Model, error) { return parse(b, nil) }

// parse is Parse paced by p (nil: not paced); it fails with ErrStopped
// when p stops.
func parse(b []byte, p *pacer) (*Model, error) {
	r := &reader{b: b, pace: p}
	root, err := r.root()
	if err != nil {
		return nil, err
	}
	if string(b[4:8]) != "TFL3" {
		return nil, errf("missing TFL3 file identifier")
	}
	if v, err := root.u32(0, 0); err != nil {
		return nil, err
	} else if v != 3 {
		return nil, fmt.Errorf("%w: schema version %d (want 3)", ErrUnsupported, v)
	}
	m := &Model{size: len(b)}
	codes, err := parseOpcodes(root)
	if err != nil {
		return nil, err
	}
	subs, err := root.vector(2, 4, true)
	if err != nil {
		return nil, err
	}
	if subs.n < 1 {
		return nil, errf("no subgraph")
	}
	sg, err := subs.table(0)
	if err != nil {
		return nil, err
	}
	bufs, err := root.vector(4, 4, true)
	if err != nil {
		return nil, err
	}
	if err := m.parseTensors(r, sg, bufs); err != nil {
		return nil, err
	}
	if m.inputs, err = m.tensorList(sg, 1, "subgraph input", false); err != nil {
		return nil, err
	}
	if m.outputs, err = m.tensorList(sg, 2, "subgraph output", false); err != nil {
		return nil, err
	}
	if len(m.inputs) == 0 || len(m.outputs) == 0 {
		return nil, errf("subgraph without inputs or outputs")
	}
	if err := m.parseOperators(sg, codes); err != nil {
		return nil, err
	}
	m.spans = r.mergedSpans()
	for _, s := range m.spans {
		m.snapshot = append(m.snapshot, b[s.off:s.off+s.n]...)
	}
	return m, nil
}

// parseOpcodes returns the effective builtin code of each operator code:
// the larger of deprecated_builtin_code and builtin_code, as TFLite does.
func parseOpcodes(root table) ([]int, error) {
	v, err := root.vector(1, 4, true)
	if err != nil {
		return nil, err
	}
	if v.n > MaxOperators {
		return nil, fmt.Errorf("%w: %d operator codes", ErrLimit, v.n)
	}
	codes := make([]int, v.n)
	for k := range codes {
		t, err := v.table(k)
		if err != nil {
			return nil, err
		}
		dep, err := t.u8(0, 0)
		if err != nil {
			return nil, err
		}
		bc, err := t.i32(3, 0)
		if err != nil {
			return nil, err
		}
		codes[k] = max(int(bc), int(int8(dep)))
		if codes[k] < 0 {
			return nil, errf("negative builtin code %d", codes[k])
		}
	}
	return codes, nil
}

func (m *Model) parseTensors(r *reader, sg table, bufs vector) error {
	v, err := sg.vector(0, 4, true)
	if err != nil {
		return err
	}
	if v.n > MaxTensors {
		return fmt.Errorf("%w: %d tensors", ErrLimit, v.n)
	}
	m.tensors = make([]tensor, v.n)
	for k := range m.tensors {
		t, err := v.table(k)
		if err != nil {
			return err
		}
		if err := m.parseTensor(r, k, t, bufs); err != nil {
			return err
		}
	}
	return nil
}

func (m *Model) parseTensor(r *reader, k int, t table, bufs vector) error {
	ts := &m.tensors[k]
	shape, err := t.vector(0, 4, true)
	if err != nil {
		return err
	}
	if shape.n > MaxRank {
		return fmt.Errorf("%w: tensor %d has rank %d", ErrUnsupported, k, shape.n)
	}
	ts.Shape = shape.ints()
	typ, err := t.u8(1, 0)
	if err != nil {
		return err
	}
	ts.Type = TensorType(typ)
	esize, ok := typeSizes[ts.Type]
	if !ok {
		return fmt.Errorf("%w: tensor %d has type %v", ErrUnsupported, k, ts.Type)
	}
	n := int64(esize)
	for _, d := range ts.Shape {
		if d < 0 {
			return errf("tensor %d has negative dimension %d", k, d)
		}
		n *= int64(d)
		if n > MaxTensorBytes {
			return fmt.Errorf("%w: tensor %d larger than %d bytes", ErrLimit, k, MaxTensorBytes)
		}
	}
	ts.Bytes = int(n)
	if ts.Name, err = t.str(3); err != nil {
		return err
	}
	if err := ts.parseQuant(t); err != nil {
		return fmt.Errorf("tensor %d: %w", k, err)
	}
	var isVar uint8
	if isVar, err = t.u8(5, 0); err != nil {
		return err
	}
	ts.variable = isVar != 0
	if _, ok, err := t.ref(6); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("%w: tensor %d is sparse", ErrUnsupported, k)
	}
	sig, err := t.vector(7, 4, true)
	if err != nil {
		return err
	}
	if sig.n > 0 {
		ts.ShapeSignature = sig.ints()
		if len(ts.ShapeSignature) != len(ts.Shape) {
			return errf("tensor %d: shape_signature rank differs from shape", k)
		}
		for i, d := range ts.ShapeSignature {
			if d != -1 && d != ts.Shape[i] {
				return errf("tensor %d: shape_signature %v does not fit shape %v", k, ts.ShapeSignature, ts.Shape)
			}
		}
	}
	bi, err := t.u32(2, 0)
	if err != nil {
		return err
	}
	if int64(bi) >= int64(bufs.n) {
		if bi == 0 && bufs.n == 0 {
			return nil
		}
		return errf("tensor %d refers to buffer %d of %d", k, bi, bufs.n)
	}
	return ts.locateData(r, k, bufs, int(bi))
}

// locateData finds a constant tensor's bytes without reading them.
func (ts *tensor) locateData(r *reader, k int, bufs vector, bi int) error {
	bt, err := bufs.table(bi)
	if err != nil {
		return err
	}
	data, err := bt.vector(0, 1, false)
	if err != nil {
		return err
	}
	off, size := data.start, data.n
	if data.n == 0 {
		// Models over 2 GiB keep data outside the flatbuffer (offset > 1).
		o, err := bt.u64(1, 0)
		if err != nil {
			return err
		}
		s, err := bt.u64(2, 0)
		if err != nil {
			return err
		}
		if o > 1 {
			if o > uint64(len(r.b)) || s > uint64(len(r.b))-o {
				return errf("tensor %d: external buffer out of bounds", k)
			}
			off, size = int(o), int(s)
		}
	}
	if size == 0 {
		return nil
	}
	if size != ts.Bytes {
		return errf("tensor %d: buffer has %d bytes, shape needs %d", k, size, ts.Bytes)
	}
	ts.constant, ts.dataOff = true, off
	return nil
}

func (ts *tensor) parseQuant(t table) error {
	q, ok, err := t.subtable(4)
	if !ok || err != nil {
		return err
	}
	sc, err := q.vector(2, 4, true)
	if err != nil {
		return err
	}
	zp, err := q.vector(3, 8, true)
	if err != nil {
		return err
	}
	if sc.n != zp.n && zp.n != 0 {
		return errf("%d scales but %d zero points", sc.n, zp.n)
	}
	qd, err := q.i32(6, 0)
	if err != nil {
		return err
	}
	ts.QuantizedDimension = int(qd)
	if sc.n == 0 {
		return nil
	}
	ts.Scale = make([]float32, sc.n)
	ts.ZeroPoint = make([]int64, sc.n)
	for i := range ts.Scale {
		s := sc.f32(i)
		if !(s >= 0) || math.IsInf(float64(s), 0) {
			return errf("invalid scale %v", s)
		}
		ts.Scale[i] = s
		if zp.n > 0 {
			ts.ZeroPoint[i] = zp.i64(i)
		}
	}
	return nil
}

// tensorList reads a vector of tensor indices; optional allows -1.
func (m *Model) tensorList(t table, field int, what string, optional bool) ([]int, error) {
	v, err := t.vector(field, 4, true)
	if err != nil {
		return nil, err
	}
	out := v.ints()
	for _, x := range out {
		if x == -1 && optional {
			continue
		}
		if x < 0 || x >= len(m.tensors) {
			return nil, errf("%s refers to tensor %d of %d", what, x, len(m.tensors))
		}
	}
	return out, nil
}

func (m *Model) parseOperators(sg table, codes []int) error {
	v, err := sg.vector(3, 4, true)
	if err != nil {
		return err
	}
	if v.n > MaxOperators {
		return fmt.Errorf("%w: %d operators", ErrLimit, v.n)
	}
	m.ops = make([]operator, v.n)
	for k := range m.ops {
		t, err := v.table(k)
		if err != nil {
			return err
		}
		op := &m.ops[k]
		ci, err := t.u32(0, 0)
		if err != nil {
			return err
		}
		if int64(ci) >= int64(len(codes)) {
			return errf("operator %d uses opcode index %d of %d", k, ci, len(codes))
		}
		op.code = codes[ci]
		if op.inputs, err = m.tensorList(t, 1, "operator input", true); err != nil {
			return err
		}
		if op.outputs, err = m.tensorList(t, 2, "operator output", false); err != nil {
			return err
		}
		if err := op.parseOptions(t); err != nil {
			return fmt.Errorf("operator %d (%s): %w", k, opName(op.code), err)
		}
	}
	return nil
}

// Builtin options union type numbers (schema BuiltinOptions).
const (
	optConv2D         = 1
	optDepthwiseConv  = 2
	optPool2D         = 5
	optFullyConnected = 8
	optSoftmax        = 9
	optAdd            = 11
)

// parseOptions reads the options table of the operators the engine runs.
// Options of other operators are not read: those fail in the planner.
func (op *operator) parseOptions(t table) error {
	want := map[int]uint8{
		opConv2D: optConv2D, opDepthwiseConv2D: optDepthwiseConv,
		opAveragePool2D: optPool2D, opMaxPool2D: optPool2D,
		opFullyConnected: optFullyConnected, opSoftmax: optSoftmax, opAdd: optAdd,
	}[op.code]
	o := &op.opts
	o.dilW, o.dilH, o.beta = 1, 1, 1
	if want == 0 {
		return nil
	}
	typ, err := t.u8(3, 0)
	if err != nil {
		return err
	}
	if typ != want {
		return errf("builtin options type %d, want %d", typ, want)
	}
	ot, ok, err := t.subtable(4)
	if err != nil {
		return err
	}
	if !ok {
		return errf("missing builtin options")
	}
	// Scalar fields to read: field index, destination (and default).
	type iField struct {
		f   int
		dst *int
		def int32
	}
	type bField struct {
		f   int
		dst *uint8
	}
	var ints []iField
	var u8s []bField
	switch op.code {
	case opConv2D:
		ints = []iField{{1, &o.strideW, 0}, {2, &o.strideH, 0}, {4, &o.dilW, 1}, {5, &o.dilH, 1}}
		u8s = []bField{{0, &o.padding}, {3, &o.activation}}
	case opDepthwiseConv2D:
		ints = []iField{{1, &o.strideW, 0}, {2, &o.strideH, 0}, {3, &o.depthMultiplier, 0}, {5, &o.dilW, 1}, {6, &o.dilH, 1}}
		u8s = []bField{{0, &o.padding}, {4, &o.activation}}
	case opAveragePool2D, opMaxPool2D:
		ints = []iField{{1, &o.strideW, 0}, {2, &o.strideH, 0}, {3, &o.filterW, 0}, {4, &o.filterH, 0}}
		u8s = []bField{{0, &o.padding}, {5, &o.activation}}
	case opFullyConnected:
		var keep uint8
		u8s = []bField{{0, &o.activation}, {1, &o.weightsFormat}, {2, &keep}}
		defer func() { o.keepNumDims = keep != 0 }()
	case opSoftmax:
		if o.beta, err = ot.f32(0, 0); err != nil {
			return err
		}
	case opAdd:
		u8s = []bField{{0, &o.activation}}
	}
	for _, f := range ints {
		v, err := ot.i32(f.f, f.def)
		if err != nil {
			return err
		}
		*f.dst = int(v)
	}
	for _, f := range u8s {
		v, err := ot.u8(f.f, 0)
		if err != nil {
			return err
		}
		*f.dst = v
	}
	return nil
}
