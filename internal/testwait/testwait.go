// Package testwait is how tests wait for something that must happen: they
// poll a condition, or wait for a call or a channel, and fail only when a
// hang guard of minutes passes first. How long the wait took is never a
// verdict: the suite runs on busy shared machines (docs/notes/testing.md).
package testwait

import (
	"os"
	"testing"
	"time"
)

// GuardEnv names the environment variable that replaces the default guard
// (a Go duration), for a slower machine or an emulator.
const GuardEnv = "TC_TEST_GUARD"

const defaultGuard = 2 * time.Minute

// Guard is the longest a test waits for something that must happen: so far
// beyond any plausible load that only a hang reaches it.
func Guard() time.Duration {
	if d, err := time.ParseDuration(os.Getenv(GuardEnv)); err == nil && d > 0 {
		return d
	}
	return defaultGuard
}

// For polls cond until it holds; t fails when the guard passes first.
func For(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Guard())
	for pause := 100 * time.Microsecond; !cond(); pause = min(2*pause, 20*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not the case after %v (a hang guard)", what, Guard())
		}
		time.Sleep(pause)
	}
}

// Call runs fn in a goroutine and waits for it to return; t fails when the
// guard passes first (fn is then left running).
func Call(t testing.TB, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	Recv(t, what, done)
}

// Recv waits for a value from ch (or its closing); t fails when the guard
// passes first.
func Recv[T any](t testing.TB, what string, ch <-chan T) T {
	t.Helper()
	timer := time.NewTimer(Guard())
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("%s: did not happen within %v (a hang guard)", what, Guard())
		panic("unreachable")
	}
}
