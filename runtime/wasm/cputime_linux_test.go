package wasm

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time the process has used (all threads, GC
// included): on a machine shared with other work it measures the cost of
// an operation better than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
