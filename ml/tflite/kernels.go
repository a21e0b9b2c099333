package tflite

import (
	"encoding/binary"
	"math"
)

// The kernels follow TFLite Micro's reference integer kernels. Where they
// reorder arithmetic it is only int32 wrap-around arithmetic, which is a
// ring, so results stay identical bit for bit.

// maxPairK bounds the reduction length for which two int32 sums are packed
// into one int64: with |filter*input| <= 2^14 every partial sum of up to
// 2^17-1 terms fits in an int32 lane, so both lanes are recovered exactly.
const maxPairK = 1<<17 - 1

func requant(acc, mult int32, shift int, outOffset, lo, hi int32) int8 {
	v := multiplyByQuantizedMultiplier(acc, mult, shift) + outOffset
	return int8(min(max(v, lo), hi))
}

// loadBias decodes an int32 bias read in place (zeros when absent).
func loadBias(dst []int32, r tensorRef, w []byte) {
	if r.off < 0 {
		clear(dst)
		return
	}
	b := w[r.off : r.off+4*len(dst)]
	for i := range dst {
		dst[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
}

// conv is CONV_2D (reference_integer_ops::ConvPerChannel).
type conv struct {
	geom
	fD, groups int
	bias       tensorRef
	mult       []int32
	shift      []int8
	paired     bool // patch path usable (one group, K <= maxPairK)
	vec        bool // vector path (useSIMD, one group)
}

// scratch is the per-invocation working memory shared by all kernels (one
// kernel runs at a time), sized at prepare for the most demanding one.
type scratch struct {
	i16 []int16
	i32 []int32
	i64 []int64
	p   *pacer // the interpreter's, nil outside one
}

// ext is a constant tensor's data extended to the end of the model bytes,
// for vector kernels that read whole blocks past a filter's last row.
func ext(r tensorRef, w []byte) []int8 { return int8s(w[r.off:]) }

func (k *conv) run(a []int8, w []byte, s *scratch) {
	in, out, filter := k.inRef.get(a, w), k.outRef.get(a, w), k.filterRef.get(a, w)
	biasv := s.i32[:k.outD]
	loadBias(biasv, k.bias, w)
	if k.vec {
		k.runVec(in, out, ext(k.filterRef, w), biasv, s)
		return
	}
	K := k.fH * k.fW * k.fD
	// Channels go in blocks of about PaceWork multiply-accumulates (at
	// least 4 filter rows) between two reports of the work done.
	cb := max(4, PaceWork/max(2*K, 1))
	if !k.paired {
		for b := range k.batches {
			for oy := range k.outH {
				for ox := range k.outW {
					o := ((b*k.outH+oy)*k.outW + ox) * k.outD
					for c0 := 0; c0 < k.outD; c0 += cb {
						c1 := min(c0+cb, k.outD)
						k.reference(in, filter, out[o:o+k.outD], biasv, b, oy*k.strideH-k.padH, ox*k.strideW-k.padW, c0, c1)
						if s.tick((c1 - c0) * K) {
							return
						}
					}
				}
			}
		}
		return
	}
	// base[c] = bias + inOffset*sum(filter row c), so that the patch can
	// hold raw inputs: sum(f*(x+off)) = sum(f*x) + off*sum(f).
	base := s.i32[k.outD : 2*k.outD]
	for c := range k.outD {
		var sum int32
		for _, f := range filter[c*K : (c+1)*K] {
			sum += int32(f)
		}
		base[c] = biasv[c] + k.inOffset*sum
	}
	patch := s.i64[:K]
	for b := range k.batches {
		for oy := range k.outH {
			iy0 := oy*k.strideH - k.padH
			for ox := 0; ox < k.outW; ox += 2 {
				o := ((b*k.outH+oy)*k.outW + ox) * k.outD
				two := ox+1 < k.outW
				k.gather(patch, in, b, iy0, ox*k.strideW-k.padW, two)
				for c0 := 0; c0 < k.outD; c0 += cb {
					c1 := min(c0+cb, k.outD)
					if two {
						k.pair(patch, filter, base, out[o:o+2*k.outD], c0, c1)
					} else {
						k.pair(patch, filter, base, out[o:o+k.outD], c0, c1)
					}
					if s.tick(2 * (c1 - c0) * K) {
						return
					}
				}
			}
		}
	}
}

// gather packs the receptive fields of outputs (.., ix0) and (.., ix0 +
// strideW) into patch: the first in the low 32 bits, the second in the
// high ones. Taps outside the image hold the input zero point, whose
// offset input is 0: exactly the reference kernel's skipped taps.
func (k *conv) gather(patch []int64, in []int8, b, iy0, ix0 int, two bool) {
	zp := int64(-k.inOffset)
	ix1 := ix0 + k.strideW
	n := 0
	for fy := range k.fH {
		iy := iy0 + fy*k.dilH
		rowOK := iy >= 0 && iy < k.inH
		row := (b*k.inH + iy) * k.inW
		for fx := range k.fW {
			dst := patch[n : n+k.fD]
			n += k.fD
			x0 := ix0 + fx*k.dilW
			x1 := ix1 + fx*k.dilW
			in0 := rowOK && x0 >= 0 && x0 < k.inW
			in1 := two && rowOK && x1 >= 0 && x1 < k.inW
			switch {
			case in0 && in1:
				s0, s1 := in[(row+x0)*k.inD:][:len(dst)], in[(row+x1)*k.inD:][:len(dst)]
				for i := range dst {
					dst[i] = int64(s0[i]) + int64(s1[i])<<32
				}
			case in0:
				hi := zp << 32
				if !two {
					hi = 0
				}
				s0 := in[(row+x0)*k.inD:][:len(dst)]
				for i := range dst {
					dst[i] = int64(s0[i]) + hi
				}
			case in1:
				s1 := in[(row+x1)*k.inD:][:len(dst)]
				for i := range dst {
					dst[i] = zp + int64(s1[i])<<32
				}
			default:
				v := zp + zp<<32
				if !two {
					v = zp
				}
				for i := range dst {
					dst[i] = v
				}
			}
		}
	}
}

// pair finishes channels [c0, c1) of one or two output pixels (len(out)
// = outD or 2*outD).
func (k *conv) pair(patch []int64, filter []int8, base []int32, out []int8, c0, c1 int) {
	K := len(patch)
	two := len(out) > k.outD
	for c := c0; c < c1; c++ {
		s := dot(filter[c*K:(c+1)*K], patch)
		lo := int32(s)
		out[c] = requant(lo+base[c], k.mult[c], int(k.shift[c]), k.outOffset, k.actMin, k.actMax)
		if two {
			hi := int32((s - int64(lo)) >> 32)
			out[k.outD+c] = requant(hi+base[c], k.mult[c], int(k.shift[c]), k.outOffset, k.actMin, k.actMax)
		}
	}
}

// dot is sum(f[i]*x[i]) in T's wrapping arithmetic; the loop is unrolled
// with constant indexes into 8-element slices so no bounds checks remain.
// int32 and int64 instantiate separately, so neither pays for the other.
func dot[T int32 | int64](f []int8, x []T) T {
	var s0, s1 T
	for len(f) >= 8 && len(x) >= 8 {
		f8, x8 := f[:8:8], x[:8:8]
		s0 += T(f8[0]) * x8[0]
		s1 += T(f8[1]) * x8[1]
		s0 += T(f8[2]) * x8[2]
		s1 += T(f8[3]) * x8[3]
		s0 += T(f8[4]) * x8[4]
		s1 += T(f8[5]) * x8[5]
		s0 += T(f8[6]) * x8[6]
		s1 += T(f8[7]) * x8[7]
		f, x = f[8:], x[8:]
	}
	x = x[:len(f)]
	for i, v := range f {
		s0 += T(v) * x[i]
	}
	return s0 + s1
}

// reference computes channels [c0, c1) of one output pixel with the
// reference loop order and bounds tests (grouped convolutions, very long
// reductions).
func (k *conv) reference(in, filter, out []int8, biasv []int32, b, iy0, ix0, c0, c1 int) {
	K := k.fH * k.fW * k.fD
	perGroup := k.outD / k.groups
	for c := c0; c < c1; c++ {
		g := c / perGroup
		var acc int32
		for fy := range k.fH {
			iy := iy0 + fy*k.dilH
			if iy < 0 || iy >= k.inH {
				continue
			}
			for fx := range k.fW {
				ix := ix0 + fx*k.dilW
				if ix < 0 || ix >= k.inW {
					continue
				}
				x := in[((b*k.inH+iy)*k.inW+ix)*k.inD+g*k.fD:][:k.fD]
				f := filter[c*K+(fy*k.fW+fx)*k.fD:][:k.fD]
				for i, fv := range f {
					acc += int32(fv) * (int32(x[i]) + k.inOffset)
				}
			}
		}
		out[c] = requant(acc+biasv[c], k.mult[c], int(k.shift[c]), k.outOffset, k.actMin, k.actMax)
	}
}

// dwConv is DEPTHWISE_CONV_2D (reference_integer_ops::DepthwiseConvPerChannel).
type dwConv struct {
	geom
	depthMul int
	bias     tensorRef
	mult     []int32
	shift    []int8
	vec      bool // vector path (useSIMD, depth multiplier 1)
}

func (k *dwConv) run(a []int8, w []byte, s *scratch) {
	in, out, filter := k.inRef.get(a, w), k.outRef.get(a, w), k.filterRef.get(a, w)
	D := k.outD
	biasv, acc := s.i32[:D], s.i32[D:2*D]
	loadBias(biasv, k.bias, w)
	if k.vec {
		k.runVec(in, out, filter, biasv, acc, s)
		return
	}
	for b := range k.batches {
		for oy := range k.outH {
			iy0 := oy*k.strideH - k.padH
			for ox := range k.outW {
				ix0 := ox*k.strideW - k.padW
				copy(acc, biasv)
				for fy := range k.fH {
					iy := iy0 + fy*k.dilH
					if iy < 0 || iy >= k.inH {
						continue
					}
					for fx := range k.fW {
						ix := ix0 + fx*k.dilW
						if ix < 0 || ix >= k.inW {
							continue
						}
						x := in[((b*k.inH+iy)*k.inW+ix)*k.inD:][:k.inD]
						f := filter[(fy*k.fW+fx)*D:][:D]
						if k.depthMul == 1 {
							f = f[:len(x)]
							acc := acc[:len(x)]
							for c, xv := range x {
								acc[c] += int32(f[c]) * (int32(xv) + k.inOffset)
							}
							continue
						}
						for c, xv := range x {
							xo := int32(xv) + k.inOffset
							for m := range k.depthMul {
								oc := c*k.depthMul + m
								acc[oc] += int32(f[oc]) * xo
							}
						}
					}
				}
				o := out[((b*k.outH+oy)*k.outW+ox)*D:][:D]
				for c := range o {
					o[c] = requant(acc[c], k.mult[c], int(k.shift[c]), k.outOffset, k.actMin, k.actMax)
				}
				if s.tick(D * k.fH * k.fW) {
					return
				}
			}
		}
	}
}

// fullyConnected is FULLY_CONNECTED (reference_integer_ops::FullyConnected).
type fullyConnected struct {
	batches, units, depth    int
	inOffset, outOffset      int32
	actMin, actMax           int32
	inRef, outRef, filterRef tensorRef
	bias                     tensorRef
	mult                     []int32
	shift                    []int8
	vec                      bool // vector path (useSIMD)
}

func (k *fullyConnected) run(a []int8, w []byte, s *scratch) {
	in, out, filter := k.inRef.get(a, w), k.outRef.get(a, w), k.filterRef.get(a, w)
	var bias []byte
	if k.bias.off >= 0 {
		bias = w[k.bias.off : k.bias.off+4*k.units]
	}
	if k.vec {
		k.runVec(in, out, ext(k.filterRef, w), bias, s)
		return
	}
	xs := s.i32[:k.depth] // the input row plus its offset
	for b := range k.batches {
		for i, v := range in[b*k.depth : (b+1)*k.depth] {
			xs[i] = int32(v) + k.inOffset
		}
		for c := range k.units {
			out[b*k.units+c] = k.finish(dot(filter[c*k.depth:(c+1)*k.depth], xs), bias, c)
			if s.tick(k.depth) {
				return
			}
		}
	}
}

// finish adds unit c's bias (if any) to acc and requantizes.
func (k *fullyConnected) finish(acc int32, bias []byte, c int) int8 {
	if bias != nil {
		acc += int32(binary.LittleEndian.Uint32(bias[4*c:]))
	}
	m, sh := k.mult[0], k.shift[0]
	if len(k.mult) > 1 {
		m, sh = k.mult[c], k.shift[c]
	}
	return requant(acc, m, int(sh), k.outOffset, k.actMin, k.actMax)
}

// pool is AVERAGE_POOL_2D and MAX_POOL_2D (reference_integer_ops pooling).
type pool struct {
	geom
	max bool
}

func (k *pool) run(a []int8, w []byte, s *scratch) {
	in, out := k.inRef.get(a, w), k.outRef.get(a, w)
	D := k.inD
	for b := range k.batches {
		for oy := range k.outH {
			iy0 := oy*k.strideH - k.padH
			fy0, fy1 := max(0, -iy0), min(k.fH, k.inH-iy0)
			for ox := range k.outW {
				ix0 := ox*k.strideW - k.padW
				fx0, fx1 := max(0, -ix0), min(k.fW, k.inW-ix0)
				o := out[((b*k.outH+oy)*k.outW+ox)*D:][:D]
				count := int32((fy1 - fy0) * (fx1 - fx0))
				for c := range D {
					var acc int32
					if k.max {
						acc = math.MinInt8
					}
					for fy := fy0; fy < fy1; fy++ {
						row := ((b*k.inH + iy0 + fy) * k.inW) * D
						for fx := fx0; fx < fx1; fx++ {
							v := int32(in[row+(ix0+fx)*D+c])
							if k.max {
								acc = max(acc, v)
							} else {
								acc += v
							}
						}
					}
					if !k.max {
						if count <= 0 {
							// The reference kernel fails; an empty window
							// cannot occur for shapes that passed prepare.
							acc = 0
						} else if acc > 0 {
							acc = (acc + count/2) / count
						} else {
							acc = (acc - count/2) / count
						}
					}
					o[c] = int8(min(max(acc, k.actMin), k.actMax))
				}
				if s.tick(D * (1 + max(fy1-fy0, 0)*max(fx1-fx0, 0))) {
					return
				}
			}
		}
	}
}

// add is ADD with 4-D broadcasting (reference_integer_ops::Add and
// BroadcastAdd4DSlow).
type add struct {
	in1, in2, outRef         tensorRef
	off1, off2, outOffset    int32
	leftShift                int
	mult1, mult2, multOut    int32
	shift1, shift2, shiftOut int
	actMin, actMax           int32
	dims                     [4]int
	stride1, stride2         [4]int
	elementwise              bool
	vec                      bool // vector path (useSIMD) when elementwise
}

// broadcast prepares the 4-D broadcast strides (NumPy rules).
func (k *add) broadcast(s1, s2, so []int) error {
	if len(s1) > 4 || len(s2) > 4 || len(so) > 4 {
		return errf("add of rank over 4")
	}
	ext := func(s []int) [4]int {
		r := [4]int{1, 1, 1, 1}
		copy(r[4-len(s):], s)
		return r
	}
	a, b, o := ext(s1), ext(s2), ext(so)
	k.elementwise = a == b && a == o
	sa, sb := 1, 1
	for i := 3; i >= 0; i-- {
		d := max(a[i], b[i])
		if (a[i] != d && a[i] != 1) || (b[i] != d && b[i] != 1) || o[i] != d {
			return errf("add shapes %v + %v -> %v do not broadcast", s1, s2, so)
		}
		k.dims[i] = d
		if a[i] != 1 {
			k.stride1[i] = sa
		}
		if b[i] != 1 {
			k.stride2[i] = sb
		}
		sa *= a[i]
		sb *= b[i]
	}
	return nil
}

func (k *add) one(x1, x2 int8) int8 {
	v1 := (int32(x1) + k.off1) * (1 << k.leftShift)
	v2 := (int32(x2) + k.off2) * (1 << k.leftShift)
	s1 := multiplyByQuantizedMultiplier(v1, k.mult1, k.shift1)
	s2 := multiplyByQuantizedMultiplier(v2, k.mult2, k.shift2)
	r := multiplyByQuantizedMultiplier(s1+s2, k.multOut, k.shiftOut) + k.outOffset
	return int8(min(max(r, k.actMin), k.actMax))
}

func (k *add) run(a []int8, w []byte, s *scratch) {
	x1, x2, out := k.in1.get(a, w), k.in2.get(a, w), k.outRef.get(a, w)
	if k.elementwise {
		x2 = x2[:len(x1)]
		out = out[:len(x1)]
		// In chunks, each reported as the work it did.
		for j := 0; j < len(x1); j += paceChunk {
			e := min(j+paceChunk, len(x1))
			i := j
			if k.vec {
				i += addVec(k, out[j:e], x1[j:e], x2[j:e])
			}
			for ; i < e; i++ {
				out[i] = k.one(x1[i], x2[i])
			}
			if s.tick(4 * (e - j)) {
				return
			}
		}
		return
	}
	d := k.dims
	n := 0
	for i0 := range d[0] {
		for i1 := range d[1] {
			for i2 := range d[2] {
				for i3 := range d[3] {
					p1 := i0*k.stride1[0] + i1*k.stride1[1] + i2*k.stride1[2] + i3*k.stride1[3]
					p2 := i0*k.stride2[0] + i1*k.stride2[1] + i2*k.stride2[2] + i3*k.stride2[3]
					out[n] = k.one(x1[p1], x2[p2])
					n++
				}
				if s.tick(4 * d[3]) {
					return
				}
			}
		}
	}
}

// reshape copies: RESHAPE never changes bytes.
type reshape struct{ in, out tensorRef }

func (k *reshape) run(a []int8, w []byte, s *scratch) {
	out, in := k.out.get(a, w), k.in.get(a, w)
	for j := 0; j < len(in); j += 16 * paceChunk {
		e := min(j+16*paceChunk, len(in))
		copy(out[j:e], in[j:e])
		if s.tick((e - j) / 16) {
			return
		}
	}
}

const scaledDiffIntegerBits = 5

// softmax is int8 SOFTMAX (reference_ops::Softmax, gemmlowp fixed point).
type softmax struct {
	in, out   tensorRef
	depth     int
	mult      int32
	leftShift int
	diffMin   int32
}

func (k *softmax) run(a []int8, w []byte, s *scratch) {
	in, out := k.in.get(a, w), k.out.get(a, w)
	const accumIntBits = 12
	for r := 0; r+k.depth <= len(in); r += k.depth {
		x, o := in[r:r+k.depth], out[r:r+k.depth]
		maxv := int32(math.MinInt8)
		for _, v := range x {
			maxv = max(maxv, int32(v))
		}
		var sum int32
		for _, v := range x {
			if d := int32(v) - maxv; d >= k.diffMin {
				e := expOnNegativeValues(saturatingRoundingDoublingHighMul(d*(1<<k.leftShift), k.mult))
				sum += roundingDivideByPOT(e, accumIntBits)
			}
		}
		scale, bitsOver := getReciprocal(sum, accumIntBits)
		for i, v := range x {
			if d := int32(v) - maxv; d >= k.diffMin {
				e := expOnNegativeValues(saturatingRoundingDoublingHighMul(d*(1<<k.leftShift), k.mult))
				u := roundingDivideByPOT(saturatingRoundingDoublingHighMul(scale, e), bitsOver+31-8)
				o[i] = int8(min(max(u-128, math.MinInt8), math.MaxInt8))
			} else {
				o[i] = math.MinInt8
			}
		}
		if s.tick(8 * k.depth) {
			return
		}
	}
}
