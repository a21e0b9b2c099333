package tflite

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// edgeLens are reduction lengths around the 16-element vector blocks.
var edgeLens = []int{1, 2, 7, 8, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65, 100, 127, 128, 129, 640}

// withSIMD runs fn with useSIMD set to v (kernels read it when prepared).
func withSIMD(t testing.TB, v bool, fn func()) {
	t.Helper()
	old := useSIMD
	useSIMD = v
	defer func() { useSIMD = old }()
	fn()
}

// simdModes are the kernel sets this machine can run.
func simdModes() []bool {
	if useSIMD {
		return []bool{true, false}
	}
	return []bool{false}
}

func randInt8s(r *rand.Rand, dst []int8) {
	for i := range dst {
		dst[i] = int8(r.IntN(256) - 128)
	}
}

// randPatch fills p[:K] with x+offset values (extremes included) and zeros
// past K, like im2col.
func randPatch(r *rand.Rand, p []int16, K int) {
	for i := range p {
		switch {
		case i >= K:
			p[i] = 0
		case r.IntN(8) == 0:
			p[i] = []int16{-255, 255, 0}[r.IntN(3)]
		default:
			p[i] = int16(r.IntN(511) - 255)
		}
	}
}

// TestDotRowsVec compares the vector dot products with dot16 for edge
// lengths and row counts, with the filter ending right before a guard page
// (slack bytes after the last row), so an over-read faults.
func TestDotRowsVec(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, K := range edgeLens {
		kp := patchLen(K)
		for _, rows := range []int{0, 1, 3, 4, 5, 8, 13, 64} {
			for _, slack := range []int{0, 1, kp - K, kp} {
				f := guarded(t, rows*K+slack)
				randInt8s(r, f)
				if rows > 0 && r.IntN(2) == 0 {
					// The largest products: -128 * -255 in every lane.
					for i := range K {
						f[i] = -128
					}
				}
				p0, p1 := make([]int16, kp), make([]int16, kp)
				randPatch(r, p0, K)
				randPatch(r, p1, K)
				if rows > 0 && r.IntN(2) == 0 {
					for i := range K {
						p0[i] = -255
					}
				}
				acc0, acc1 := make([]int32, rows), make([]int32, rows)
				dotRows(acc0, acc1, p0, p1, f, K)
				one := make([]int32, rows)
				dotRows(one, nil, p0, nil, f, K)
				for c := range rows {
					row := f[c*K : (c+1)*K]
					w0, w1 := dotRef(row, p0), dotRef(row, p1)
					if acc0[c] != w0 || acc1[c] != w1 || one[c] != w0 {
						t.Fatalf("K=%d rows=%d slack=%d row %d: got %d %d %d, want %d %d", K, rows, slack, c, acc0[c], acc1[c], one[c], w0, w1)
					}
				}
			}
		}
	}
}

func dotRef(f []int8, p []int16) int32 {
	var s int32
	for i, v := range f {
		s += int32(v) * int32(p[i])
	}
	return s
}

// TestDwVec compares the vector depthwise taps with dwTaps on random
// windows, the input and filter ending right before guard pages.
func TestDwVec(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		nb := 1 + r.IntN(5)
		D := 8*nb + r.IntN(3)*8 // channels per pixel, >= 8*nb
		ny, nx := 1+r.IntN(3), 1+r.IntN(3)
		xcol := D * (1 + r.IntN(2))
		xrow := xcol * (nx + r.IntN(3))
		fcol, frow := D, D*(nx+r.IntN(2))
		x := guarded(t, (ny-1)*xrow+(nx-1)*xcol+8*nb)
		f := guarded(t, (ny-1)*frow+(nx-1)*fcol+8*nb)
		randInt8s(r, x)
		randInt8s(r, f)
		off := int32(r.IntN(256) - 127)
		acc := make([]int32, 8*nb)
		for i := range acc {
			acc[i] = r.Int32() - 1<<30
		}
		want := slices.Clone(acc)
		dwVec(x, xrow, xcol, ny, nx, f, frow, fcol, nb, off, acc)
		dwTaps(x, xrow, xcol, ny, nx, f, frow, fcol, 8*nb, off, want)
		if !slices.Equal(acc, want) {
			t.Fatalf("nb=%d ny=%d nx=%d: %v, want %v", nb, ny, nx, acc, want)
		}
	}
}

// kernelCase is one randomly shaped operator with its data laid out like
// the interpreter's: activations in an arena, weights in model bytes
// (followed by a little slack, then the end of the slice).
type kernelCase struct {
	a []int8
	w []byte
}

func (kc *kernelCase) arena(r *rand.Rand, n int) tensorRef {
	ref := tensorRef{off: len(kc.a), n: n}
	kc.a = append(kc.a, make([]int8, n)...)
	randInt8s(r, kc.a[ref.off:])
	return ref
}

func (kc *kernelCase) weights(r *rand.Rand, n int) tensorRef {
	ref := tensorRef{off: len(kc.w), n: n, constant: true}
	for range n {
		kc.w = append(kc.w, byte(r.IntN(256)))
	}
	return ref
}

func (kc *kernelCase) bias(r *rand.Rand, n int) tensorRef {
	if r.IntN(4) == 0 {
		return tensorRef{off: -1}
	}
	ref := tensorRef{off: len(kc.w), n: 4 * n, constant: true}
	for range n {
		kc.w = binary.LittleEndian.AppendUint32(kc.w, uint32(r.IntN(1<<16)-1<<15))
	}
	return ref
}

func randMults(r *rand.Rand, n int) ([]int32, []int8) {
	m, s := make([]int32, n), make([]int8, n)
	for i := range m {
		m[i] = 1<<30 + r.Int32N(1<<30)
		s[i] = int8(-r.IntN(14))
	}
	return m, s
}

// randGeom draws a window geometry; outD 0 means the input depth.
func randGeom(r *rand.Rand, kc *kernelCase, fH, fW, outD int) geom {
	g := geom{batches: 1 + r.IntN(2), inH: 1 + r.IntN(9), inW: 1 + r.IntN(9), inD: 1 + r.IntN(40),
		fH: fH, fW: fW, outD: outD, strideH: 1 + r.IntN(3), strideW: 1 + r.IntN(3),
		dilH: 1 + r.IntN(2), dilW: 1 + r.IntN(2)}
	if outD == 0 {
		g.outD = g.inD
	}
	pad := uint8(r.IntN(2))
	g.outH = max(1, outSize(pad, g.inH, fH, g.strideH, g.dilH))
	g.outW = max(1, outSize(pad, g.inW, fW, g.strideW, g.dilW))
	g.padH = padding(g.strideH, g.dilH, g.inH, fH, g.outH)
	g.padW = padding(g.strideW, g.dilW, g.inW, fW, g.outW)
	g.inOffset = []int32{-127, 128, 0, int32(r.IntN(256) - 127)}[r.IntN(4)]
	g.outOffset = int32(r.IntN(256) - 128)
	g.actMin, g.actMax = -128, 127
	if r.IntN(2) == 0 {
		g.actMin = g.outOffset
	}
	g.inRef = kc.arena(r, g.batches*g.inH*g.inW*g.inD)
	g.outRef = kc.arena(r, g.batches*g.outH*g.outW*g.outD)
	return g
}

// runKernels runs each kernel on a copy of kc's arena with fresh scratch
// and checks that all of them write the same output.
func runKernels(t *testing.T, kc *kernelCase, out tensorRef, scratchLen int, what string, kernels ...kernel) {
	t.Helper()
	kc.w = append(kc.w, make([]byte, rand.IntN(20))...) // slack after the weights
	var want []int8
	for i, kn := range kernels {
		a := slices.Clone(kc.a)
		s := scratch{i16: make([]int16, scratchLen), i32: make([]int32, scratchLen), i64: make([]int64, scratchLen)}
		for j := range s.i16 { // scratch is not cleared between operators
			s.i16[j], s.i32[j], s.i64[j] = -1, -1, -1
		}
		kn.run(a, kc.w, &s)
		got := out.get(a, kc.w)
		if i == 0 {
			want = slices.Clone(got)
		} else if !slices.Equal(got, want) {
			t.Fatalf("%s: kernel %d (%T) differs: first diff at %s", what, i, kn, firstDiff(bytesOf(got), bytesOf(want)))
		}
	}
}

// TestConvVecMatchesGo compares the vector CONV_2D with the paired and the
// reference pure-Go loops on random shapes, offsets and weights.
func TestConvVecMatchesGo(t *testing.T) {
	if !useSIMD {
		t.Skip("no vector kernels on this CPU")
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 400 {
		kc := &kernelCase{}
		outD := []int{1, 3, 4, 5, 8, 16, 63, 64, 65, 70, 128, 130}[r.IntN(12)]
		g := randGeom(r, kc, 1+r.IntN(4), 1+r.IntN(4), outD)
		fD := g.inD
		g.filterRef = kc.weights(r, outD*g.fH*g.fW*fD)
		mult, shift := randMults(r, outD)
		base := conv{geom: g, fD: fD, groups: 1, bias: kc.bias(r, outD), mult: mult, shift: shift}
		ref, pair, vec := base, base, base
		pair.paired, vec.vec = true, true
		K := g.fH * g.fW * fD
		runKernels(t, kc, g.outRef, max(3*outD+2*rowBlock, 2*patchLen(K), K), fmt.Sprintf("conv %+v", g), &ref, &pair, &vec)
	}
}

// TestDepthwiseVecMatchesGo compares the vector DEPTHWISE_CONV_2D with the
// pure-Go loop (channel counts with and without a tail of < 8).
func TestDepthwiseVecMatchesGo(t *testing.T) {
	if !useSIMD {
		t.Skip("no vector kernels on this CPU")
	}
	r := rand.New(rand.NewPCG(7, 8))
	for range 400 {
		kc := &kernelCase{}
		g := randGeom(r, kc, 1+r.IntN(4), 1+r.IntN(4), 0)
		g.filterRef = kc.weights(r, g.fH*g.fW*g.outD)
		mult, shift := randMults(r, g.outD)
		base := dwConv{geom: g, depthMul: 1, bias: kc.bias(r, g.outD), mult: mult, shift: shift}
		vec := base
		vec.vec = true
		runKernels(t, kc, g.outRef, 2*g.outD, fmt.Sprintf("depthwise %+v", g), &base, &vec)
	}
}

// TestFullyConnectedVecMatchesGo compares the vector FULLY_CONNECTED with
// the pure-Go loop for edge depths and unit counts around rowBlock.
func TestFullyConnectedVecMatchesGo(t *testing.T) {
	if !useSIMD {
		t.Skip("no vector kernels on this CPU")
	}
	r := rand.New(rand.NewPCG(9, 10))
	for _, depth := range edgeLens {
		for _, units := range []int{1, 2, 4, 5, 63, 64, 65, 130} {
			kc := &kernelCase{}
			batches := 1 + r.IntN(3)
			k := fullyConnected{batches: batches, units: units, depth: depth,
				inOffset: int32(r.IntN(256) - 127), outOffset: int32(r.IntN(256) - 128), actMin: -128, actMax: 127}
			k.inRef = kc.arena(r, batches*depth)
			k.outRef = kc.arena(r, batches*units)
			k.filterRef = kc.weights(r, units*depth)
			k.bias = kc.bias(r, units)
			if r.IntN(2) == 0 {
				k.mult, k.shift = randMults(r, 1)
			} else {
				k.mult, k.shift = randMults(r, units)
			}
			vec := k
			vec.vec = true
			runKernels(t, kc, k.outRef, max(depth, 2*rowBlock, patchLen(depth)), fmt.Sprintf("fully connected %d x %d -> %d", batches, depth, units), &k, &vec)
		}
	}
}

func TestTapRange(t *testing.T) {
	for i0 := -7; i0 < 12; i0++ {
		for n := 0; n < 5; n++ {
			for dil := 1; dil < 4; dil++ {
				for size := 1; size < 9; size++ {
					lo, hi := tapRange(i0, n, dil, size)
					var want []int
					for f := range n {
						if x := i0 + f*dil; x >= 0 && x < size {
							want = append(want, f)
						}
					}
					var got []int
					for f := lo; f < hi; f++ {
						got = append(got, f)
					}
					if !slices.Equal(got, want) {
						t.Fatalf("tapRange(%d, %d, %d, %d) = [%d, %d), want %v", i0, n, dil, size, lo, hi, want)
					}
				}
			}
		}
	}
}

// TestRequantRows compares the vector requantization with requant on
// extreme accumulators, every shift quantizeMultiplier can produce and
// multipliers at their bounds, per channel and per tensor.
func TestRequantRows(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	accs := []int32{0, 1, -1, 1 << 30, -1 << 30, 1<<31 - 1, -1 << 31, 12345, -12345}
	mults := []int32{0, 1 << 30, 1<<31 - 1, 1<<30 + 1}
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 64} {
		for range 60 {
			acc, bias, mult := make([]int32, n), make([]int32, n), make([]int32, n)
			shift := make([]int8, n)
			for i := range n {
				acc[i] = r.Int32() - 1<<30
				if r.IntN(3) == 0 {
					acc[i] = accs[r.IntN(len(accs))]
				}
				bias[i] = int32(r.IntN(1<<16) - 1<<15)
				if r.IntN(4) == 0 {
					bias[i] = accs[r.IntN(len(accs))]
				}
				m, s := quantizeMultiplier(r.Float64() * float64(int64(1)<<r.IntN(40)) / (1 << 32))
				if r.IntN(4) == 0 {
					m, s = mults[r.IntN(len(mults))], r.IntN(62)-31
				}
				mult[i], shift[i] = m, int8(s)
			}
			outOffset := int32(r.IntN(256) - 128)
			lo, hi := int32(-128), int32(127)
			if r.IntN(2) == 0 {
				lo, hi = outOffset, min(127, outOffset+int32(r.IntN(128)))
			}
			for _, perTensor := range []bool{false, true} {
				m, s := mult, shift
				if perTensor {
					if n == 0 {
						continue
					}
					m, s = mult[:1], shift[:1]
				}
				got := make([]int8, n)
				requantRows(got, acc, bias, m, s, outOffset, lo, hi)
				for i := range n {
					j := i
					if perTensor {
						j = 0
					}
					if want := requant(acc[i]+bias[i], m[j], int(s[j]), outOffset, lo, hi); got[i] != want {
						t.Fatalf("n=%d i=%d acc=%d bias=%d mult=%d shift=%d: %d, want %d", n, i, acc[i], bias[i], m[j], s[j], got[i], want)
					}
				}
			}
		}
	}
}

// TestWiden checks the int8 -> int16 + offset conversion on edge lengths,
// the source ending right before a guard page.
func TestWiden(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, n := range append([]int{0}, edgeLens...) {
		for _, off := range []int16{-127, 0, 128} {
			src := guarded(t, n)
			randInt8s(r, src)
			dst := make([]int16, n+1)
			dst[n] = 77
			widen(dst, src, off)
			for i, v := range src {
				if dst[i] != int16(v)+off {
					t.Fatalf("n=%d off=%d: dst[%d] = %d, want %d", n, off, i, dst[i], int16(v)+off)
				}
			}
			if dst[n] != 77 {
				t.Fatalf("n=%d: wrote past the source length", n)
			}
		}
	}
}

// TestAddVecMatchesGo compares the vector elementwise ADD with the Go loop
// for edge lengths and random scales (as prepareAdd quantizes them).
func TestAddVecMatchesGo(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for _, n := range append([]int{0}, edgeLens...) {
		for range 20 {
			kc := &kernelCase{}
			s1, s2, so := 0.001+r.Float64(), 0.001+r.Float64(), 0.001+r.Float64()
			k := add{in1: kc.arena(r, n), in2: kc.arena(r, n), outRef: kc.arena(r, n),
				off1: int32(r.IntN(256) - 127), off2: int32(r.IntN(256) - 127), outOffset: int32(r.IntN(256) - 128),
				leftShift: 20, actMin: -128, actMax: 127, elementwise: true}
			if r.IntN(2) == 0 {
				k.actMin = k.outOffset
			}
			twiceMax := 2 * max(s1, s2)
			k.mult1, k.shift1 = quantizeMultiplier(s1 / twiceMax)
			k.mult2, k.shift2 = quantizeMultiplier(s2 / twiceMax)
			k.multOut, k.shiftOut = quantizeMultiplier(twiceMax / (float64(int(1)<<k.leftShift) * so))
			vec := k
			vec.vec = true
			runKernels(t, kc, k.outRef, 1, fmt.Sprintf("add of %d: %+v", n, k), &k, &vec)
		}
	}
}
