package tflite

import (
	"fmt"
	"math"
)

// quantParams returns the per-tensor scale and zero point of an int8
// activation tensor.
func (it *Interpreter) quantParams(t int) (float32, int32, error) {
	ts := &it.m.tensors[t]
	if ts.Type != Int8 {
		return 0, 0, fmt.Errorf("%w: tensor %d is %v, want int8", ErrUnsupported, t, ts.Type)
	}
	if len(ts.Scale) == 0 {
		return 0, 0, fmt.Errorf("%w: tensor %d is not quantized", ErrUnsupported, t)
	}
	zp := ts.ZeroPoint[0]
	if zp < math.MinInt8 || zp > math.MaxInt8 {
		return 0, 0, errf("tensor %d zero point %d outside int8", t, zp)
	}
	if ts.Scale[0] == 0 {
		return 0, 0, errf("tensor %d has scale 0", t)
	}
	return ts.Scale[0], int32(zp), nil
}

func (it *Interpreter) shape(t int) []int { return it.m.tensors[t].Shape }

// addWork adds the product of dims to the inference's work count,
// saturating so that no product of hostile dimensions can wrap around.
func (it *Interpreter) addWork(dims ...int) {
	w := int64(1)
	for _, d := range dims {
		if d <= 0 {
			return
		}
		if w > math.MaxInt64/int64(d) {
			w = math.MaxInt64
			break
		}
		w *= int64(d)
	}
	it.macs = min(it.macs+min(w, MaxMACs+1), math.MaxInt64/2)
}

// operands checks the operator's input and output counts; optional inputs
// beyond nIn-nOpt may be absent (-1 or missing).
func operands(op *operator, nIn, nOpt, nOut int) error {
	if len(op.inputs) < nIn-nOpt || len(op.inputs) > nIn || len(op.outputs) != nOut {
		return errf("%d inputs and %d outputs", len(op.inputs), len(op.outputs))
	}
	for i, t := range op.inputs {
		if t < 0 && i < nIn-nOpt {
			return errf("required input %d missing", i)
		}
	}
	return nil
}

func optionalInput(op *operator, i int) int {
	if i < len(op.inputs) {
		return op.inputs[i]
	}
	return -1
}

func (it *Interpreter) prepare(op *operator) (kernel, error) {
	switch op.code {
	case opConv2D:
		return it.prepareConv(op, false)
	case opDepthwiseConv2D:
		return it.prepareConv(op, true)
	case opFullyConnected:
		return it.prepareFC(op)
	case opAveragePool2D, opMaxPool2D:
		return it.preparePool(op)
	case opAdd:
		return it.prepareAdd(op)
	case opReshape:
		return it.prepareReshape(op)
	case opSoftmax:
		return it.prepareSoftmax(op)
	}
	return nil, ErrUnsupported
}

func rank4(s []int, what string) error {
	if len(s) != 4 {
		return errf("%s has shape %v, want rank 4", what, s)
	}
	return nil
}

// outSize and padding follow TFLite's ComputeOutSize / ComputePadding.
func outSize(padding uint8, in, filter, stride, dil int) int {
	eff := (filter-1)*dil + 1
	if padding == 0 {
		return (in + stride - 1) / stride
	}
	return (in + stride - eff) / stride
}

func padding(stride, dil, in, filter, out int) int {
	eff := (filter-1)*dil + 1
	return max(0, ((out-1)*stride+eff-in)/2)
}

// multipliers quantizes per-channel output multipliers exactly as
// PopulateConvolutionQuantizationParams: in*filter/out in double.
func multipliers(inScale, outScale float32, filterScale []float32, n int) ([]int32, []int8) {
	mult, shift := make([]int32, n), make([]int8, n)
	for c := range n {
		fs := filterScale[0]
		if len(filterScale) > 1 {
			fs = filterScale[c]
		}
		m, sh := quantizeMultiplier(float64(inScale) * float64(fs) / float64(outScale))
		mult[c], shift[c] = m, int8(sh)
	}
	return mult, shift
}

// biasRef checks an optional int32 bias of n elements.
func (it *Interpreter) biasRef(t, n int) (tensorRef, error) {
	if t < 0 {
		return tensorRef{off: -1}, nil
	}
	ts := &it.m.tensors[t]
	if ts.Type != Int32 {
		return tensorRef{}, fmt.Errorf("%w: bias is %v, want int32", ErrUnsupported, ts.Type)
	}
	if !ts.constant {
		return tensorRef{}, fmt.Errorf("%w: non-constant bias", ErrUnsupported)
	}
	if ts.elems() != n {
		return tensorRef{}, errf("bias has %d elements, want %d", ts.elems(), n)
	}
	return it.ref(t), nil
}

// filterRef checks a constant int8 filter and its scales (one per tensor,
// or one per channel along qdim); the zero point must be 0 (symmetric).
func (it *Interpreter) filterRef(t, channels, qdim int) (tensorRef, []float32, error) {
	ts := &it.m.tensors[t]
	if ts.Type != Int8 {
		return tensorRef{}, nil, fmt.Errorf("%w: filter is %v, want int8", ErrUnsupported, ts.Type)
	}
	if !ts.constant {
		return tensorRef{}, nil, fmt.Errorf("%w: non-constant filter", ErrUnsupported)
	}
	switch {
	case len(ts.Scale) == 1:
	case len(ts.Scale) == channels && ts.QuantizedDimension == qdim:
	default:
		return tensorRef{}, nil, errf("filter has %d scales on dimension %d for %d channels", len(ts.Scale), ts.QuantizedDimension, channels)
	}
	for _, z := range ts.ZeroPoint {
		if z != 0 {
			return tensorRef{}, nil, fmt.Errorf("%w: filter zero point %d", ErrUnsupported, z)
		}
	}
	return it.ref(t), ts.Scale, nil
}

func (it *Interpreter) activation(op *operator, out int) (int32, int32, error) {
	s, zp, err := it.quantParams(out)
	if err != nil {
		return 0, 0, err
	}
	lo, hi, ok := activationRange(op.opts.activation, s, zp)
	if !ok {
		return 0, 0, fmt.Errorf("%w: fused activation %d", ErrUnsupported, op.opts.activation)
	}
	return lo, hi, nil
}

func checkWindow(o *options, pool bool) error {
	if o.strideW < 1 || o.strideH < 1 || o.dilW < 1 || o.dilH < 1 {
		return errf("stride %dx%d, dilation %dx%d", o.strideH, o.strideW, o.dilH, o.dilW)
	}
	if pool && (o.filterW < 1 || o.filterH < 1) {
		return errf("pool filter %dx%d", o.filterH, o.filterW)
	}
	if o.padding > 1 {
		return errf("padding %d", o.padding)
	}
	if max(o.strideW, o.strideH, o.dilW, o.dilH, o.filterW, o.filterH) > 1<<16 {
		return fmt.Errorf("%w: window parameters too large", ErrLimit)
	}
	return nil
}

// geom is the common geometry of windowed operators (NHWC).
type geom struct {
	batches, inH, inW, inD   int
	outH, outW, outD         int
	fH, fW                   int
	strideH, strideW         int
	dilH, dilW               int
	padH, padW               int
	inOffset, outOffset      int32
	actMin, actMax           int32
	inRef, outRef, filterRef tensorRef
}

func (it *Interpreter) windowGeom(op *operator, fH, fW, outD int) (geom, error) {
	o := &op.opts
	in, out := op.inputs[0], op.outputs[0]
	is, os := it.shape(in), it.shape(out)
	if err := rank4(is, "input"); err != nil {
		return geom{}, err
	}
	if err := rank4(os, "output"); err != nil {
		return geom{}, err
	}
	g := geom{batches: is[0], inH: is[1], inW: is[2], inD: is[3], fH: fH, fW: fW, outD: outD,
		strideH: o.strideH, strideW: o.strideW, dilH: o.dilH, dilW: o.dilW}
	g.outH = outSize(o.padding, g.inH, fH, o.strideH, o.dilH)
	g.outW = outSize(o.padding, g.inW, fW, o.strideW, o.dilW)
	if os[0] != g.batches || os[1] != g.outH || os[2] != g.outW || os[3] != outD || g.outH < 1 || g.outW < 1 {
		return geom{}, errf("output shape %v, want [%d %d %d %d]", os, g.batches, g.outH, g.outW, outD)
	}
	g.padH = padding(o.strideH, o.dilH, g.inH, fH, g.outH)
	g.padW = padding(o.strideW, o.dilW, g.inW, fW, g.outW)
	_, izp, err := it.quantParams(in)
	if err != nil {
		return geom{}, err
	}
	_, ozp, err := it.quantParams(out)
	if err != nil {
		return geom{}, err
	}
	g.inOffset, g.outOffset = -izp, ozp
	if g.actMin, g.actMax, err = it.activation(op, out); err != nil {
		return geom{}, err
	}
	g.inRef, g.outRef = it.ref(in), it.ref(out)
	return g, nil
}

func (it *Interpreter) prepareConv(op *operator, depthwise bool) (kernel, error) {
	if err := operands(op, 3, 1, 1); err != nil {
		return nil, err
	}
	if err := checkWindow(&op.opts, false); err != nil {
		return nil, err
	}
	fs := it.shape(op.inputs[1])
	if err := rank4(fs, "filter"); err != nil {
		return nil, err
	}
	is := it.shape(op.inputs[0])
	if err := rank4(is, "input"); err != nil {
		return nil, err
	}
	outD := fs[0]
	qdim := 0
	if depthwise {
		outD, qdim = fs[3], 3
		if fs[0] != 1 {
			return nil, errf("depthwise filter shape %v", fs)
		}
	}
	g, err := it.windowGeom(op, fs[1], fs[2], outD)
	if err != nil {
		return nil, err
	}
	var fscale []float32
	if g.filterRef, fscale, err = it.filterRef(op.inputs[1], outD, qdim); err != nil {
		return nil, err
	}
	bias, err := it.biasRef(optionalInput(op, 2), outD)
	if err != nil {
		return nil, err
	}
	inScale, _, _ := it.quantParams(op.inputs[0])
	outScale, _, _ := it.quantParams(op.outputs[0])
	mult, shift := multipliers(inScale, outScale, fscale, outD)
	if g.inD == 0 || outD == 0 {
		return nil, errf("zero channels")
	}
	if depthwise {
		dm := outD / g.inD
		if outD%g.inD != 0 || (op.opts.depthMultiplier > 0 && dm != op.opts.depthMultiplier) {
			return nil, errf("depthwise output depth %d for input depth %d, multiplier %d", outD, g.inD, op.opts.depthMultiplier)
		}
		it.addWork(g.batches, g.outH, g.outW, outD, g.fH, g.fW)
		it.persist += 5 * outD
		it.need32 = 2 * outD
		return &dwConv{geom: g, depthMul: dm, bias: bias, mult: mult, shift: shift, vec: useSIMD && dm == 1}, nil
	}
	fD := fs[3]
	if fD == 0 || g.inD%fD != 0 {
		return nil, errf("filter depth %d for input depth %d", fD, g.inD)
	}
	groups := g.inD / fD
	if outD%groups != 0 {
		return nil, errf("%d output channels for %d groups", outD, groups)
	}
	K := g.fH * g.fW * fD
	it.addWork(g.batches, g.outH, g.outW, outD, g.fH, g.fW, fD)
	k := &conv{geom: g, fD: fD, groups: groups, bias: bias, mult: mult, shift: shift,
		vec: useSIMD && groups == 1, paired: !useSIMD && groups == 1 && K <= maxPairK}
	it.persist += 5 * outD
	switch {
	case k.vec:
		// bias, two rowBlock accumulators and two int16 patches
		it.need32 = outD + 2*rowBlock
		it.need16 = 2 * patchLen(K)
	case k.paired:
		it.need64 = K
		it.need32 = 2 * outD
	default:
		it.need32 = outD
	}
	return k, nil
}

func (it *Interpreter) prepareFC(op *operator) (kernel, error) {
	if err := operands(op, 3, 1, 1); err != nil {
		return nil, err
	}
	if op.opts.weightsFormat != 0 {
		return nil, fmt.Errorf("%w: shuffled weights", ErrUnsupported)
	}
	in, out := op.inputs[0], op.outputs[0]
	fs := it.shape(op.inputs[1])
	if len(fs) != 2 {
		return nil, errf("filter shape %v, want rank 2", fs)
	}
	units, depth := fs[0], fs[1]
	os := it.shape(out)
	if len(os) == 0 || os[len(os)-1] != units || units == 0 || depth == 0 {
		return nil, errf("output shape %v for %d units", os, units)
	}
	// Any input rank: it is flattened to [batches, depth] (4-D inputs too).
	inElems, outElems := it.m.tensors[in].elems(), it.m.tensors[out].elems()
	batches := outElems / units
	if inElems != batches*depth {
		return nil, errf("input of %d elements for %d batches of depth %d", inElems, batches, depth)
	}
	inScale, izp, err := it.quantParams(in)
	if err != nil {
		return nil, err
	}
	outScale, ozp, err := it.quantParams(out)
	if err != nil {
		return nil, err
	}
	k := &fullyConnected{batches: batches, units: units, depth: depth, inOffset: -izp, outOffset: ozp,
		inRef: it.ref(in), outRef: it.ref(out)}
	var fscale []float32
	if k.filterRef, fscale, err = it.filterRef(op.inputs[1], units, 0); err != nil {
		return nil, err
	}
	if k.bias, err = it.biasRef(optionalInput(op, 2), units); err != nil {
		return nil, err
	}
	if k.actMin, k.actMax, err = it.activation(op, out); err != nil {
		return nil, err
	}
	if len(fscale) == 1 {
		// GetQuantizedConvolutionMultipler: the scale product is a float.
		m, s := quantizeMultiplier(float64(float32(inScale*fscale[0])) / float64(outScale))
		k.mult, k.shift = []int32{m}, []int8{int8(s)}
	} else {
		k.mult, k.shift = multipliers(inScale, outScale, fscale, units)
	}
	it.addWork(batches, units, depth)
	it.persist += 5 * len(k.mult)
	if k.vec = useSIMD; k.vec {
		it.need32 = 2 * min(rowBlock, units) // accumulators, biases
		it.need16 = patchLen(depth)
	} else {
		it.need32 = depth
	}
	return k, nil
}

func (it *Interpreter) preparePool(op *operator) (kernel, error) {
	if err := operands(op, 1, 0, 1); err != nil {
		return nil, err
	}
	if err := checkWindow(&op.opts, true); err != nil {
		return nil, err
	}
	is := it.shape(op.inputs[0])
	if err := rank4(is, "input"); err != nil {
		return nil, err
	}
	g, err := it.windowGeom(op, op.opts.filterH, op.opts.filterW, is[3])
	if err != nil {
		return nil, err
	}
	is1, izp, _ := it.quantParams(op.inputs[0])
	os1, ozp, _ := it.quantParams(op.outputs[0])
	if is1 != os1 || izp != ozp {
		return nil, fmt.Errorf("%w: pooling that rescales", ErrUnsupported)
	}
	it.addWork(g.batches, g.outH, g.outW, g.outD, g.fH, g.fW)
	return &pool{geom: g, max: op.code == opMaxPool2D}, nil
}

func (it *Interpreter) prepareAdd(op *operator) (kernel, error) {
	if err := operands(op, 2, 0, 1); err != nil {
		return nil, err
	}
	a, b, out := op.inputs[0], op.inputs[1], op.outputs[0]
	s1, z1, err := it.quantParams(a)
	if err != nil {
		return nil, err
	}
	s2, z2, err := it.quantParams(b)
	if err != nil {
		return nil, err
	}
	so, zo, err := it.quantParams(out)
	if err != nil {
		return nil, err
	}
	k := &add{in1: it.ref(a), in2: it.ref(b), outRef: it.ref(out),
		off1: -z1, off2: -z2, outOffset: zo, leftShift: 20}
	if k.actMin, k.actMax, err = it.activation(op, out); err != nil {
		return nil, err
	}
	twiceMax := 2 * float64(max(s1, s2))
	k.mult1, k.shift1 = quantizeMultiplier(float64(s1) / twiceMax)
	k.mult2, k.shift2 = quantizeMultiplier(float64(s2) / twiceMax)
	k.multOut, k.shiftOut = quantizeMultiplier(twiceMax / (float64(int(1)<<k.leftShift) * float64(so)))
	if k.shift1 > 0 || k.shift2 > 0 || k.shiftOut > 0 {
		return nil, errf("add multipliers out of range")
	}
	if err := k.broadcast(it.shape(a), it.shape(b), it.shape(out)); err != nil {
		return nil, err
	}
	k.vec = useSIMD && k.elementwise
	it.addWork(it.m.tensors[out].elems())
	return k, nil
}

func (it *Interpreter) prepareReshape(op *operator) (kernel, error) {
	if len(op.inputs) < 1 || len(op.inputs) > 2 || len(op.outputs) != 1 || op.inputs[0] < 0 {
		return nil, errf("%d inputs and %d outputs", len(op.inputs), len(op.outputs))
	}
	in, out := op.inputs[0], op.outputs[0]
	ti, to := &it.m.tensors[in], &it.m.tensors[out]
	if ti.Type != to.Type || ti.Bytes != to.Bytes {
		return nil, errf("reshape of %v %v to %v %v", ti.Type, ti.Shape, to.Type, to.Shape)
	}
	it.addWork(ti.Bytes)
	return &reshape{in: it.ref(in), out: it.ref(out)}, nil
}

func (it *Interpreter) prepareSoftmax(op *operator) (kernel, error) {
	if err := operands(op, 1, 0, 1); err != nil {
		return nil, err
	}
	in, out := op.inputs[0], op.outputs[0]
	is, _, err := it.quantParams(in)
	if err != nil {
		return nil, err
	}
	os, ozp, err := it.quantParams(out)
	if err != nil {
		return nil, err
	}
	if ozp != -128 || os != 1.0/256 {
		return nil, fmt.Errorf("%w: softmax output quantization %v/%d (want 1/256, -128)", ErrUnsupported, os, ozp)
	}
	shape := it.shape(in)
	if len(shape) == 0 || it.m.tensors[in].elems() != it.m.tensors[out].elems() {
		return nil, errf("softmax shapes %v -> %v", shape, it.shape(out))
	}
	depth := shape[len(shape)-1]
	if depth == 0 {
		return nil, errf("softmax over an empty axis")
	}
	beta := float64(op.opts.beta)
	real := min(beta*float64(is)*float64(int64(1)<<(31-scaledDiffIntegerBits)), float64(int64(1)<<31)-1)
	if !(real > 1) {
		return nil, fmt.Errorf("%w: softmax beta*scale %v too small", ErrUnsupported, beta*float64(is))
	}
	k := &softmax{in: it.ref(in), out: it.ref(out), depth: depth}
	k.mult, k.leftShift = quantizeMultiplier(real)
	if k.leftShift < 0 {
		return nil, errf("softmax multiplier shift %d", k.leftShift)
	}
	// CalculateInputRadius: the largest |diff| whose rescaling fits.
	maxIn := float64(int64(1)<<scaledDiffIntegerBits-1) * float64(int64(1)<<(31-scaledDiffIntegerBits)) / float64(int64(1)<<k.leftShift)
	k.diffMin = -int32(math.Floor(maxIn))
	it.addWork(it.m.tensors[in].elems(), 16)
	return k, nil
}
