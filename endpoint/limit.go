package endpoint

import "time"

// limiter admits at most n calls in any window of length w (a rate of n
// per w, bursts of up to n: a bucket of n). It counts calls in a ring of
// slots of 2^shift ns, at least 1/(ringSize-1) of the window each, and
// admits a call while the slots that a window ending now can touch hold
// fewer than n: so no window of length w ever holds more than n admitted
// calls, and a steady caller gets at least n·k/(k+1) per w (k slots per
// window: 30 for a second). Its hot path is a shift, two compares and two
// increments, without allocation. It is used by one activation at a
// time, like the session that holds it.
type limiter struct {
	n     uint32
	shift uint8
	k     int64 // slots a window spans, at most ringSize-1
	cur   int64 // slot of the newest call (slot = time >> shift)
	sum   uint32
	ring  [ringSize]uint32
}

const ringSize = 32

func newLimiter(n int, w time.Duration) *limiter {
	l := &limiter{n: uint32(n)}
	for l.k = (int64(w) + 1<<l.shift - 1) >> l.shift; l.k > ringSize-1; l.k = (int64(w) + 1<<l.shift - 1) >> l.shift {
		l.shift++
	}
	return l
}

// allow admits a call at time now (ns, monotonic) and counts it.
func (l *limiter) allow(now int64) bool {
	if !l.ok(now) {
		return false
	}
	l.take()
	return true
}

// ok reports whether a call at now would be admitted, without counting
// it (take does). now never goes backwards.
func (l *limiter) ok(now int64) bool {
	if s := now >> l.shift; s != l.cur {
		l.advance(s)
	}
	return l.sum < l.n
}

func (l *limiter) take() {
	l.sum++
	l.ring[l.cur&(ringSize-1)]++
}

// advance moves the newest slot to s, forgetting the slots no window
// ending at s can touch (those before s-k).
func (l *limiter) advance(s int64) {
	if s < l.cur { // a clock that went backwards: keep the newest slot
		return
	}
	if s-l.cur > l.k {
		l.ring, l.sum = [ringSize]uint32{}, 0
	} else {
		for i := l.cur - l.k; i < s-l.k; i++ {
			p := i & (ringSize - 1)
			l.sum -= l.ring[p]
			l.ring[p] = 0
		}
	}
	l.cur = s
}
