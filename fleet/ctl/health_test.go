package ctl

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/fleet/doc"
	"github.com/tinycontainer/tinycontainer/internal/mqttc"
	"github.com/tinycontainer/tinycontainer/mgmt"
)

// fakeClock is a controller's clock, moved by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// heardFrom delivers a device's status and reported state to the view as
// the broker would.
func heardFrom(t *testing.T, f *Fleet, s doc.Status, r doc.Reported) {
	t.Helper()
	sb, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	rb, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	f.onMessage(mqttc.Message{Topic: doc.StatusTopic(s.ID), Payload: sb})
	f.onMessage(mqttc.Message{Topic: doc.ReportedTopic(r.ID), Payload: rb})
}

func deviceOf(t *testing.T, f *Fleet, id string) Device {
	t.Helper()
	for _, d := range f.Devices(All()) {
		if d.ID == id {
			return d
		}
	}
	t.Fatalf("no device %s", id)
	return Device{}
}

// A device that stopped reporting without its will reaching the broker
// (online by its retained status) is silent once more than two of its
// heartbeats passed on the controller's clock without a word from it.
// The device's own clock (an hour off here) decides nothing.
func TestSilentDeviceByTheControllersClock(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	f := newFleet(Options{Clock: clock.now, Settle: 500 * time.Millisecond})
	deviceTime := clock.now().Add(-time.Hour)
	s := doc.Status{ID: "dev-1", Online: true, Labels: map[string]string{}, Session: 1, Time: deviceTime,
		Heartbeat: doc.Duration(10 * time.Second)}
	r := doc.Reported{ID: "dev-1", Session: 1, Seq: 1, Time: deviceTime}
	heardFrom(t, f, s, r)
	if d := deviceOf(t, f, "dev-1"); d.Health != DeviceOK || d.Problems != nil || d.Heartbeat != "10s" {
		t.Fatalf("just heard from: %s %q (heartbeat %s)", d.Health, d.Problems, d.Heartbeat)
	}
	// Last seen by the controller's clock, not the device's hour-off one.
	if d := deviceOf(t, f, "dev-1"); !d.LastSeen.Equal(clock.now()) {
		t.Fatalf("last seen %v, heard at %v (the device's clock says %v)", d.LastSeen, clock.now(), deviceTime)
	}
	clock.add(20 * time.Second) // two heartbeats: one may be late or lost
	if d := deviceOf(t, f, "dev-1"); d.Health != DeviceOK {
		t.Fatalf("after two heartbeats: %s %q", d.Health, d.Problems)
	}
	clock.add(time.Second)
	d := deviceOf(t, f, "dev-1")
	if d.Health != DeviceSilent || len(d.Problems) != 1 || !strings.Contains(d.Problems[0], "nothing heard for 21s") || !d.Online {
		t.Fatalf("past two heartbeats and the grace: %s %q online %v", d.Health, d.Problems, d.Online)
	}
	// Its heartbeat arrives: no longer silent.
	r.Seq++
	heardFrom(t, f, s, r)
	if d := deviceOf(t, f, "dev-1"); d.Health != DeviceOK {
		t.Fatalf("heard again: %s %q", d.Health, d.Problems)
	}
	// A device that said it went offline is offline, not silent.
	s.Online = false
	heardFrom(t, f, s, r)
	clock.add(time.Hour)
	if d := deviceOf(t, f, "dev-1"); d.Health != DeviceOffline {
		t.Fatalf("offline: %s %q", d.Health, d.Problems)
	}
	// A status without a heartbeat (an older device): the default.
	s = doc.Status{ID: "dev-2", Online: true, Labels: map[string]string{}, Session: 1, Time: deviceTime}
	heardFrom(t, f, s, doc.Reported{ID: "dev-2", Session: 1, Seq: 1})
	clock.add(2 * doc.DefaultHeartbeat)
	if d := deviceOf(t, f, "dev-2"); d.Health != DeviceOK || d.Heartbeat != doc.DefaultHeartbeat.String() {
		t.Fatalf("default heartbeat: %s %q %s", d.Health, d.Problems, d.Heartbeat)
	}
	clock.add(time.Second)
	if d := deviceOf(t, f, "dev-2"); d.Health != DeviceSilent {
		t.Fatalf("default heartbeat, silent: %s %q", d.Health, d.Problems)
	}
}

// Low storage, storage errors, faults, a failed version, missed deadlines
// and throttling each make a device's health a warning, said in words.
func TestDeviceWarnings(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	f := newFleet(Options{Clock: clock.now})
	s := doc.Status{ID: "dev-1", Online: true, Labels: map[string]string{}, Session: 1, Heartbeat: doc.Duration(time.Minute)}
	ok := doc.ContainerReport{ContainerStatus: mgmt.ContainerStatus{Name: "ok", Tenant: "acme", State: mgmt.StateRunning, Version: 1}}
	r := doc.Reported{ID: "dev-1", Session: 1, Seq: 1, Containers: []doc.ContainerReport{ok},
		Storage: &mgmt.StorageInfo{FreeBytes: 10 << 20, TotalBytes: 1 << 30, LowSpaceBytes: 8 << 20}}
	heardFrom(t, f, s, r)
	if d := deviceOf(t, f, "dev-1"); d.Health != DeviceOK || d.Storage == nil || d.Storage.FreeBytes != 10<<20 {
		t.Fatalf("healthy: %s %q %+v", d.Health, d.Problems, d.Storage)
	}
	for _, c := range []struct {
		edit func(*doc.Reported)
		want string
	}{
		{func(r *doc.Reported) { r.Storage.FreeBytes, r.Storage.LowSpace = 4<<20, true }, "low space: 4.0 MiB free where it keeps its state (below 8.0 MiB)"},
		{func(r *doc.Reported) { r.Storage.Errors = 3 }, "storage: 3 kv calls failed"},
		{func(r *doc.Reported) { r.Containers[0].MissedDeadlines = 5 }, "acme/ok missed 5 deadlines"},
		{func(r *doc.Reported) { r.Containers[0].ThrottledUS = 1_500_000 }, "acme/ok throttled 1.5s by its tenant's CPU share"},
		{func(r *doc.Reported) { r.Containers[0].State, r.Containers[0].LastFault = mgmt.StateFaulted, "trap" }, "acme/ok faulted (trap)"},
		{func(r *doc.Reported) { r.Containers[0].Health, r.Containers[0].Version = doc.HealthFailed, 2 }, "acme/ok: version 2 failed its health check"},
		{func(r *doc.Reported) { r.Containers[0].Error = "image digest mismatch" }, "acme/ok: image digest mismatch"},
	} {
		bad := r
		st := *r.Storage
		bad.Storage = &st
		bad.Containers = []doc.ContainerReport{ok}
		bad.Seq++
		c.edit(&bad)
		heardFrom(t, f, s, bad)
		if d := deviceOf(t, f, "dev-1"); d.Health != DeviceWarning || len(d.Problems) != 1 || d.Problems[0] != c.want {
			t.Errorf("%s: health %s, problems %q", c.want, d.Health, d.Problems)
		}
	}
}
