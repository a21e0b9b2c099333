package endpoint

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestLimiterNeverMoreThanNInAnyWindow drives limiters with random call
// times on a fake clock and checks, over every admitted call, that the n
// calls before it lie a whole window earlier: at most n calls in any
// window. A steady caller gets at least n·k/(k+1) per window.
func TestLimiterNeverMoreThanNInAnyWindow(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		n int
		w time.Duration
	}{{1, time.Second}, {5, time.Second}, {100, time.Second}, {1000, time.Second}, {3, time.Millisecond}, {10, time.Minute}, {7, time.Hour}} {
		l := newLimiter(c.n, c.w)
		if l.k < 1 || l.k > ringSize-1 {
			t.Fatalf("%d/%s: %d slots per window", c.n, c.w, l.k)
		}
		var admitted []int64
		now := int64(1e12) + rng.Int64N(int64(c.w))
		for range 200_000 {
			// Bursts and gaps: mostly close calls, sometimes long pauses.
			switch rng.IntN(100) {
			case 0:
				now += rng.Int64N(3 * int64(c.w))
			default:
				now += rng.Int64N(int64(c.w)/int64(c.n)/4 + 1)
			}
			if l.allow(now) {
				admitted = append(admitted, now)
				if i := len(admitted) - 1 - c.n; i >= 0 && now-admitted[i] < int64(c.w) {
					t.Fatalf("%d/%s: %d calls within %s", c.n, c.w, c.n+1, time.Duration(now-admitted[i]))
				}
			}
		}
		// A steady caller, one attempt every w/(64n): its share.
		l = newLimiter(c.n, c.w)
		step := int64(c.w) / int64(64*c.n)
		start, got := int64(5e12), 0
		windows := int64(20)
		for now := start; now < start+windows*int64(c.w); now += max(step, 1) {
			if l.allow(now) {
				got++
			}
		}
		if min := int64(c.n) * windows * l.k / (l.k + 1); int64(got) < min-int64(c.n) {
			t.Errorf("%d/%s: a steady caller got %d calls in %d windows, want at least %d", c.n, c.w, got, windows, min)
		}
	}
}

func TestLimiterClockBackwards(t *testing.T) {
	l := newLimiter(2, time.Second)
	if !l.allow(5e9) || !l.allow(5e9) || l.allow(4e9) {
		t.Fatal("a clock going backwards must not refill the limiter")
	}
	if !l.allow(7e9) {
		t.Fatal("no refill after the window")
	}
}

func BenchmarkLimiter(b *testing.B) {
	l := newLimiter(1<<30, time.Second)
	now := int64(0)
	for b.Loop() {
		now += 10
		l.allow(now)
	}
}
