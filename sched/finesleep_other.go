//go:build !linux

package sched

import "time"

// fineSleep sleeps for d (see finesleep_linux.go); elsewhere Go's timer.
func fineSleep(d time.Duration) { time.Sleep(d) }
