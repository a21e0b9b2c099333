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
