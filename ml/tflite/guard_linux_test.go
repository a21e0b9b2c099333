//go:build linux

package tflite

import (
	"syscall"
	"testing"
)

// guarded returns n bytes that end right before an inaccessible page, so a
// kernel reading even one byte past them faults instead of passing.
func guarded(t testing.TB, n int) []int8 {
	t.Helper()
	page := syscall.Getpagesize()
	size := (n + page - 1) / page * page
	mem, err := syscall.Mmap(-1, 0, size+page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mprotect(mem[size:], syscall.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Munmap(mem) })
	return int8s(mem[size-n : size])
}
