//go:build amd64 && !purego

package tflite

import "golang.org/x/sys/cpu"

// useSIMD selects the AVX2 kernels when a kernel is prepared (HasAVX2 also
// requires the OS to save the YMM registers). Tests turn it off to run the
// pure-Go kernels.
var useSIMD = cpu.X86.HasAVX2

//go:noescape
func dot1x4AVX2(p *int16, f *int8, fstride, kb, rows int, acc *int32)

//go:noescape
func dot2x4AVX2(p0, p1 *int16, f *int8, fstride, kb, rows int, acc0, acc1 *int32)

//go:noescape
func dwAVX2(x *int8, xrow, xcol, ny, nx int, f *int8, frow, fcol, nb int, off int32, acc *int32)

// dotRowsVec computes the leading rows of dotRows with AVX2 and returns how
// many it did (a multiple of 4). The assembly reads whole 16-element
// blocks: kp = len(p0) elements of each patch, and kp bytes from each row
// start r*K, so row r is only given to it when r*K+kp <= len(f). Past K
// the patches hold zeros, so the extra filter bytes read (the next row, or
// other model bytes) add nothing.
func dotRowsVec(acc0, acc1 []int32, p0, p1 []int16, f []int8, K int) int {
	kp := len(p0)
	rows := len(acc0)
	if K <= 0 || kp < K || kp%16 != 0 || (p1 != nil && (len(p1) != kp || len(acc1) < rows)) {
		panic("tflite: dotRowsVec called outside its bounds")
	}
	if len(f) < kp {
		return 0
	}
	n := min(rows, (len(f)-kp)/K+1) &^ 3
	if n == 0 {
		return 0
	}
	if p1 == nil {
		dot1x4AVX2(&p0[0], &f[0], K, kp/16, n, &acc0[0])
	} else {
		dot2x4AVX2(&p0[0], &p1[0], &f[0], K, kp/16, n, &acc0[0], &acc1[0])
	}
	return n
}

// dwVec accumulates the depthwise taps of the first 8*nb channels into
// acc. x and f must end exactly after the last tap's channels, which is
// checked here so the assembly only reads inside them.
func dwVec(x []int8, xrow, xcol, ny, nx int, f []int8, frow, fcol, nb int, off int32, acc []int32) {
	if ny < 1 || nx < 1 || nb < 1 || xrow < 0 || xcol < 0 || frow < 0 || fcol < 0 ||
		(ny-1)*xrow+(nx-1)*xcol+8*nb > len(x) || (ny-1)*frow+(nx-1)*fcol+8*nb > len(f) || 8*nb > len(acc) {
		panic("tflite: dwVec called outside its bounds")
	}
	dwAVX2(&x[0], xrow, xcol, ny, nx, &f[0], frow, fcol, nb, off, &acc[0])
}

//go:noescape
func requantAVX2(out *int8, acc, bias, mult *int32, shift *int8, n8, mstep int, q *[3]int32)

//go:noescape
func widenAVX2(dst *int16, src *int8, n16 int, off int16)

// requantVec requantizes the leading multiple of 8 of out (see
// requantRows) and returns how many it did. mult and shift have one
// element (per tensor) or one per output.
func requantVec(out []int8, acc, bias, mult []int32, shift []int8, q *[3]int32) int {
	n := len(out) &^ 7
	mstep := 1
	if len(mult) == 1 && len(shift) == 1 {
		mstep = 0
	} else if len(mult) < n || len(shift) < n {
		panic("tflite: requantVec called outside its bounds")
	}
	if len(acc) < n || len(bias) < n {
		panic("tflite: requantVec called outside its bounds")
	}
	if n == 0 {
		return 0
	}
	requantAVX2(&out[0], &acc[0], &bias[0], &mult[0], &shift[0], n/8, mstep, q)
	return n
}

// widenVec does the leading multiple of 16 of widen and returns how many.
func widenVec(dst []int16, src []int8, off int16) int {
	n := len(src) &^ 15
	if len(dst) < n {
		panic("tflite: widenVec called outside its bounds")
	}
	if n == 0 {
		return 0
	}
	widenAVX2(&dst[0], &src[0], n/16, off)
	return n
}

// addParams is the number of 8-lane rows addAVX2 reads: input offsets
// (2), multiplier/right shift/mask/half for input 1, input 2 and the
// output (12), output offset, minimum, maximum, the rounding constant 2^30
// as 4 qwords, and the left shift.
const addParams = 19

//go:noescape
func addAVX2(out, x1, x2 *int8, n8 int, p *[addParams][8]int32)

// addVec does the leading multiple of 8 of an elementwise ADD (k's right
// shifts are validated >= 0 at prepare) and returns how many it did.
func addVec(k *add, out, x1, x2 []int8) int {
	n := len(out) &^ 7
	if len(x1) < n || len(x2) < n {
		panic("tflite: addVec called outside its bounds")
	}
	if n == 0 {
		return 0
	}
	var p [addParams][8]int32
	set := func(row int, v int32) {
		for i := range p[row] {
			p[row][i] = v
		}
	}
	set(0, k.off1)
	set(1, k.off2)
	for i, q := range [3]struct {
		m     int32
		shift int
	}{{k.mult1, k.shift1}, {k.mult2, k.shift2}, {k.multOut, k.shiftOut}} {
		mask := int32(1)<<-q.shift - 1
		set(2+4*i, q.m)
		set(3+4*i, int32(-q.shift))
		set(4+4*i, mask)
		set(5+4*i, mask>>1)
	}
	set(14, k.outOffset)
	set(15, k.actMin)
	set(16, k.actMax)
	for i := 0; i < 8; i += 2 {
		p[17][i] = 1 << 30 // little-endian qwords of 2^30
	}
	set(18, int32(k.leftShift))
	addAVX2(&out[0], &x1[0], &x2[0], n/8, &p)
	return n
}
