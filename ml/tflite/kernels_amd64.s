//go:build amd64 && !purego

#include "textflag.h"

// The Go wrappers in kernels_amd64.go establish every bound these
// functions rely on; see their comments.

// func dot1x4AVX2(p *int16, f *int8, fstride, kb, rows int, acc *int32)
//
// acc[r] = sum over i < 16*kb of p[i] * f[r*fstride+i], for r < rows
// (rows a multiple of 4): four filter rows share each patch load.
TEXT ·dot1x4AVX2(SB), NOSPLIT, $0-48
	MOVQ p+0(FP), SI
	MOVQ f+8(FP), DX
	MOVQ fstride+16(FP), R8
	MOVQ kb+24(FP), R9
	MOVQ rows+32(FP), R10
	MOVQ acc+40(FP), R11
	LEAQ (R8)(R8*2), R13
	SHRQ $2, R10
	JZ   done1

rows1:
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	MOVQ  DX, BX
	MOVQ  SI, CX
	MOVQ  R9, R14
	TESTQ R14, R14
	JZ    red1

k1:
	VMOVDQU   (CX), Y8
	VPMOVSXBW (BX), Y9
	VPMOVSXBW (BX)(R8*1), Y10
	VPMOVSXBW (BX)(R8*2), Y11
	VPMOVSXBW (BX)(R13*1), Y12
	VPMADDWD  Y8, Y9, Y9
	VPMADDWD  Y8, Y10, Y10
	VPMADDWD  Y8, Y11, Y11
	VPMADDWD  Y8, Y12, Y12
	VPADDD    Y9, Y0, Y0
	VPADDD    Y10, Y1, Y1
	VPADDD    Y11, Y2, Y2
	VPADDD    Y12, Y3, Y3
	ADDQ      $16, BX
	ADDQ      $32, CX
	DECQ      R14
	JNZ       k1

red1:
	// Horizontal sums of Y0..Y3 into the four lanes of X0.
	VPHADDD      Y1, Y0, Y0
	VPHADDD      Y3, Y2, Y2
	VPHADDD      Y2, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDD       X1, X0, X0
	VMOVDQU      X0, (R11)
	ADDQ         $16, R11
	LEAQ         (DX)(R8*4), DX
	DECQ         R10
	JNZ          rows1

done1:
	VZEROUPPER
	RET

// func dot2x4AVX2(p0, p1 *int16, f *int8, fstride, kb, rows int, acc0, acc1 *int32)
//
// dot1x4AVX2 for two patches at once: each filter load serves both.
TEXT ·dot2x4AVX2(SB), NOSPLIT, $0-64
	MOVQ p0+0(FP), SI
	MOVQ p1+8(FP), DI
	MOVQ f+16(FP), DX
	MOVQ fstride+24(FP), R8
	MOVQ kb+32(FP), R9
	MOVQ rows+40(FP), R10
	MOVQ acc0+48(FP), R11
	MOVQ acc1+56(FP), R12
	LEAQ (R8)(R8*2), R13
	SHRQ $2, R10
	JZ   done2

rows2:
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	VPXOR Y4, Y4, Y4
	VPXOR Y5, Y5, Y5
	VPXOR Y6, Y6, Y6
	VPXOR Y7, Y7, Y7
	MOVQ  DX, BX
	XORQ  CX, CX
	MOVQ  R9, R14
	TESTQ R14, R14
	JZ    red2

k2:
	VMOVDQU   (SI)(CX*1), Y8
	VMOVDQU   (DI)(CX*1), Y9
	VPMOVSXBW (BX), Y10
	VPMOVSXBW (BX)(R8*1), Y11
	VPMADDWD  Y8, Y10, Y12
	VPMADDWD  Y9, Y10, Y13
	VPADDD    Y12, Y0, Y0
	VPADDD    Y13, Y4, Y4
	VPMADDWD  Y8, Y11, Y14
	VPMADDWD  Y9, Y11, Y15
	VPADDD    Y14, Y1, Y1
	VPADDD    Y15, Y5, Y5
	VPMOVSXBW (BX)(R8*2), Y10
	VPMOVSXBW (BX)(R13*1), Y11
	VPMADDWD  Y8, Y10, Y12
	VPMADDWD  Y9, Y10, Y13
	VPADDD    Y12, Y2, Y2
	VPADDD    Y13, Y6, Y6
	VPMADDWD  Y8, Y11, Y14
	VPMADDWD  Y9, Y11, Y15
	VPADDD    Y14, Y3, Y3
	VPADDD    Y15, Y7, Y7
	ADDQ      $16, BX
	ADDQ      $32, CX
	DECQ      R14
	JNZ       k2

red2:
	VPHADDD      Y1, Y0, Y0
	VPHADDD      Y3, Y2, Y2
	VPHADDD      Y2, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDD       X1, X0, X0
	VMOVDQU      X0, (R11)
	VPHADDD      Y5, Y4, Y4
	VPHADDD      Y7, Y6, Y6
	VPHADDD      Y6, Y4, Y4
	VEXTRACTI128 $1, Y4, X5
	VPADDD       X5, X4, X4
	VMOVDQU      X4, (R12)
	ADDQ         $16, R11
	ADDQ         $16, R12
	LEAQ         (DX)(R8*4), DX
	DECQ         R10
	JNZ          rows2

done2:
	VZEROUPPER
	RET

// func dwAVX2(x *int8, xrow, xcol, ny, nx int, f *int8, frow, fcol, nb int, off int32, acc *int32)
//
// For each block of 8 channels c < 8*nb: acc[c] += sum over the ny x nx
// taps (x advancing by xrow/xcol bytes, f by frow/fcol) of
// f[c] * (x[c] + off), in int32 lanes (products of 9-bit by 8-bit values
// are exact in VPMULLD).
TEXT ·dwAVX2(SB), NOSPLIT, $0-88
	MOVQ         x+0(FP), SI
	MOVQ         xrow+8(FP), R8
	MOVQ         xcol+16(FP), R9
	MOVQ         f+40(FP), DI
	MOVQ         frow+48(FP), R10
	MOVQ         fcol+56(FP), R11
	MOVQ         nb+64(FP), R12
	MOVL         off+72(FP), AX
	VMOVD        AX, X15
	VPBROADCASTD X15, Y15
	MOVQ         acc+80(FP), DX
	CMPQ         ny+24(FP), $0
	JLE          dwdone
	CMPQ         nx+32(FP), $0
	JLE          dwdone
	TESTQ        R12, R12
	JLE          dwdone

blk:
	VMOVDQU (DX), Y0
	MOVQ    SI, AX
	MOVQ    DI, BX
	MOVQ    ny+24(FP), R13

tapRow:
	MOVQ AX, CX
	MOVQ BX, R14
	MOVQ nx+32(FP), R15

tap:
	VPMOVSXBD (CX), Y1
	VPMOVSXBD (R14), Y2
	VPADDD    Y15, Y1, Y1
	VPMULLD   Y2, Y1, Y1
	VPADDD    Y1, Y0, Y0
	ADDQ      R9, CX
	ADDQ      R11, R14
	DECQ      R15
	JNZ       tap
	ADDQ      R8, AX
	ADDQ      R10, BX
	DECQ      R13
	JNZ       tapRow

	VMOVDQU Y0, (DX)
	ADDQ    $32, DX
	ADDQ    $8, SI
	ADDQ    $8, DI
	DECQ    R12
	JNZ     blk

dwdone:
	VZEROUPPER
	RET

// REQUANT turns the int32 lanes of Y0 (accumulator plus bias) into the
// int8 lanes at (DI), like requant: TFLite's double-rounding
// MultiplyByQuantizedMultiplier, output offset, activation clamp.
// Parameters: Y1 multipliers, Y2 multipliers >> 32, Y3 left shifts,
// Y4 right shifts, Y5 (1 << right) - 1, Y9 its half; constants Y10
// 2^30 (qwords), Y13 max, Y14 min, Y15 output offset. Temporaries Y6-Y8.
//
// SaturatingRoundingDoublingHighMul: multipliers are never MinInt32, so
// the high half never saturates and is floor((x*m + 2^30) / 2^31), the
// low 32 bits of which are bits 31..62 of the sum: a logical shift works.
// RoundingDivideByPOT: (h >> right) + (rem > half + (h < 0)).
#define REQUANT \
	VPSLLVD   Y3, Y0, Y0 \
	VPMULDQ   Y1, Y0, Y6 \
	VPADDQ    Y10, Y6, Y6 \
	VPSRLQ    $31, Y6, Y6 \
	VPSRLQ    $32, Y0, Y7 \
	VPMULDQ   Y2, Y7, Y7 \
	VPADDQ    Y10, Y7, Y7 \
	VPSLLQ    $1, Y7, Y7 \
	VPBLENDD  $0xaa, Y7, Y6, Y6 \
	VPAND     Y5, Y6, Y7 \
	VPSRAD    $31, Y6, Y8 \
	VPSUBD    Y8, Y9, Y8 \
	VPCMPGTD  Y8, Y7, Y7 \
	VPSRAVD   Y4, Y6, Y6 \
	VPSUBD    Y7, Y6, Y6 \
	VPADDD    Y15, Y6, Y6 \
	VPMAXSD   Y14, Y6, Y6 \
	VPMINSD   Y13, Y6, Y6 \
	VEXTRACTI128 $1, Y6, X7 \
	VPACKSSDW X7, X6, X6 \
	VPACKSSWB X6, X6, X6 \
	VMOVQ     X6, (DI)

// SHIFTS derives Y3-Y5 and Y9 from the shift exponents in Y4 (Y11 ones,
// Y12 zero): left = max(s, 0), right = left - s.
#define SHIFTS \
	VPMAXSD Y12, Y4, Y3 \
	VPSUBD  Y4, Y3, Y4 \
	VPSLLVD Y4, Y11, Y5 \
	VPSUBD  Y11, Y5, Y5 \
	VPSRLD  $1, Y5, Y9

// func requantAVX2(out *int8, acc, bias, mult *int32, shift *int8, n8, mstep int, q *[3]int32)
//
// out[i] = requant(acc[i]+bias[i], mult[i*mstep], shift[i*mstep], q...)
// for i < 8*n8; mstep is 1 (per channel) or 0 (one multiplier);
// q is the output offset, minimum and maximum.
TEXT ·requantAVX2(SB), NOSPLIT, $0-64
	MOVQ         out+0(FP), DI
	MOVQ         acc+8(FP), SI
	MOVQ         bias+16(FP), DX
	MOVQ         mult+24(FP), R8
	MOVQ         shift+32(FP), R9
	MOVQ         n8+40(FP), CX
	MOVQ         q+56(FP), R10
	VPBROADCASTD (R10), Y15
	VPBROADCASTD 4(R10), Y14
	VPBROADCASTD 8(R10), Y13
	VPXOR        Y12, Y12, Y12
	MOVL         $1, AX
	VMOVD        AX, X11
	VPBROADCASTD X11, Y11
	MOVQ         $0x40000000, AX
	VMOVQ        AX, X10
	VPBROADCASTQ X10, Y10
	TESTQ        CX, CX
	JLE          rqdone
	CMPQ         mstep+48(FP), $0
	JNE          rqchan

	// One multiplier for all lanes.
	VPBROADCASTD (R8), Y1
	VMOVDQA      Y1, Y2
	MOVBQSX      (R9), AX
	VMOVD        AX, X4
	VPBROADCASTD X4, Y4
	SHIFTS

rqtensor:
	VMOVDQU (SI), Y0
	VPADDD  (DX), Y0, Y0
	REQUANT
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $8, DI
	DECQ    CX
	JNZ     rqtensor
	JMP     rqdone

rqchan:
	VMOVDQU   (R8), Y1
	VPSRLQ    $32, Y1, Y2
	VPMOVSXBD (R9), Y4
	SHIFTS
	VMOVDQU   (SI), Y0
	VPADDD    (DX), Y0, Y0
	REQUANT
	ADDQ      $32, R8
	ADDQ      $8, R9
	ADDQ      $32, SI
	ADDQ      $32, DX
	ADDQ      $8, DI
	DECQ      CX
	JNZ       rqchan

rqdone:
	VZEROUPPER
	RET

// func widenAVX2(dst *int16, src *int8, n16 int, off int16)
//
// dst[i] = src[i] + off for i < 16*n16.
TEXT ·widenAVX2(SB), NOSPLIT, $0-26
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         n16+16(FP), CX
	MOVWQSX      off+24(FP), AX
	VMOVD        AX, X1
	VPBROADCASTW X1, Y1
	TESTQ        CX, CX
	JLE          wdone

wloop:
	VPMOVSXBW (SI), Y0
	VPADDW    Y1, Y0, Y0
	VMOVDQU   Y0, (DI)
	ADDQ      $16, SI
	ADDQ      $32, DI
	DECQ      CX
	JNZ       wloop

wdone:
	VZEROUPPER
	RET

// MBQ is MultiplyByQuantizedMultiplier for shifts <= 0 on the lanes of x
// (result in x), with the multiplier, right shift, (1 << right) - 1 and
// its half read from memory (8 equal lanes each). Y10 holds 2^30 qwords;
// Y6-Y8 are temporaries. The rounding test rem > half + (h < 0) is
// written rem + (h >> 31) > half.
#define MBQ(x, m, rt, mask, half) \
	VPMULDQ  m, x, Y6 \
	VPADDQ   Y10, Y6, Y6 \
	VPSRLQ   $31, Y6, Y6 \
	VPSRLQ   $32, x, Y7 \
	VPMULDQ  m, Y7, Y7 \
	VPADDQ   Y10, Y7, Y7 \
	VPSLLQ   $1, Y7, Y7 \
	VPBLENDD $0xaa, Y7, Y6, Y6 \
	VPAND    mask, Y6, Y7 \
	VPSRAD   $31, Y6, Y8 \
	VPADDD   Y8, Y7, Y8 \
	VPCMPGTD half, Y8, Y8 \
	VPSRAVD  rt, Y6, Y6 \
	VPSUBD   Y8, Y6, x

// func addAVX2(out, x1, x2 *int8, n8 int, p *[addParams][8]int32)
//
// Elementwise int8 ADD of 8*n8 elements (reference_integer_ops::Add);
// p's rows are listed with addParams in kernels_amd64.go.
TEXT ·addAVX2(SB), NOSPLIT, $0-40
	MOVQ    out+0(FP), DI
	MOVQ    x1+8(FP), SI
	MOVQ    x2+16(FP), DX
	MOVQ    n8+24(FP), CX
	MOVQ    p+32(FP), R8
	VMOVDQU 544(R8), Y10
	TESTQ   CX, CX
	JLE     adddone

addloop:
	VPMOVSXBD (SI), Y0
	VPADDD    0(R8), Y0, Y0
	VPSLLVD   576(R8), Y0, Y0
	MBQ(Y0, 64(R8), 96(R8), 128(R8), 160(R8))
	VPMOVSXBD (DX), Y1
	VPADDD    32(R8), Y1, Y1
	VPSLLVD   576(R8), Y1, Y1
	MBQ(Y1, 192(R8), 224(R8), 256(R8), 288(R8))
	VPADDD    Y1, Y0, Y0
	MBQ(Y0, 320(R8), 352(R8), 384(R8), 416(R8))
	VPADDD    448(R8), Y0, Y0
	VPMAXSD   480(R8), Y0, Y0
	VPMINSD   512(R8), Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPACKSSDW X1, X0, X0
	VPACKSSWB X0, X0, X0
	VMOVQ     X0, (DI)
	ADDQ      $8, SI
	ADDQ      $8, DX
	ADDQ      $8, DI
	DECQ      CX
	JNZ       addloop

adddone:
	VZEROUPPER
	RET
