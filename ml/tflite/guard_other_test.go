//go:build !linux

package tflite

import "testing"

// guarded returns n bytes (no guard page outside Linux).
func guarded(_ testing.TB, n int) []int8 { return make([]int8, n) }
