package device

import (
	goruntime "runtime"
	"sync"
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
// the threads at its finer grain. Measured on 2 shared cores (`tinycontainer
// bench --only sched/adversarial_installs`, 6 runs each, load 9-17): the
// share of releases kept while installs ran was 6-15 points below the
// share kept without them (10 on average); with the spare P, 2 on average
// (-6 to 9: the machine's noise).

// maxSpareProcs bounds the Ps added for compiles in flight.
const maxSpareProcs = 4

// spareProcs counts the compiles in flight and the GOMAXPROCS they
// started from (GOMAXPROCS is the process's, so this is too).
var spareProcs struct {
	mu       sync.Mutex
	compiles int
	base     int
}

// withSpareProc runs f (a compile) with one more P for the process. When
// the last compile in flight ends, GOMAXPROCS is set back to the value it
// had (it is then fixed at that value: the runtime no longer follows
// changes of the CPU quota by itself).
func withSpareProc(f func()) {
	s := &spareProcs
	s.mu.Lock()
	if s.compiles == 0 {
		s.base = goruntime.GOMAXPROCS(0)
	}
	s.compiles++
	if s.compiles <= maxSpareProcs {
		goruntime.GOMAXPROCS(s.base + s.compiles)
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.compiles--
		if s.compiles < maxSpareProcs {
			goruntime.GOMAXPROCS(s.base + s.compiles)
		}
	}()
	f()
}
