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
	fD, groups  int
	bias        tensorRef
	mult        []int32
	shift       []int
	biasv, fsum []int32
	patch       []int64 // two packed im2col rows; nil: reference path only
}

func (k *conv) run(a []int8, w []byte) {
	in, out, filter := k.inRef.get(a, w), k.outRef.get(a, w), k.filterRef.get(a, w)
	loadBias(k.biasv, k.bias, w)
	K := k.fH * k.fW * k.fD
	for c := range k.outD {
		var s int32
		for _, f := range filter[c*K : (c+1)*K] {
			s += int32(f)
		}
		k.fsum[c] = s
	}
	for b := range k.batches {
		for oy := range k.outH {
			iy0 := oy*k.strideH - k.padH
			rowInside := iy0 >= 0 && iy0+(k.fH-1)*k.dilH < k.inH
			for ox := 0; ox < k.outW; {
				ix0 := ox*k.strideW - k.padW
				o := ((b*k.outH+oy)*k.outW + ox) * k.outD
				if k.patch != nil && rowInside && ix0 >= 0 && ix0+(k.fW-1)*k.dilW < k.inW {
					// Two horizontally adjacent outputs at once when both
					// windows are inside the image.
					ix1 := ix0 + k.strideW
					if ox+1 < k.outW && ix1+(k.fW-1)*k.dilW < k.inW {
						k.gather(in, b, iy0, ix0, ix1)
						k.pair(filter, out[o:o+2*k.outD])
						ox += 2
						continue
					}
					k.gather(in, b, iy0, ix0, -1)
					k.pair(filter, out[o:o+k.outD])
					ox++
					continue
				}
				k.reference(in, filter, out[o:o+k.outD], b, iy0, ix0)
				ox++
			}
		}
	}
}

// gather packs the receptive fields at (iy0, ix0) and (iy0, ix1) into
// patch: low 32 bits the first, high 32 bits the second (ix1 < 0: none).
func (k *conv) gather(in []int8, b, iy0, ix0, ix1 int) {
	p := k.patch
	rowLen := k.inW * k.inD
	n := 0
	for fy := range k.fH {
		row := (b*k.inH + iy0 + fy*k.dilH) * rowLen
		for fx := range k.fW {
			s0 := row + (ix0+fx*k.dilW)*k.inD
			x0 := in[s0 : s0+k.fD]
			dst := p[n : n+k.fD]
			if ix1 < 0 {
				for i, v := range x0 {
					dst[i] = int64(v)
				}
			} else {
				s1 := row + (ix1+fx*k.dilW)*k.inD
				x1 := in[s1 : s1+k.fD]
				for i, v := range x0 {
					dst[i] = int64(v) + int64(x1[i])<<32
				}
			}
			n += k.fD
		}
	}
}

// pair finishes one or two output pixels (len(out) = outD or 2*outD) from
// the packed patch: acc = sum(f*x) + inOffset*sum(f) + bias.
func (k *conv) pair(filter []int8, out []int8) {
	K := len(k.patch)
	two := len(out) > k.outD
	p := k.patch
	for c := 0; c < k.outD; c++ {
		f := filter[c*K : (c+1)*K]
		f = f[:len(p)]
		var s0, s1, s2, s3 int64
		i := 0
		for ; i+4 <= len(f); i += 4 {
			s0 += int64(f[i]) * p[i]
			s1 += int64(f[i+1]) * p[i+1]
			s2 += int64(f[i+2]) * p[i+2]
			s3 += int64(f[i+3]) * p[i+3]
		}
		for ; i < len(f); i++ {
			s0 += int64(f[i]) * p[i]
		}
		s := s0 + s1 + s2 + s3
		lo := int32(s)
		base := k.inOffset*k.fsum[c] + k.biasv[c]
		out[c] = requant(lo+base, k.mult[c], k.shift[c], k.outOffset, k.actMin, k.actMax)
		if two {
			hi := int32((s - int64(lo)) >> 32)
			out[k.outD+c] = requant(hi+base, k.mult[c], k.shift[c], k.outOffset, k.actMin, k.actMax)
		}
	}
}

// reference computes one output pixel with the reference loop order and
// bounds tests (image borders, grouped convolutions).
func (k *conv) reference(in, filter, out []int8, b, iy0, ix0 int) {
	K := k.fH * k.fW * k.fD
	perGroup := k.outD / k.groups
	for c := range k.outD {
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
		out[c] = requant(acc+k.biasv[c], k.mult[c], k.shift[c], k.outOffset, k.actMin, k.actMax)
	}
}

// dwConv is DEPTHWISE_CONV_2D (reference_integer_ops::DepthwiseConvPerChannel).
type dwConv struct {
	geom
	depthMul int
	bias     tensorRef
	mult     []int32
	shift    []int
	acc      []int32
}

func (k *dwConv) run(a []int8, w []byte) {
	in, out, filter := k.inRef.get(a, w), k.outRef.get(a, w), k.filterRef.get(a, w)
	acc := k.acc
	D := k.outD
	for b := range k.batches {
		for oy := range k.outH {
			iy0 := oy*k.strideH - k.padH
			for ox := range k.outW {
				ix0 := ox*k.strideW - k.padW
				loadBias(acc, k.bias, w)
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
					o[c] = requant(acc[c], k.mult[c], k.shift[c], k.outOffset, k.actMin, k.actMax)
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
	shift                    []int
	xs                       []int32 // input row plus offset
}

func (k *fullyConnected) run(a []int8, w []byte) {
	in, out, filter := k.inRef.get(a, w), k.outRef.get(a, w), k.filterRef.get(a, w)
	var bias []byte
	if k.bias.off >= 0 {
		bias = w[k.bias.off : k.bias.off+4*k.units]
	}
	xs := k.xs
	for b := range k.batches {
		for i, v := range in[b*k.depth : (b+1)*k.depth] {
			xs[i] = int32(v) + k.inOffset
		}
		for c := range k.units {
			f := filter[c*k.depth : (c+1)*k.depth]
			f = f[:len(xs)]
			var s0, s1, s2, s3 int32
			i := 0
			for ; i+4 <= len(f); i += 4 {
				s0 += int32(f[i]) * xs[i]
				s1 += int32(f[i+1]) * xs[i+1]
				s2 += int32(f[i+2]) * xs[i+2]
				s3 += int32(f[i+3]) * xs[i+3]
			}
			for ; i < len(f); i++ {
				s0 += int32(f[i]) * xs[i]
			}
			acc := s0 + s1 + s2 + s3
			if bias != nil {
				acc += int32(binary.LittleEndian.Uint32(bias[4*c:]))
			}
			m, s := k.mult[0], k.shift[0]
			if len(k.mult) > 1 {
				m, s = k.mult[c], k.shift[c]
			}
			out[b*k.units+c] = requant(acc, m, s, k.outOffset, k.actMin, k.actMax)
		}
	}
}

// pool is AVERAGE_POOL_2D and MAX_POOL_2D (reference_integer_ops pooling).
type pool struct {
	geom
	max bool
}

func (k *pool) run(a []int8, w []byte) {
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

func (k *add) run(a []int8, w []byte) {
	x1, x2, out := k.in1.get(a, w), k.in2.get(a, w), k.outRef.get(a, w)
	if k.elementwise {
		x2 = x2[:len(x1)]
		out = out[:len(x1)]
		for i, v := range x1 {
			out[i] = k.one(v, x2[i])
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
			}
		}
	}
}

// reshape copies: RESHAPE never changes bytes.
type reshape struct{ in, out tensorRef }

func (k *reshape) run(a []int8, w []byte) {
	copy(k.out.get(a, w), k.in.get(a, w))
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

func (k *softmax) run(a []int8, w []byte) {
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
	}
}
