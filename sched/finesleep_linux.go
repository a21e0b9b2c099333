//go:build linux

package sched

import (
	"syscall"
	"time"
)

// fineSleep sleeps for d in the kernel's nanosleep, which wakes within the
// thread's timer slack (50 us by default). Go's own timers wait in
// epoll_wait, whose timeout is in whole milliseconds: a release due in
// 0.3 ms waited 1 ms, and periodic releases started 0-1 ms late (p50 570
// us, p99 1.09 ms measured). Only the last stretch before a release
// sleeps here (fineWindow), on a thread of its own for that while.
func fineSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for {
		var left syscall.Timespec
		if err := syscall.Nanosleep(&ts, &left); err != syscall.EINTR {
			return
		}
		ts = left
	}
}
