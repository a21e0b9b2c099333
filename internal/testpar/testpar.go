// Package testpar is how tests spread calls over goroutines to make them
// race: each worker takes every workers-th call, and the test fails on the
// first error once all have stopped.
package testpar

import (
	"sync"
	"testing"
)

// Spread calls f(i) for i in [0, n) on workers goroutines, worker w taking
// i = w, w+workers, ...; a worker stops at its first error. Once all have
// stopped, t fails with the first error reported.
func Spread(t testing.TB, n, workers int, f func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
