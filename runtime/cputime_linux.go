package runtime

import (
	"syscall"
	"time"
	"unsafe"
)

// ThreadCPU is the CPU time the calling OS thread has used, in
// nanoseconds (clock_gettime(CLOCK_THREAD_CPUTIME_ID): getrusage's
// microseconds are too coarse for one short activation). The reading
// means something only while the goroutine stays on one thread
// (runtime.LockOSThread). It is a system call, ~0.3-2 µs depending on
// the machine, so the hot paths avoid it (see Budget).
func ThreadCPU() (time.Duration, bool) {
	const clockThreadCPUTime = 3
	var ts syscall.Timespec
	if _, _, e := syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}
