package device_test

import (
	"sync"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/device/devicetest"
	"github.com/tinycontainer/tinycontainer/internal/guests"
)

// TestStartFunctionPreempted is issue 10's gap "the start function is not
// preemptible": a priority-1 container whose start function computes for
// its whole 100 ms of CPU (a random_get loop) is suspended in it when a
// priority-10 container becomes ready (released here the moment the low
// one's activation starts, before its instance exists): the high one's
// activation ends before the low one's start function does.
func TestStartFunctionPreempted(t *testing.T) {
	var once sync.Once
	var r *crunchRig
	kicked := make(chan struct{})
	r = newCrunchRig(t, "wasm", device.Options{OnStart: func(name string, _ time.Duration) {
		if name == "slowstart" {
			once.Do(func() { r.kick("high", 1); close(kicked) })
		}
	}})
	r.add("high", "acme", 10)
	r.Add(`name: slowstart
tenant: globex
version: 1
runtime: wasm
schedule: {trigger: once, budget: 10ms, priority: 1, on_fault: stop, max_faults: 1}
limits: {memory: 1MiB}
`, guests.File("escape_random_start.wasm"))
	<-kicked
	devicetest.WaitFor(t, "the start function to end", func() bool { return r.Status("slowstart").Faults > 0 })
	low, high := r.Status("slowstart"), r.Status("high")
	if high.Activations != 1 {
		t.Errorf("the priority-10 activation had not run when the start function ended (%d activations)", high.Activations)
	}
	if low.Preemptions == 0 {
		t.Errorf("the start function was never suspended (status %+v)", low)
	}
	if low.LastFault != "trap" && low.LastFault != "budget" {
		t.Errorf("last fault %q", low.LastFault)
	}
}
