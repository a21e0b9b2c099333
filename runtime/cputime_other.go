//go:build !linux

package runtime

import "time"

// ThreadCPU reports that thread CPU time is not available here: budgets
// then count the wall time an activation spent running (never the time
// it spent suspended).
func ThreadCPU() (time.Duration, bool) { return 0, false }
