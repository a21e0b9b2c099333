//go:build linux && arm64

#include "textflag.h"

// func jitCall(code uintptr, st *jitState)
//
// Calls generated code with R11 = st. The code uses R0-R17 only; the
// frame makes the assembler save the link register, which the code's
// final RET needs.
TEXT ·jitCall(SB), NOSPLIT, $16-16
	MOVD	code+0(FP), R12
	MOVD	st+8(FP), R11
	CALL	(R12)
	RET

// func ctrEL0() uint64
TEXT ·ctrEL0(SB), NOSPLIT, $0-8
	WORD	$0xd53b0020 // MRS X0, CTR_EL0
	MOVD	R0, ret+0(FP)
	RET

// func dcCVAU(addr uintptr)
TEXT ·dcCVAU(SB), NOSPLIT, $0-8
	MOVD	addr+0(FP), R0
	WORD	$0xd50b7b20 // DC CVAU, X0
	RET

// func icIVAU(addr uintptr)
TEXT ·icIVAU(SB), NOSPLIT, $0-8
	MOVD	addr+0(FP), R0
	WORD	$0xd50b7520 // IC IVAU, X0
	RET

// func dsbISH()
TEXT ·dsbISH(SB), NOSPLIT, $0-0
	WORD	$0xd5033b9f // DSB ISH
	RET

// func isb()
TEXT ·isb(SB), NOSPLIT, $0-0
	WORD	$0xd5033fdf // ISB
	RET
