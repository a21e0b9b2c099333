package gen

import (
	"encoding/binary"
	"math"

	"github.com/tinycontainer/tinycontainer/ml/tflite"
)

// The demo model: a tiny activity classifier on a window of 16
// accelerometer samples (x, y, z in g, int8 with scale 1/32):
//
//	input [1,16,1,3] -> CONV_2D 3x1, 8 filters, stride 2, VALID, RELU
//	-> [1,7,1,8] -> FULLY_CONNECTED 56->16, RELU (4-D input flattened)
//	-> FULLY_CONNECTED 16->4 -> SOFTMAX -> [1,4]
//
// The convolution filters are hand-made (per axis: smoothing, slope and
// curvature; two magnitude filters), per-channel quantized; the dense
// weights are fixed pseudo-random numbers. It is a demonstration and test
// model, not a trained one.
const (
	DemoInput = iota
	DemoConvFilter
	DemoConvBias
	DemoConvOut
	DemoFC1Filter
	DemoFC1Bias
	DemoFC1Out
	DemoFC2Filter
	DemoFC2Bias
	DemoFC2Out
	DemoOutput
)

// Demo quantization (scale, zero point) of the activation tensors.
const (
	demoInScale   = 1.0 / 32
	demoConvScale = 0.05
	demoFC1Scale  = 0.1
	demoFC2Scale  = 0.2
)

// lcg is a fixed pseudo-random sequence in [-1, 1).
type lcg uint32

func (l *lcg) next() float64 {
	*l = *l*1664525 + 1013904223
	return float64(*l>>8)/float64(1<<23) - 1
}

// quantizeWeights quantizes w symmetrically to int8 with one scale per
// row of rowLen elements (rowLen = len(w): per tensor).
func quantizeWeights(w []float64, rowLen int) ([]byte, []float32) {
	q := make([]byte, len(w))
	var scales []float32
	for r := 0; r < len(w); r += rowLen {
		m := 0.0
		for _, v := range w[r : r+rowLen] {
			m = max(m, math.Abs(v))
		}
		s := float32(m / 127)
		scales = append(scales, s)
		for i, v := range w[r : r+rowLen] {
			q[r+i] = byte(int8(math.Round(v / float64(s))))
		}
	}
	return q, scales
}

func quantizeBias(b []float64, inScale float32, wScales []float32) []byte {
	out := make([]byte, 0, 4*len(b))
	for i, v := range b {
		ws := wScales[0]
		if len(wScales) > 1 {
			ws = wScales[i]
		}
		out = binary.LittleEndian.AppendUint32(out, uint32(int32(math.Round(v/(float64(inScale)*float64(ws))))))
	}
	return out
}

// Demo returns the demo model.
func Demo() *Model {
	// Conv filters [8][3][1][3] (OHWI): per axis smoothing/slope/curvature
	// for two axes plus two all-axis energy filters.
	patterns := [][3]float64{{0.5, 1, 0.5}, {-1, 0, 1}, {1, -2, 1}}
	conv := make([]float64, 0, 8*9)
	for c := range 8 {
		for fy := range 3 {
			for ax := range 3 {
				var v float64
				switch {
				case c < 6:
					if ax == c%2+1 || (c%2 == 0 && ax == 0) {
						v = patterns[c/2][fy]
					}
				case c == 6:
					v = patterns[1][fy] * float64(ax+1) / 3
				default:
					v = patterns[2][fy] * float64(3-ax) / 3
				}
				conv = append(conv, v)
			}
		}
	}
	convQ, convS := quantizeWeights(conv, 9)
	r := lcg(20260127)
	fc1 := make([]float64, 16*56)
	for i := range fc1 {
		fc1[i] = r.next() * 0.3
	}
	fc1Q, fc1S := quantizeWeights(fc1, len(fc1))
	fc2 := make([]float64, 4*16)
	for i := range fc2 {
		fc2[i] = r.next() * 0.5
	}
	fc2Q, fc2S := quantizeWeights(fc2, len(fc2))
	bias := func(n int, scale float64) []float64 {
		b := make([]float64, n)
		for i := range b {
			b[i] = r.next() * scale
		}
		return b
	}
	act := func(name string, shape []int32, scale float32, zp int64) Tensor {
		return Tensor{Name: name, Type: TypeInt8, Shape: shape, Scale: []float32{scale}, ZeroPoint: []int64{zp}}
	}
	zeros := func(n int) []int64 { return make([]int64, n) }
	m := &Model{Description: "TinyContainer demo accelerometer classifier (ml/tflite/gen)"}
	m.Tensors = []Tensor{
		DemoInput:      act("accel", []int32{1, 16, 1, 3}, demoInScale, 0),
		DemoConvFilter: {Name: "conv/filter", Type: TypeInt8, Shape: []int32{8, 3, 1, 3}, Data: convQ, Scale: convS, ZeroPoint: zeros(8), QuantDim: 0},
		DemoConvBias:   {Name: "conv/bias", Type: TypeInt32, Shape: []int32{8}, Data: quantizeBias(bias(8, 0.2), demoInScale, convS)},
		DemoConvOut:    act("conv/out", []int32{1, 7, 1, 8}, demoConvScale, -128),
		DemoFC1Filter:  {Name: "fc1/filter", Type: TypeInt8, Shape: []int32{16, 56}, Data: fc1Q, Scale: fc1S, ZeroPoint: zeros(1)},
		DemoFC1Bias:    {Name: "fc1/bias", Type: TypeInt32, Shape: []int32{16}, Data: quantizeBias(bias(16, 0.5), demoConvScale, fc1S)},
		DemoFC1Out:     act("fc1/out", []int32{1, 16}, demoFC1Scale, -128),
		DemoFC2Filter:  {Name: "fc2/filter", Type: TypeInt8, Shape: []int32{4, 16}, Data: fc2Q, Scale: fc2S, ZeroPoint: zeros(1)},
		DemoFC2Bias:    {Name: "fc2/bias", Type: TypeInt32, Shape: []int32{4}, Data: quantizeBias(bias(4, 0.5), demoFC1Scale, fc2S)},
		DemoFC2Out:     act("fc2/out", []int32{1, 4}, demoFC2Scale, 0),
		DemoOutput:     act("probabilities", []int32{1, 4}, 1.0/256, -128),
	}
	m.Ops = []Op{
		Conv2D(DemoInput, DemoConvFilter, DemoConvBias, DemoConvOut, PaddingValid, 1, 2, ActRelu),
		FullyConnected(DemoConvOut, DemoFC1Filter, DemoFC1Bias, DemoFC1Out, ActRelu),
		FullyConnected(DemoFC1Out, DemoFC2Filter, DemoFC2Bias, DemoFC2Out, ActNone),
		Softmax(DemoFC2Out, DemoOutput, 1),
	}
	m.Inputs, m.Outputs = []int32{DemoInput}, []int32{DemoOutput}
	return m
}

// KernelConstants are the demo model's requantization constants computed
// the way TFLite Micro's Prepare does, for C kernels that cannot compute
// them (no floating-point library in a freestanding guest).
type KernelConstants struct {
	ConvMult           []int32
	ConvShift          []int
	FC1Mult, FC2Mult   int32
	FC1Shift, FC2Shift int
	SoftmaxMult        int32
	SoftmaxShift       int
	SoftmaxDiffMin     int32
}

// Constants derives the kernel constants of m (the demo model).
func (m *Model) Constants() KernelConstants {
	var k KernelConstants
	for _, s := range m.Tensors[DemoConvFilter].Scale {
		mu, sh := tflite.QuantizeMultiplier(float64(demoInScale) * float64(s) / demoConvScale)
		k.ConvMult, k.ConvShift = append(k.ConvMult, mu), append(k.ConvShift, sh)
	}
	k.FC1Mult, k.FC1Shift = tflite.QuantizeMultiplier(float64(float32(demoConvScale)*m.Tensors[DemoFC1Filter].Scale[0]) / float64(float32(demoFC1Scale)))
	k.FC2Mult, k.FC2Shift = tflite.QuantizeMultiplier(float64(float32(demoFC1Scale)*m.Tensors[DemoFC2Filter].Scale[0]) / float64(float32(demoFC2Scale)))
	k.SoftmaxMult, k.SoftmaxShift = tflite.QuantizeMultiplier(min(float64(float32(demoFC2Scale))*float64(1<<26), float64(1<<31)-1))
	maxIn := float64(31) * float64(1<<26) / float64(int64(1)<<k.SoftmaxShift)
	k.SoftmaxDiffMin = -int32(math.Floor(maxIn))
	return k
}
