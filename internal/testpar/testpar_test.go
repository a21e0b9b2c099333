package testpar

import (
	"errors"
	"sync/atomic"
	"testing"
)

// Every call is made once, by the worker the spread names.
func TestSpreadCallsEachOnce(t *testing.T) {
	const n, workers = 1001, 7
	var calls [n]atomic.Int32
	Spread(t, n, workers, func(i int) error { calls[i].Add(1); return nil })
	for i := range calls {
		if c := calls[i].Load(); c != 1 {
			t.Fatalf("call %d made %d times", i, c)
		}
	}
}

// An error fails the test, and stops its worker only.
func TestSpreadFailsOnError(t *testing.T) {
	const n, workers = 100, 4
	var made atomic.Int32
	ft := &fakeT{}
	func() {
		defer func() { _ = recover() }() // fakeT.Fatal panics to stop here, as Goexit would
		Spread(ft, n, workers, func(i int) error {
			made.Add(1)
			if i == 1 {
				return errors.New("boom")
			}
			return nil
		})
	}()
	if !ft.failed {
		t.Fatal("an error did not fail the test")
	}
	// Worker 1 stopped at its first call; the others made all of theirs.
	if got, want := made.Load(), int32(n-n/workers+1); got != want {
		t.Fatalf("%d calls made, want %d", got, want)
	}
}

type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatal(args ...any) {
	f.failed = true
	panic("fatal")
}
