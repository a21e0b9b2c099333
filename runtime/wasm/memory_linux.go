package wasm

import (
	"math"
	"syscall"
)

// mapMemory reserves n bytes of zeroed memory. MAP_NORESERVE: only the
// pages the guest touches are committed.
func mapMemory(n uint64) ([]byte, error) {
	if n == 0 || n > 1<<32 || n > math.MaxInt { // a 32-bit int holds less than 4 GiB
		return nil, syscall.EINVAL
	}
	return syscall.Mmap(-1, 0, int(n), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
}

// dropPages gives b's pages back to the kernel; they read as zero after.
func dropPages(b []byte) error { return syscall.Madvise(b, syscall.MADV_DONTNEED) }

func unmapMemory(b []byte) error { return syscall.Munmap(b) }
