package tflite

import (
	"fmt"
	"slices"
	"unsafe"
)

// kernel is one prepared operator. a is the arena, w the model bytes
// (weights are read in place from them).
type kernel interface {
	run(a []int8, w []byte)
}

// Interpreter runs one model. It owns its arena and scratch, planned once
// and reused by every Invoke; it is not safe for concurrent use.
type Interpreter struct {
	m         *Model
	arena     []int8
	kernels   []kernel
	in, out   tensorRef
	scratch   int // bytes of per-operator scratch and constants
	macs      int64
	tensorOff []int // arena offset per tensor, -1 if not in the arena
}

// tensorRef locates a tensor: in the arena, or (constant) in the model.
type tensorRef struct {
	off, n   int
	constant bool
}

func (r tensorRef) get(a []int8, w []byte) []int8 {
	if r.constant {
		return int8s(w[r.off : r.off+r.n])
	}
	return a[r.off : r.off+r.n]
}

// int8s views bytes as int8 without copying (same size and alignment).
func int8s(b []byte) []int8 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*int8)(unsafe.Pointer(&b[0])), len(b))
}

// NewInterpreter checks that every operator is supported, prepares the
// kernels' quantization parameters and plans the arena.
func NewInterpreter(m *Model) (*Interpreter, error) {
	if len(m.inputs) != 1 || len(m.outputs) != 1 {
		return nil, fmt.Errorf("%w: %d inputs and %d outputs (want 1 and 1)", ErrUnsupported, len(m.inputs), len(m.outputs))
	}
	it := &Interpreter{m: m}
	if err := it.plan(); err != nil {
		return nil, err
	}
	for k := range m.ops {
		kn, err := it.prepare(&m.ops[k])
		if err != nil {
			return nil, fmt.Errorf("operator %d (%s): %w", k, opName(m.ops[k].code), err)
		}
		if kn != nil {
			it.kernels = append(it.kernels, kn)
		}
		if it.macs > MaxMACs {
			return nil, fmt.Errorf("%w: more than %d multiply-accumulates per inference", ErrLimit, MaxMACs)
		}
	}
	it.in, it.out = it.ref(m.inputs[0]), it.ref(m.outputs[0])
	for _, t := range []int{m.inputs[0], m.outputs[0]} {
		if m.tensors[t].Type != Int8 {
			return nil, fmt.Errorf("%w: model input/output %d is %v, only int8 is supported", ErrUnsupported, t, m.tensors[t].Type)
		}
	}
	if it.in.constant || it.out.constant {
		return nil, errf("model input or output is a constant")
	}
	return it, nil
}

func (it *Interpreter) ref(t int) tensorRef {
	ts := &it.m.tensors[t]
	if ts.constant {
		return tensorRef{off: ts.dataOff, n: ts.Bytes, constant: true}
	}
	return tensorRef{off: it.tensorOff[t], n: ts.Bytes}
}

// ArenaBytes is the size of the activation arena.
func (it *Interpreter) ArenaBytes() int { return len(it.arena) }

// ScratchBytes is the per-operator memory besides the arena (quantization
// multipliers, decoded biases, filter sums, im2col rows).
func (it *Interpreter) ScratchBytes() int { return it.scratch }

// MACs is the number of multiply-accumulates of one inference.
func (it *Interpreter) MACs() int64 { return it.macs }

// Model returns the model the interpreter was built for.
func (it *Interpreter) Model() *Model { return it.m }

// Invoke runs the model on input and writes the output tensor into output,
// returning its length. model must be structurally the bytes the Model was
// parsed from (checked); its weights are read in place.
func (it *Interpreter) Invoke(model, input, output []byte) (int, error) {
	if !it.m.Matches(model) {
		return 0, ErrModelChanged
	}
	if len(input) != it.in.n {
		return 0, fmt.Errorf("%w: %d bytes, the model input needs %d", ErrInput, len(input), it.in.n)
	}
	if len(output) < it.out.n {
		return 0, fmt.Errorf("%w: %d bytes, the model output has %d", ErrOutputTooSmall, len(output), it.out.n)
	}
	copy(it.arena[it.in.off:it.in.off+it.in.n], int8s(input))
	for _, k := range it.kernels {
		k.run(it.arena, model)
	}
	copy(int8s(output), it.arena[it.out.off:it.out.off+it.out.n])
	return it.out.n, nil
}

// invokeLayers runs like Invoke and calls fn after each kernel with the
// operator index (used by the layer-by-layer conformance tests).
func (it *Interpreter) invokeLayers(model, input []byte, fn func(op int, a []int8)) {
	copy(it.arena[it.in.off:], int8s(input))
	for k, kn := range it.kernels {
		kn.run(it.arena, model)
		fn(k, it.arena)
	}
}

// plan assigns arena offsets to non-constant tensors by lifetime, greedily
// placing the largest first at the lowest offset free over its lifetime
// (the strategy of TFLite Micro's GreedyMemoryPlanner).
func (it *Interpreter) plan() error {
	m := it.m
	n := len(m.tensors)
	first, last := make([]int, n), make([]int, n)
	for i := range first {
		first[i], last[i] = -2, -2
	}
	in := m.inputs[0]
	if m.tensors[in].constant {
		return errf("model input is a constant")
	}
	first[in], last[in] = -1, -1
	for k, op := range m.ops {
		for _, t := range op.inputs {
			if t < 0 || m.tensors[t].constant {
				continue
			}
			if first[t] == -2 {
				return errf("operator %d reads tensor %d before it is written", k, t)
			}
			last[t] = k
		}
		for _, t := range op.outputs {
			if m.tensors[t].constant || first[t] != -2 {
				return errf("operator %d writes tensor %d that is constant, an input or already written", k, t)
			}
			if m.tensors[t].variable {
				return fmt.Errorf("%w: variable tensors", ErrUnsupported)
			}
			first[t], last[t] = k, k
		}
	}
	out := m.outputs[0]
	if first[out] == -2 {
		return errf("model output %d is never written", out)
	}
	last[out] = len(m.ops)
	type item struct{ t, size, off int }
	var items []item
	for t := range m.tensors {
		if first[t] != -2 {
			items = append(items, item{t: t, size: (m.tensors[t].Bytes + 15) &^ 15})
		}
	}
	slices.SortStableFunc(items, func(a, b item) int { return b.size - a.size })
	it.tensorOff = make([]int, n)
	for i := range it.tensorOff {
		it.tensorOff[i] = -1
	}
	total := 0
	var placed []item
	for _, x := range items {
		// Collect the placed tensors alive at the same time, by offset.
		var live []item
		for _, p := range placed {
			if first[p.t] <= last[x.t] && first[x.t] <= last[p.t] {
				live = append(live, p)
			}
		}
		slices.SortFunc(live, func(a, b item) int { return a.off - b.off })
		off := 0
		for _, p := range live {
			if off+x.size <= p.off {
				break
			}
			off = max(off, p.off+p.size)
		}
		x.off = off
		placed = append(placed, x)
		it.tensorOff[x.t] = off
		total = max(total, off+x.size)
		if total > MaxArenaBytes {
			return fmt.Errorf("%w: arena over %d bytes", ErrLimit, MaxArenaBytes)
		}
	}
	it.arena = make([]int8, total)
	return nil
}
