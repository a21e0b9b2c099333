package sched

import (
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// Action is what happens to a task after an activation.
type Action uint8

const (
	Continue Action = iota // keep scheduling (after a fault: from a fresh instance)
	Stop                   // stop scheduling; the container is "stopped"
	Fault                  // stop scheduling; the container is "faulted"
	Done                   // a `once` task finished; the container is "stopped"
)

func (a Action) String() string {
	return [...]string{"continue", "stop", "fault", "done"}[a]
}

// Policy decides what a fault leads to. It is policy, kept apart from the
// mechanism that schedules and the watchdog that bounds activations.
type Policy interface {
	OnFault(s meta.Schedule, consecutive int, f *runtime.Fault) Action
}

// ManifestPolicy follows the manifest: `on_fault: stop` stops at the first
// fault; `restart` restarts until `max_faults` consecutive faults, then the
// container is faulted.
type ManifestPolicy struct{}

var _ Policy = ManifestPolicy{}

func (ManifestPolicy) OnFault(s meta.Schedule, consecutive int, _ *runtime.Fault) Action {
	if s.MaxFaults > 0 && consecutive >= s.MaxFaults {
		return Fault
	}
	if s.OnFault == meta.Stop {
		return Stop
	}
	return Continue
}
