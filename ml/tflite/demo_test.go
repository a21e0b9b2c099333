package tflite_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/big"
	"os"
	"testing"

	"github.com/tinycontainer/tinycontainer/ml/tflite"
	"github.com/tinycontainer/tinycontainer/ml/tflite/gen"
)

func TestDemoModelUpToDate(t *testing.T) {
	b, err := os.ReadFile("testdata/demo_model.tflite")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, gen.Demo().Bytes()) {
		t.Fatal("testdata/demo_model.tflite is stale: run go generate ./ml/tflite")
	}
}

// refRequant is an independent statement of TFLite's requantization:
// round(acc * mult / 2^31) half away from zero (with the left shift applied
// first, wrapping as int32), then a right shift rounding half away from
// zero, computed with exact rationals.
func refRequant(acc, mult int32, shift int) int32 {
	if shift > 0 {
		acc = int32(uint32(acc) << shift)
	}
	x := new(big.Rat).SetFrac(new(big.Int).Mul(big.NewInt(int64(acc)), big.NewInt(int64(mult))), new(big.Int).Lsh(big.NewInt(1), 31))
	hi := roundHalfAway(x)
	if shift >= 0 {
		return int32(hi.Int64())
	}
	return int32(roundHalfAway(new(big.Rat).SetFrac(hi, new(big.Int).Lsh(big.NewInt(1), uint(-shift)))).Int64())
}

func roundHalfAway(x *big.Rat) *big.Int {
	a := new(big.Rat).Abs(x)
	a.Add(a, big.NewRat(1, 2))
	q := new(big.Int).Quo(a.Num(), a.Denom())
	if x.Sign() < 0 {
		q.Neg(q)
	}
	return q
}

func clamp(v, lo, hi int32) int32 { return min(max(v, lo), hi) }

func i32At(b []byte, i int) int32 { return int32(binary.LittleEndian.Uint32(b[4*i:])) }

// refDemo computes the demo model straight from its definition.
func refDemo(m *gen.Model, in []int8) (logits []int32, out []int8) {
	k := m.Constants()
	T := m.Tensors
	// CONV_2D: input [16][3] (W=1), filter [8][3][3], VALID, stride 2, RELU.
	conv := make([]int32, 7*8)
	for oy := range 7 {
		for c := range 8 {
			acc := i32At(T[gen.DemoConvBias].Data, c)
			for fy := range 3 {
				for ax := range 3 {
					acc += int32(int8(T[gen.DemoConvFilter].Data[c*9+fy*3+ax])) * int32(in[(2*oy+fy)*3+ax])
				}
			}
			conv[oy*8+c] = clamp(refRequant(acc, k.ConvMult[c], k.ConvShift[c])-128, -128, 127)
		}
	}
	fc := func(x []int32, filter, bias []byte, units int, mult int32, shift int, zp int32, relu bool) []int32 {
		out := make([]int32, units)
		for u := range units {
			acc := i32At(bias, u)
			for d, xv := range x {
				acc += int32(int8(filter[u*len(x)+d])) * (xv + 128)
			}
			lo := int32(-128)
			if relu {
				lo = zp
			}
			out[u] = clamp(refRequant(acc, mult, shift)+zp, lo, 127)
		}
		return out
	}
	h := fc(conv, T[gen.DemoFC1Filter].Data, T[gen.DemoFC1Bias].Data, 16, k.FC1Mult, k.FC1Shift, -128, true)
	logits = fc(h, T[gen.DemoFC2Filter].Data, T[gen.DemoFC2Bias].Data, 4, k.FC2Mult, k.FC2Shift, 0, false)
	// SOFTMAX in float: the fixed-point result is within one step of it.
	out = make([]int8, 4)
	var sum float64
	for _, l := range logits {
		sum += math.Exp(0.2 * float64(l))
	}
	for i, l := range logits {
		out[i] = int8(clamp(int32(math.Round(math.Exp(0.2*float64(l))/sum*256))-128, -128, 127))
	}
	return logits, out
}

func TestDemoModelAgainstReference(t *testing.T) {
	m := gen.Demo()
	model := m.Bytes()
	it, err := tflite.NewInterpreter(must(tflite.Parse(model)))
	if err != nil {
		t.Fatal(err)
	}
	// The same graph without SOFTMAX exposes the logits for an exact check.
	lm := gen.Demo()
	lm.Ops, lm.Outputs = lm.Ops[:3], []int32{gen.DemoFC2Out}
	lmodel := lm.Bytes()
	lit, err := tflite.NewInterpreter(must(tflite.Parse(lmodel)))
	if err != nil {
		t.Fatal(err)
	}
	in := make([]byte, 48)
	out, lout := make([]byte, 4), make([]byte, 4)
	seed := uint32(7)
	for trial := range 300 {
		for i := range in {
			seed = seed*1103515245 + 12345
			in[i] = byte(seed >> 16)
			if trial%3 == 0 {
				in[i] = byte(int8(in[i]) / 4) // gentler signals too
			}
		}
		if _, err := it.Invoke(model, in, out); err != nil {
			t.Fatal(err)
		}
		if _, err := lit.Invoke(lmodel, in, lout); err != nil {
			t.Fatal(err)
		}
		x := make([]int8, len(in))
		for i, v := range in {
			x[i] = int8(v)
		}
		logits, want := refDemo(m, x)
		for i, l := range logits {
			if int32(int8(lout[i])) != l {
				t.Fatalf("trial %d: engine logits %v, reference %v", trial, int8s(lout), logits)
			}
		}
		for i := range out {
			if d := int(int8(out[i])) - int(want[i]); d < -1 || d > 1 {
				t.Fatalf("trial %d: engine %v, reference %v", trial, out, want)
			}
		}
	}
}

func int8s(b []byte) []int8 {
	out := make([]int8, len(b))
	for i, v := range b {
		out[i] = int8(v)
	}
	return out
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
