package sched

import (
	"slices"
	"sync"
	"time"

	"github.com/tinycontainer/tinycontainer/runtime"
)

// Watchdog arms each activation's budget and measures how far past it
// runaway activations actually got, in CPU time. The stop itself happens
// inside the runtime at a checkpoint the guest reaches (see
// runtime.Budget), which costs the guest almost nothing, unlike a check at
// every loop header.
type Watchdog struct {
	mu        sync.Mutex
	running   map[*runtime.Budget]struct{}
	overshoot []time.Duration // ring of recent overruns: CPU time past the budget
	next      int
	overruns  uint64
}

const overshootRing = 1024

// NewWatchdog returns a watchdog.
func NewWatchdog() *Watchdog {
	return &Watchdog{running: map[*runtime.Budget]struct{}{}}
}

// Begin arms b for an activation of at most d of CPU time.
func (w *Watchdog) Begin(b *runtime.Budget, d time.Duration) {
	b.Arm(d)
	w.mu.Lock()
	w.running[b] = struct{}{}
	w.mu.Unlock()
}

// End records the end of the activation armed on b; overran says whether
// it was stopped for its budget.
func (w *Watchdog) End(b *runtime.Budget, overran bool) {
	b.End() // in case the task did not (it runs no guest code of a runtime)
	late := b.Overrun()
	w.mu.Lock()
	delete(w.running, b)
	if overran {
		w.overruns++
		if len(w.overshoot) < overshootRing {
			w.overshoot = append(w.overshoot, late)
		} else {
			w.overshoot[w.next] = late
			w.next = (w.next + 1) % overshootRing
		}
	}
	w.mu.Unlock()
}

// StopAll ends every running activation at its next checkpoint (shutdown).
func (w *Watchdog) StopAll() {
	w.mu.Lock()
	for b := range w.running {
		b.Stop()
	}
	w.mu.Unlock()
}

// Overshoot reports how many activations overran and, over the recent
// ones, the 50th and 99th percentile and the maximum of the CPU time they
// had used past their budget when they stopped.
func (w *Watchdog) Overshoot() (n uint64, p50, p99, worst time.Duration) {
	w.mu.Lock()
	s := slices.Clone(w.overshoot)
	n = w.overruns
	w.mu.Unlock()
	if len(s) == 0 {
		return n, 0, 0, 0
	}
	slices.Sort(s)
	return n, s[len(s)/2], s[(len(s)*99)/100], s[len(s)-1]
}
