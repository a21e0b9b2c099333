//go:build !amd64 || purego

package tflite

// useSIMD is false without assembly kernels: the pure-Go kernels run.
var useSIMD = false

// dotRowsVec does no rows: dotRows finishes them in Go.
func dotRowsVec(_, _ []int32, _, _ []int16, _ []int8, _ int) int { return 0 }

// dwVec is dwTaps over 8*nb channels.
func dwVec(x []int8, xrow, xcol, ny, nx int, f []int8, frow, fcol, nb int, off int32, acc []int32) {
	dwTaps(x, xrow, xcol, ny, nx, f, frow, fcol, 8*nb, off, acc)
}

// requantVec does none: requantRows does them in Go.
func requantVec(_ []int8, _, _, _ []int32, _ []int8, _ *[3]int32) int { return 0 }

// widenVec does none: widen does them in Go.
func widenVec(_ []int16, _ []int8, _ int16) int { return 0 }

// addVec does none: add.run does them in Go.
func addVec(_ *add, _, _, _ []int8) int { return 0 }
