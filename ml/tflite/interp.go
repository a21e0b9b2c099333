package tflite

import (
	"fmt"
	"slices"
	"unsafe"
)

// kernel is one prepared operator. a is the arena, w the model bytes
// (weights are read in place from them).
type kernel interface {
	run(a []int8, w []byte, s *scratch)
}

// Interpreter runs one model. It owns its arena and scratch, planned once
// and reused by every Invoke; it is not safe for concurrent use.
type Interpreter struct {
	m         *Model
	arena     []int8
	kernels   []kernel
	in, out   tensorRef
	scr       []scratch // per kernel, views into the arena
	persist   int       // bytes of per-operator constants (multipliers, shifts)
	macs      int64
	tensorOff []int // arena offset per tensor, -1 if not in the arena
	pace      pacer // the running inference's (the kernels' scratch points to it)
	// scratch elements the kernels prepared so far need
	need16, need32, need64 int
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

// int64s, int32s and int16s view 8-aligned arena scratch as wider integers.
func int64s(b []int8) []int64 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*int64)(unsafe.Pointer(&b[0])), len(b)/8)
}

func int32s(b []int8) []int32 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*int32)(unsafe.Pointer(&b[0])), len(b)/4)
}

func int16s(b []int8) []int16 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*int16)(unsafe.Pointer(&b[0])), len(b)/2)
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
func NewInterpreter(m *Model) (*Interpreter, error) { return newInterpreter(m, nil) }

// newInterpreter is NewInterpreter paced by p (nil: not paced); it fails
// with ErrStopped when p stops.
func newInterpreter(m *Model, p *pacer) (*Interpreter, error) {
	if len(m.inputs) != 1 || len(m.outputs) != 1 {
		return nil, fmt.Errorf("%w: %d inputs and %d outputs (want 1 and 1)", ErrUnsupported, len(m.inputs), len(m.outputs))
	}
	it := &Interpreter{m: m, tensorOff: make([]int, len(m.tensors))}
	// Pass 1 validates the operators and learns their scratch needs; the
	// plan places tensors and scratch; pass 2 binds the final offsets.
	needs := make([]int, len(m.ops))
	if err := it.prepareAll(func(k int) { needs[k] = 8*it.need64 + 4*it.need32 + 2*it.need16 }); err != nil {
		return nil, err
	}
	if p == nil {
		p = &pacer{} // never stops
	}
	scratchOff, err := it.plan(needs, p)
	if err != nil {
		return nil, err
	}
	it.persist = 0
	err = it.prepareAll(func(k int) {
		off := scratchOff[k]
		if off < 0 {
			it.scr = append(it.scr, scratch{})
			return
		}
		o32 := off + 8*it.need64
		o16 := o32 + 4*it.need32
		it.scr = append(it.scr, scratch{
			i64: int64s(it.arena[off:o32]),
			i32: int32s(it.arena[o32:o16]),
			i16: int16s(it.arena[o16 : o16+2*it.need16]),
		})
	})
	if err != nil {
		return nil, err
	}
	for k := range it.scr {
		it.scr[k].p = &it.pace
	}
	it.in, it.out = it.ref(m.inputs[0]), it.ref(m.outputs[0])
	for _, t := range []int{m.inputs[0], m.outputs[0]} {
		if m.tensors[t].Type != Int8 {
			return nil, fmt.Errorf("%w: model input/output %d is %v, only int8 is supported", ErrUnsupported, t, m.tensors[t].Type)
		}
	}
	return it, nil
}

// prepareAll prepares every operator, calling done after each one while
// need32/need64 hold its scratch needs.
func (it *Interpreter) prepareAll(done func(k int)) error {
	it.kernels, it.macs = it.kernels[:0], 0
	for k := range it.m.ops {
		op := &it.m.ops[k]
		it.need16, it.need32, it.need64 = 0, 0, 0
		kn, err := it.prepare(op)
		if err != nil {
			return fmt.Errorf("operator %d (%s): %w", k, opName(op.code), err)
		}
		if it.macs > MaxMACs {
			return fmt.Errorf("%w: more than %d multiply-accumulates per inference", ErrLimit, MaxMACs)
		}
		it.kernels = append(it.kernels, kn)
		done(k)
	}
	return nil
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

// ScratchBytes is the memory besides the arena: the per-channel
// quantization constants (kernel scratch is planned inside the arena).
func (it *Interpreter) ScratchBytes() int { return it.persist }

// MACs is the number of multiply-accumulates of one inference.
func (it *Interpreter) MACs() int64 { return it.macs }

// Model returns the model the interpreter was built for.
func (it *Interpreter) Model() *Model { return it.m }

// Invoke runs the model on input and writes the output tensor into output,
// returning its length. model must be structurally the bytes the Model was
// parsed from (checked); its weights are read in place.
func (it *Interpreter) Invoke(model, input, output []byte) (int, error) {
	return it.InvokePaced(model, input, output, nil)
}

// InvokePaced is Invoke with pace called every PaceWork units of work
// (see Pace); when it asks to stop, InvokePaced returns ErrStopped without
// writing output, and the interpreter can be used again.
func (it *Interpreter) InvokePaced(model, input, output []byte, pace Pace) (int, error) {
	if !it.m.Matches(model) {
		return 0, ErrModelChanged
	}
	return it.run(model, input, output, pace)
}

// run is InvokePaced for a model already known to match.
func (it *Interpreter) run(model, input, output []byte, pace Pace) (int, error) {
	if len(input) != it.in.n {
		return 0, fmt.Errorf("%w: %d bytes, the model input needs %d", ErrInput, len(input), it.in.n)
	}
	if len(output) < it.out.n {
		return 0, fmt.Errorf("%w: %d bytes, the model output has %d", ErrOutputTooSmall, len(output), it.out.n)
	}
	copy(it.arena[it.in.off:it.in.off+it.in.n], int8s(input))
	it.pace.reset(pace)
	defer it.pace.reset(nil) // no reference to the caller's function kept
	for k, kn := range it.kernels {
		kn.run(it.arena, model, &it.scr[k])
		if it.pace.stopped {
			return 0, ErrStopped
		}
	}
	copy(int8s(output), it.arena[it.out.off:it.out.off+it.out.n])
	return it.out.n, nil
}

// invokeLayers runs like Invoke and calls fn after each kernel with the
// operator index (used by the layer-by-layer conformance tests).
func (it *Interpreter) invokeLayers(model, input []byte, fn func(op int, a []int8)) {
	copy(it.arena[it.in.off:], int8s(input))
	for k, kn := range it.kernels {
		kn.run(it.arena, model, &it.scr[k])
		fn(k, it.arena)
	}
}

// plan assigns arena offsets to non-constant tensors and to each
// operator's scratch by lifetime, greedily placing the largest first at the
// lowest offset free over its lifetime (the strategy of TFLite Micro's
// GreedyMemoryPlanner). Offsets are 16-byte aligned.
func (it *Interpreter) plan(needs []int, p *pacer) ([]int, error) {
	m := it.m
	n := len(m.tensors)
	first, last := make([]int, n), make([]int, n)
	for i := range first {
		first[i], last[i] = -2, -2
	}
	in := m.inputs[0]
	if m.tensors[in].constant {
		return nil, errf("model input is a constant")
	}
	first[in], last[in] = -1, -1
	for k, op := range m.ops {
		for _, t := range op.inputs {
			if t < 0 || m.tensors[t].constant {
				continue
			}
			if first[t] == -2 {
				return nil, errf("operator %d reads tensor %d before it is written", k, t)
			}
			last[t] = k
		}
		for _, t := range op.outputs {
			if m.tensors[t].constant || first[t] != -2 {
				return nil, errf("operator %d writes tensor %d that is constant, an input or already written", k, t)
			}
			if m.tensors[t].variable {
				return nil, fmt.Errorf("%w: variable tensors", ErrUnsupported)
			}
			first[t], last[t] = k, k
		}
	}
	out := m.outputs[0]
	if first[out] == -2 {
		return nil, errf("model output %d is never written", out)
	}
	last[out] = len(m.ops)
	// Items are tensors (t < n) and operator scratch (t = n + op).
	type item struct{ t, size, off int }
	var items []item
	for t := range m.tensors {
		if first[t] != -2 {
			items = append(items, item{t: t, size: (m.tensors[t].Bytes + 15) &^ 15})
		}
	}
	first, last = append(first, make([]int, len(needs))...), append(last, make([]int, len(needs))...)
	for k, b := range needs {
		if b > 0 {
			first[n+k], last[n+k] = k, k
			items = append(items, item{t: n + k, size: (b + 15) &^ 15})
		}
	}
	slices.SortStableFunc(items, func(a, b item) int { return b.size - a.size })
	offs := make([]int, n+len(needs))
	for i := range offs {
		offs[i] = -1
	}
	total := 0
	var placed []item
	for _, x := range items {
		if p.tick(8 * (len(placed) + 1)) { // the loops below are O(placed)
			return nil, ErrStopped
		}
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
		offs[x.t] = off
		total = max(total, off+x.size)
		if total > MaxArenaBytes {
			return nil, fmt.Errorf("%w: arena over %d bytes", ErrLimit, MaxArenaBytes)
		}
	}
	// Allocated as int64 so scratch views are 8-byte aligned.
	if total > 0 {
		words := make([]int64, total/8)
		it.arena = unsafe.Slice((*int8)(unsafe.Pointer(&words[0])), total)
	}
	it.tensorOff = offs[:n]
	return offs[n:], nil
}
