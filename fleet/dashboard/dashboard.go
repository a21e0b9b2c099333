// Package dashboard is the fleet's dashboard: the live view of a fleet
// controller (fleet/ctl) read through mgmt/web's FleetReader, the glue
// `fleet dashboard` serves and the tests drive against a real fleet.
package dashboard

import (
	"context"

	"github.com/tinycontainer/tinycontainer/fleet/ctl"
	"github.com/tinycontainer/tinycontainer/mgmt/web"
)

// Reader reads f for the fleet's page: devices (fleet devices --json),
// containers (fleet ps --json), rollouts (fleet status --json each, newest
// first) and the view's counters.
func Reader(f *ctl.Fleet) web.FleetReader { return view{f} }

type view struct{ f *ctl.Fleet }

func (v view) Devices(context.Context) (any, error) {
	ds := v.f.Devices(ctl.All())
	if ds == nil {
		ds = []ctl.Device{}
	}
	return ds, nil
}

func (v view) Containers(context.Context) (any, error) {
	cs := v.f.Containers(ctl.All())
	if cs == nil {
		cs = []ctl.Container{}
	}
	return cs, nil
}

// Rollouts are every rollout on the broker with what the devices report
// now; the broker's ACL vouches for them (fleet status --pub checks a
// tenant's signatures).
func (v view) Rollouts(context.Context) (any, error) {
	rs, _ := v.f.Rollouts()
	out := make([]ctl.RolloutStatus, 0, len(rs))
	for _, r := range rs {
		out = append(out, v.f.Status(r, false))
	}
	return out, nil
}

func (v view) Stats(context.Context) (any, error) { return v.f.Stats(), nil }
