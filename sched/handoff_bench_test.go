package sched

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/meta"
)

// eventSpin is a spinTask released by a message: Ready while one waits.
type eventSpin struct {
	*spinTask
	pending atomic.Bool
}

func (f *eventSpin) Ready() bool { return f.pending.Load() }

// BenchmarkPreemptionHandoff is the scheduler's share of the preemption
// latency (issue 10): on one worker, while a priority-1 task computes
// with a checkpoint every ~0.3 µs, a priority-10 event task is released;
// the figure is the time from the release to the start of its activation
// (the OnStart hook), which is what is left of the latency besides the
// distance between two of the guest's checkpoints: the yield request,
// the checkpoint's slow path (a CPU clock read), the gate and the switch
// of goroutines. p50/p99 in ns; busy machines stretch the tail.
func BenchmarkPreemptionHandoff(b *testing.B) {
	starts := make(chan time.Duration, 1)
	s := start(b, Options{OnStart: func(id string, late time.Duration) {
		if id == "high" {
			starts <- late
		}
	}})
	low := &spinTask{name: "low", sched: once(1, time.Hour)}
	s.Add("low", low)
	eventually(b, "low to run", func() bool { return low.inside.Load() == 1 })
	high := &eventSpin{spinTask: &spinTask{name: "high", work: 1,
		sched: meta.Schedule{Trigger: meta.Event, Priority: 10, Budget: time.Second, OnFault: meta.Restart, MaxFaults: 3}}}
	high.atStart = func() { high.pending.Store(false) }
	s.Add("high", high)
	var lat []time.Duration
	for b.Loop() {
		n := high.activations.Load()
		high.pending.Store(true)
		s.Release("high")
		lat = append(lat, <-starts)
		for high.activations.Load() == n || high.inside.Load() != 0 { // until it ended
			time.Sleep(20 * time.Microsecond)
		}
		time.Sleep(50 * time.Microsecond) // low back at work
	}
	b.StopTimer()
	low.stop.Store(true)
	eventually(b, "low to finish", func() bool { return low.inside.Load() == 0 })
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
	b.ReportMetric(0, "ns/op")
}
