//go:build linux && amd64

#include "textflag.h"

// func jitCall(code uintptr, st *jitState)
//
// Calls generated code with R12 = st. The code may use every general
// register but RSP and RBP; the compiler reloads g (R14) and zeroes X15
// after a call to an ABI0 function, so their clobbering is harmless.
TEXT ·jitCall(SB), NOSPLIT, $0-16
	MOVQ code+0(FP), AX
	MOVQ st+8(FP), R12
	CALL AX
	RET
