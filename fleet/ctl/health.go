package ctl

import (
	"fmt"
	"time"

	"github.com/tinycontainer/tinycontainer/fleet/doc"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
)

// A device's health as the fleet sees it (Device.Health), worst first.
const (
	DeviceOffline = "offline" // its status says so (a clean shutdown or its will)
	DeviceSilent  = "silent"  // online by its status, but nothing heard for more than silentBeats heartbeats
	DeviceWarning = "warning" // heard from, with problems (Device.Problems)
	DeviceOK      = "ok"
)

// silentBeats: a device online by its status that sent nothing for this
// many of its heartbeats (plus a settle's grace) is silent: its will may
// not have reached the broker (a broker that lost it, a half-open
// connection the broker has not noticed yet).
const silentBeats = 2

// judge sets d's Health and Problems from what this controller heard and
// when, by its own clock: heard is when it last received the device's
// status or reported state, now is its clock now. A device's own clock
// (the times it writes) decides nothing here.
func judge(d *Device, r doc.Reported, heartbeat time.Duration, heard, now time.Time, grace time.Duration) {
	d.Problems = nil
	if heartbeat <= 0 {
		heartbeat = doc.DefaultHeartbeat
	}
	quiet := now.Sub(heard)
	silent := d.Online && !heard.IsZero() && quiet > silentBeats*heartbeat+grace
	if silent {
		d.Problems = append(d.Problems, fmt.Sprintf("silent: nothing heard for %v (it reports every %v)",
			quiet.Round(time.Second), heartbeat))
	}
	if s := r.Storage; s != nil {
		if s.LowSpace {
			d.Problems = append(d.Problems, fmt.Sprintf("low space: %s free where it keeps its state (below %s)",
				meta.HumanSize(s.FreeBytes), meta.HumanSize(s.LowSpaceBytes)))
		}
		if s.Errors > 0 {
			d.Problems = append(d.Problems, fmt.Sprintf("storage: %d kv calls failed", s.Errors))
		}
	}
	for _, c := range r.Containers {
		name := c.Tenant + "/" + c.Name
		switch {
		case c.State == mgmt.StateFaulted:
			d.Problems = append(d.Problems, fmt.Sprintf("%s faulted (%s)", name, orNone(c.LastFault)))
		case c.Health == doc.HealthFailed:
			d.Problems = append(d.Problems, fmt.Sprintf("%s: version %d failed its health check", name, c.Version))
		}
		if c.Error != "" {
			d.Problems = append(d.Problems, name+": "+c.Error)
		}
		if c.MissedDeadlines > 0 {
			d.Problems = append(d.Problems, fmt.Sprintf("%s missed %d deadlines", name, c.MissedDeadlines))
		}
		if c.ThrottledUS > 0 {
			d.Problems = append(d.Problems, fmt.Sprintf("%s throttled %v by its tenant's CPU share",
				name, (time.Duration(c.ThrottledUS)*time.Microsecond).Round(time.Millisecond)))
		}
	}
	switch {
	case !d.Online:
		d.Health = DeviceOffline
	case silent:
		d.Health = DeviceSilent
	case len(d.Problems) > 0:
		d.Health = DeviceWarning
	default:
		d.Health = DeviceOK
	}
}

func orNone(s string) string {
	if s == "" {
		return "no fault kind"
	}
	return s
}
