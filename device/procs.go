package device

import (
	goruntime "runtime"
	"sync"
	"time"
)

// A compile is one long computation on one goroutine (wazero's compiler,
// the eBPF loader and translator: up to the install-time bounds, ~0.6 s
// of CPU here). On a process of n Ps it holds one of them, and Go lets a
// running goroutine keep its P for 10 ms before it preempts it: with the
// garbage collector's workers on the others (a compile allocates up to
// ~100 MB), the scheduler's timer and worker waited for a P, and
// containers with a 10 ms period missed releases. So while code compiles
// the process has one more P per compile in flight (at most
// maxSpareProcs more), and the operating system shares the cores among
// the threads at its finer grain (once a compile has run for 10 ms). Measured on 2 shared cores (`tinycontainer
// bench --only sched/adversarial_installs`, 6 runs each, load 9-17): the
// share of releases kept while installs ran was 6-15 points below the
// share kept without them (10 on average); with the spare P, 2 on average
// (-6 to 9: the machine's noise).

// maxSpareProcs bounds the Ps added for compiles in flight.
const maxSpareProcs = 4

// spareAfter is how long a compile runs before it gets its P: Go's
// preemption slice, below which it cannot keep others from a P any longer
// than any goroutine does. Short compiles (a typical module: ~1-2 ms) do
// not pay for the change of GOMAXPROCS, which stops the world twice.
const spareAfter = 10 * time.Millisecond

// spareProcs counts the Ps added for compiles in flight and the
// GOMAXPROCS they started from (GOMAXPROCS is the process's, so this is
// too).
var spareProcs struct {
	mu    sync.Mutex
	added int
	base  int
}

// withSpareProc runs f (a compile); if it is still running after
// spareAfter, the process gets one more P until it ends. When the last
// added P goes, GOMAXPROCS is set back to the value it had (it is then
// fixed at that value: the runtime no longer follows changes of the CPU
// quota by itself).
func withSpareProc(f func()) {
	var mu sync.Mutex
	added, over := false, false
	t := time.AfterFunc(spareAfter, func() {
		mu.Lock()
		defer mu.Unlock()
		if !over {
			addProc()
			added = true
		}
	})
	defer func() {
		t.Stop()
		mu.Lock()
		defer mu.Unlock()
		over = true
		if added {
			removeProc()
		}
	}()
	f()
}

func addProc() {
	s := &spareProcs
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.added == 0 {
		s.base = goruntime.GOMAXPROCS(0)
	}
	s.added++
	if s.added <= maxSpareProcs {
		goruntime.GOMAXPROCS(s.base + s.added)
	}
}

func removeProc() {
	s := &spareProcs
	s.mu.Lock()
	defer s.mu.Unlock()
	s.added--
	if s.added < maxSpareProcs {
		goruntime.GOMAXPROCS(s.base + s.added)
	}
}
