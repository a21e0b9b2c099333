package endpoint

import "time"

// limiter is a GCRA token bucket: n calls per period, bursts up to n. It is
// used by one activation at a time, like the session that holds it.
type limiter struct {
	interval int64 // ns between calls at the sustained rate
	slack    int64 // how far ahead of now the schedule may run (the burst)
	tat      int64 // theoretical arrival time of the next call
}

func newLimiter(n int, per time.Duration) *limiter {
	iv := int64(per) / int64(n)
	if iv < 1 {
		iv = 1
	}
	return &limiter{interval: iv, slack: iv * int64(n-1)}
}

func (l *limiter) allow(now int64) bool {
	t := max(l.tat, now)
	if t-now > l.slack {
		return false
	}
	l.tat = t + l.interval
	return true
}
