package gen

// Tensor types and builtin operators used by the generator (schema.fbs).
const (
	TypeInt32 = 2
	TypeInt8  = 9

	OpConv2D         = 3
	OpFullyConnected = 9
	OpSoftmax        = 25

	ActNone = 0
	ActRelu = 1

	PaddingSame  = 0
	PaddingValid = 1
)

// Tensor is one model tensor; Data non-nil makes it a constant.
type Tensor struct {
	Name      string
	Type      uint8
	Shape     []int32
	Data      []byte
	Scale     []float32
	ZeroPoint []int64
	QuantDim  int32
}

// Op is one operator with its builtin options (nil for none).
type Op struct {
	Code            int32
	Inputs, Outputs []int32
	optType         uint8
	opts            *table
}

// Model is a single-subgraph model.
type Model struct {
	Description     string
	Tensors         []Tensor
	Ops             []Op
	Inputs, Outputs []int32
}

// Conv2D returns a CONV_2D operator.
func Conv2D(in, filter, bias, out int32, padding uint8, strideW, strideH int32, act uint8) Op {
	t := &table{}
	t.u8(0, padding)
	t.i32(1, strideW)
	t.i32(2, strideH)
	t.u8(3, act)
	t.i32(4, 1)
	t.i32(5, 1)
	return Op{Code: OpConv2D, Inputs: []int32{in, filter, bias}, Outputs: []int32{out}, optType: 1, opts: t}
}

// FullyConnected returns a FULLY_CONNECTED operator.
func FullyConnected(in, filter, bias, out int32, act uint8) Op {
	t := &table{}
	t.u8(0, act)
	return Op{Code: OpFullyConnected, Inputs: []int32{in, filter, bias}, Outputs: []int32{out}, optType: 8, opts: t}
}

// Softmax returns a SOFTMAX operator.
func Softmax(in, out int32, beta float32) Op {
	t := &table{}
	t.f32(0, beta)
	return Op{Code: OpSoftmax, Inputs: []int32{in}, Outputs: []int32{out}, optType: 9, opts: t}
}

// Bytes serializes the model as a TFLite flatbuffer (schema version 3).
func (m *Model) Bytes() []byte {
	b, _ := m.Serialize()
	return b
}

// Serialize is Bytes plus, per tensor, the offset of its constant data in
// the output (-1 for tensors without data).
func (m *Model) Serialize() ([]byte, []int) {
	data := make([]*vec, len(m.Tensors))
	buffers := []*table{{}} // buffer 0: the empty sentinel
	var tensors []*table
	for _, ts := range m.Tensors {
		t := &table{}
		t.ref(0, i32s(ts.Shape))
		t.u8(1, ts.Type)
		if ts.Data != nil {
			b := &table{}
			data[len(tensors)] = &vec{elem: 1, align: 16, data: ts.Data}
			b.ref(0, data[len(tensors)])
			t.i32(2, int32(len(buffers)))
			buffers = append(buffers, b)
		}
		t.ref(3, str(ts.Name))
		if len(ts.Scale) > 0 {
			q := &table{}
			q.ref(2, f32s(ts.Scale))
			q.ref(3, i64s(ts.ZeroPoint))
			q.i32(6, ts.QuantDim)
			t.ref(4, q)
		}
		tensors = append(tensors, t)
	}
	var codes []int32
	var codeTables, ops []*table
	for _, op := range m.Ops {
		idx := -1
		for i, c := range codes {
			if c == op.Code {
				idx = i
			}
		}
		if idx < 0 {
			idx = len(codes)
			codes = append(codes, op.Code)
			ct := &table{}
			ct.u8(0, uint8(min(op.Code, 127)))
			ct.i32(2, 1)
			ct.i32(3, op.Code)
			codeTables = append(codeTables, ct)
		}
		t := &table{}
		t.i32(0, int32(idx))
		t.ref(1, i32s(op.Inputs))
		t.ref(2, i32s(op.Outputs))
		if op.opts != nil {
			t.u8(3, op.optType)
			t.ref(4, op.opts)
		}
		ops = append(ops, t)
	}
	sg := &table{}
	sg.ref(0, &vec{tables: tensors})
	sg.ref(1, i32s(m.Inputs))
	sg.ref(2, i32s(m.Outputs))
	sg.ref(3, &vec{tables: ops})
	sg.ref(4, str("main"))
	root := &table{}
	root.i32(0, 3)
	root.ref(1, &vec{tables: codeTables})
	root.ref(2, &vec{tables: []*table{sg}})
	root.ref(3, str(m.Description))
	root.ref(4, &vec{tables: buffers})
	out := finish(root, "TFL3")
	offs := make([]int, len(m.Tensors))
	for i, v := range data {
		offs[i] = -1
		if v != nil {
			offs[i] = v.pos + 4
		}
	}
	return out, offs
}
