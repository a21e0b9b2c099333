package tflite

import "encoding/binary"

// The vector kernels (useSIMD) work on int16 patches that already hold
// x + inputOffset (a 9-bit value; taps outside the image are 0, exactly
// the reference kernel's skipped taps), so no filter sums are needed and
// every product f*(x+off) fits the 16x16->32-bit multiply-adds. Outputs
// are computed rowBlock channels at a time to bound scratch memory.

const rowBlock = 64

// patchLen rounds a reduction length up to whole 16-element blocks.
func patchLen(K int) int { return (K + 15) &^ 15 }

// dotRows sets acc0[c] (and acc1[c] when p1 != nil) to the dot product of
// filter row c, f[c*K:(c+1)*K], with p0 (p1), for c < len(acc0). The
// patches have patchLen(K) elements, zero past K; f may extend past the
// last row (to the end of the model bytes), which lets the vector code
// read whole blocks.
func dotRows(acc0, acc1 []int32, p0, p1 []int16, f []int8, K int) {
	for c := dotRowsVec(acc0, acc1, p0, p1, f, K); c < len(acc0); c++ {
		row := f[c*K : (c+1)*K]
		acc0[c] = dot16(row, p0)
		if p1 != nil {
			acc1[c] = dot16(row, p1)
		}
	}
}

// dot16 is sum(f[i]*p[i]) in wrapping int32.
func dot16(f []int8, p []int16) int32 {
	p = p[:len(f)]
	var s0, s1 int32
	for len(f) >= 4 && len(p) >= 4 {
		f4, p4 := f[:4:4], p[:4:4]
		s0 += int32(f4[0])*int32(p4[0]) + int32(f4[2])*int32(p4[2])
		s1 += int32(f4[1])*int32(p4[1]) + int32(f4[3])*int32(p4[3])
		f, p = f[4:], p[4:]
	}
	for i, v := range f {
		s0 += int32(v) * int32(p[i])
	}
	return s0 + s1
}

// dwTaps adds to acc[c], c < n, the ny x nx depthwise taps
// f[iy*frow+ix*fcol+c] * (x[iy*xrow+ix*xcol+c] + off).
func dwTaps(x []int8, xrow, xcol, ny, nx int, f []int8, frow, fcol, n int, off int32, acc []int32) {
	acc = acc[:n]
	for iy := range ny {
		for ix := range nx {
			xs := x[iy*xrow+ix*xcol:][:n]
			fs := f[iy*frow+ix*fcol:][:n]
			for c, v := range xs {
				acc[c] += int32(fs[c]) * (int32(v) + off)
			}
		}
	}
}

// tapRange is the range [lo, hi) of filter taps t < n whose input
// coordinate i0 + t*dil lies in [0, size).
func tapRange(i0, n, dil, size int) (int, int) {
	lo, hi := 0, n
	if i0 < 0 {
		lo = (-i0 + dil - 1) / dil
	}
	if size-i0 <= 0 {
		return 0, 0
	}
	hi = min(hi, (size-i0+dil-1)/dil)
	if lo >= hi {
		return 0, 0
	}
	return lo, hi
}

// runVec is run on the vector path: per pair of output pixels, the two
// patches are gathered once and multiplied by every filter row.
func (k *conv) runVec(in, out, fext []int8, biasv []int32, s *scratch) {
	K := k.fH * k.fW * k.fD
	kp := patchLen(K)
	p0, p1 := s.i16[:kp], s.i16[kp:2*kp]
	clear(p0[K:])
	clear(p1[K:])
	D := k.outD
	acc0, acc1 := s.i32[D:D+rowBlock], s.i32[D+rowBlock:D+2*rowBlock]
	rb := paceRows(K)
	hw := k.outH * k.outW
	npx := k.batches * hw
	for px := 0; px < npx; px += 2 {
		two := px+1 < npx
		k.im2col(p0, in, px/hw, px%hw)
		if two {
			k.im2col(p1, in, (px+1)/hw, (px+1)%hw)
		}
		o0 := out[px*D:][:D]
		for c0 := 0; c0 < D; c0 += rowBlock {
			n := min(rowBlock, D-c0)
			b, m, sh := biasv[c0:], k.mult[c0:], k.shift[c0:]
			// The rows in pieces of about PaceWork multiply-accumulates
			// (multiples of 4 rows, the vector kernel's unit).
			for r0 := 0; r0 < n; r0 += rb {
				r1 := min(r0+rb, n)
				f := fext[(c0+r0)*K:]
				if two {
					dotRows(acc0[r0:r1], acc1[r0:r1], p0, p1, f, K)
				} else {
					dotRows(acc0[r0:r1], nil, p0, nil, f, K)
				}
				if s.tick(2 * (r1 - r0) * K) {
					return
				}
			}
			if two {
				requantRows(out[(px+1)*D+c0:][:n], acc1, b, m, sh, k.outOffset, k.actMin, k.actMax)
			}
			requantRows(o0[c0:c0+n], acc0, b, m, sh, k.outOffset, k.actMin, k.actMax)
		}
	}
}

// paceRows is how many filter rows of length K make about PaceWork
// multiply-accumulates for two pixels: a multiple of 4 in [4, rowBlock].
func paceRows(K int) int {
	return min(rowBlock, max(4, PaceWork/(2*max(K, 1)))&^3)
}

// requantRows sets out[i] to requant(acc[i]+bias[i]) with multiplier and
// shift i, or the only ones when mult has one element (per tensor).
func requantRows(out []int8, acc, bias, mult []int32, shift []int8, outOffset, lo, hi int32) {
	q := [3]int32{outOffset, lo, hi}
	i := requantVec(out, acc, bias, mult, shift, &q)
	acc, bias = acc[:len(out)], bias[:len(out)]
	for ; i < len(out); i++ {
		m, sh := mult[0], shift[0]
		if len(mult) > 1 {
			m, sh = mult[i], shift[i]
		}
		out[i] = requant(acc[i]+bias[i], m, int(sh), outOffset, lo, hi)
	}
}

// widen sets dst[i] = src[i] + off.
func widen(dst []int16, src []int8, off int16) {
	dst = dst[:len(src)]
	for i := widenVec(dst, src, off); i < len(src); i++ {
		dst[i] = int16(src[i]) + off
	}
}

// im2col writes the receptive field of output pixel pix of batch b into p
// as x + inputOffset, zeros for taps outside the image.
func (k *conv) im2col(p []int16, in []int8, b, pix int) {
	oy, ox := pix/k.outW, pix%k.outW
	iy0, ix0 := oy*k.strideH-k.padH, ox*k.strideW-k.padW
	off := int16(k.inOffset)
	if k.fH == 1 && k.fW == 1 {
		// Pointwise: never padded (outSize/padding give pad 0 for 1x1).
		widen(p, in[((b*k.inH+iy0)*k.inW+ix0)*k.inD:][:k.fD], off)
		return
	}
	fx0, fx1 := tapRange(ix0, k.fW, k.dilW, k.inW)
	rowLen := k.fW * k.fD
	for fy := range k.fH {
		dst := p[fy*rowLen : (fy+1)*rowLen]
		iy := iy0 + fy*k.dilH
		if iy < 0 || iy >= k.inH || fx0 == fx1 {
			clear(dst)
			continue
		}
		clear(dst[:fx0*k.fD])
		clear(dst[fx1*k.fD:])
		row := (b*k.inH + iy) * k.inW
		if k.dilW == 1 {
			// Valid taps of a row are contiguous in the input.
			widen(dst[fx0*k.fD:], in[(row+ix0+fx0)*k.inD:][:(fx1-fx0)*k.fD], off)
			continue
		}
		for fx := fx0; fx < fx1; fx++ {
			widen(dst[fx*k.fD:], in[(row+ix0+fx*k.dilW)*k.inD:][:k.fD], off)
		}
	}
}

// runVec is run for depth multiplier 1 on the vector path: the valid tap
// window is computed once per pixel, then all channels are accumulated.
func (k *dwConv) runVec(in, out, filter []int8, biasv, acc []int32, s *scratch) {
	D := k.outD
	nb := D / 8
	for b := range k.batches {
		for oy := range k.outH {
			iy0 := oy*k.strideH - k.padH
			fy0, fy1 := tapRange(iy0, k.fH, k.dilH, k.inH)
			for ox := range k.outW {
				ix0 := ox*k.strideW - k.padW
				fx0, fx1 := tapRange(ix0, k.fW, k.dilW, k.inW)
				clear(acc)
				if ny, nx := fy1-fy0, fx1-fx0; ny > 0 && nx > 0 {
					base := ((b*k.inH+iy0+fy0*k.dilH)*k.inW + ix0 + fx0*k.dilW) * D
					xrow, xcol := k.dilH*k.inW*D, k.dilW*D
					x := in[base : base+(ny-1)*xrow+(nx-1)*xcol+D]
					frow, fcol := k.fW*D, D
					fbase := (fy0*k.fW + fx0) * D
					f := filter[fbase : fbase+(ny-1)*frow+(nx-1)*fcol+D]
					if nb > 0 {
						dwVec(x, xrow, xcol, ny, nx, f, frow, fcol, nb, k.inOffset, acc)
					}
					if t := 8 * nb; t < D {
						dwTaps(x[t:], xrow, xcol, ny, nx, f[t:], frow, fcol, D-t, k.inOffset, acc[t:])
					}
				}
				o := out[((b*k.outH+oy)*k.outW+ox)*D:][:D]
				requantRows(o, acc, biasv, k.mult, k.shift, k.outOffset, k.actMin, k.actMax)
				if s.tick(D * k.fH * k.fW) {
					return
				}
			}
		}
	}
}

// runVec is run on the vector path: the input row plus its offset as
// int16, then rowBlock units at a time.
func (k *fullyConnected) runVec(in, out, fext []int8, bias []byte, s *scratch) {
	kp := patchLen(k.depth)
	xs := s.i16[:kp]
	clear(xs[k.depth:])
	nb := min(rowBlock, k.units)
	acc, bb := s.i32[:nb], s.i32[nb:2*nb]
	rb := paceRows(k.depth)
	for b := range k.batches {
		widen(xs, in[b*k.depth:(b+1)*k.depth], int16(k.inOffset))
		for c0 := 0; c0 < k.units; c0 += rowBlock {
			n := min(rowBlock, k.units-c0)
			for r0 := 0; r0 < n; r0 += rb {
				r1 := min(r0+rb, n)
				dotRows(acc[r0:r1], nil, xs, nil, fext[(c0+r0)*k.depth:], k.depth)
				if s.tick((r1 - r0) * k.depth) {
					return
				}
			}
			if bias != nil {
				for i := range n {
					bb[i] = int32(binary.LittleEndian.Uint32(bias[4*(c0+i):]))
				}
			} else {
				clear(bb[:n])
			}
			m, sh := k.mult, k.shift
			if len(m) > 1 {
				m, sh = m[c0:], sh[c0:]
			}
			requantRows(out[b*k.units+c0:][:n], acc, bb, m, sh, k.outOffset, k.actMin, k.actMax)
		}
	}
}
