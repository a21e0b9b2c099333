package conformance

import (
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/internal/testwait"
	"github.com/tinycontainer/tinycontainer/mgmt"
)

// A revoked permission fails on the very next call through a handle opened
// earlier, the container is not restarted and keeps its memory (the handle
// table is instance state); a new grant applies at the next call too.
func TestLiveMetadataUpdate(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, tg target) {
		r := newRig(t, tg, "  - {name: sensor/temperature, ops: [read]}\n")
		first := r.run(prog{}.open("sensor/temperature").call(res(0), read, nil, 4), 2)
		h := byte(first[0].r)
		if first[1].r != 4 {
			t.Fatalf("read before revoke: %d", first[1].r)
		}
		if err := r.dev.UpdateManifest(manifestFor(t, tg.kind, "  - {name: kv, ops: [get]}\n", 2)); err != nil {
			t.Fatal(err)
		}
		got := r.run(prog{}.call(h, read, nil, 4), 1)
		if got[0].r != e(abi.EPERM) {
			t.Fatalf("read through the old handle after revoke: %d, want EPERM", got[0].r)
		}
		select {
		case a := <-r.audit:
			if a.Container != "probe" || a.Tenant != "t1" || a.Endpoint != "sensor/temperature" || a.Op != "read" || a.Reason == "" || a.Time.IsZero() {
				t.Fatalf("audit entry %+v", a)
			}
		case <-time.After(testwait.Guard()):
			t.Fatal("denied call not audited (a hang guard)")
		}
		if err := r.dev.UpdateManifest(manifestFor(t, tg.kind, "  - {name: 'sensor/#', ops: [read]}\n", 3)); err != nil {
			t.Fatal(err)
		}
		if got := r.run(prog{}.call(h, read, nil, 4), 1); got[0].r != 4 {
			t.Fatalf("read after re-grant: %d", got[0].r)
		}
		st := r.status()
		if st.Faults != 0 || st.Version != 3 || st.DeniedCalls != 1 || st.State != mgmt.StateRunning {
			t.Fatalf("status %+v", st)
		}
		if err := r.dev.UpdateManifest(manifestFor(t, tg.kind, "", 3)); err == nil {
			t.Fatal("an update with the same version was accepted")
		}
	})
}

// A budget overrun is a fault; the next activation starts from a fresh
// instance (old handles are gone); after max_faults consecutive faults the
// container is faulted and the device goes on.
func TestFaultsAndRestart(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, tg target) {
		r := newRig(t, tg, "  - {name: clock, ops: [read]}\n")
		h := byte(r.run(prog{}.open("clock"), 1)[0].r)
		if err := r.dev.Bus().Publish("tester", "probe/run", prog{}.spin()); err != nil {
			t.Fatal(err)
		}
		st := r.waitStatus("a budget fault", func(s mgmt.ContainerStatus) bool { return s.Faults == 1 })
		if st.LastFault != mgmt.FaultBudget || st.State != mgmt.StateRunning {
			t.Fatalf("after spin: %+v", st)
		}
		got := r.run(prog{}.call(h, read, nil, 8).open("clock"), 2)
		if got[0].r != e(abi.EBADF) || got[1].r < 0 {
			t.Fatalf("after restart: %+v (the old handle must be gone)", got)
		}
		r.dev.Bus().Publish("tester", "probe/run", prog{}.trap())
		st = r.waitStatus("a memory fault", func(s mgmt.ContainerStatus) bool { return s.Faults == 2 })
		if st.LastFault != mgmt.FaultMemory {
			t.Fatalf("after an out-of-bounds load: last_fault %q", st.LastFault)
		}
		// The trap was the first of a new run of faults (a clean activation
		// came between); two more make max_faults=3 consecutive ones.
		r.dev.Bus().Publish("tester", "probe/run", prog{}.spin())
		r.waitStatus("a third fault", func(s mgmt.ContainerStatus) bool { return s.Faults == 3 })
		if st := r.status(); st.State != mgmt.StateRunning {
			t.Fatalf("faulted after 2 consecutive faults: %+v", st)
		}
		r.dev.Bus().Publish("tester", "probe/run", prog{}.spin())
		st = r.waitStatus("the faulted state", func(s mgmt.ContainerStatus) bool { return s.State == mgmt.StateFaulted })
		if st.Faults != 4 {
			t.Fatalf("faulted after %d faults, want 4 (3 consecutive)", st.Faults)
		}
		// Starting again clears the fault count and runs from a fresh instance.
		if err := r.dev.Start("probe"); err != nil {
			t.Fatal(err)
		}
		if got := r.run(prog{}.open("clock"), 1); got[0].r < 0 {
			t.Fatalf("after restart: %d", got[0].r)
		}
	})
}

// Stats carry the SPEC section 6 fields.
func TestStatsFields(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, tg target) {
		r := newRig(t, tg, "")
		r.run(prog{}.open("clock"), 1)
		st := r.waitStatus("the activation to be counted", func(s mgmt.ContainerStatus) bool { return s.Activations >= 1 })
		if st.Name != "probe" || st.Tenant != "t1" || st.Runtime != tg.kind || st.Version != 1 ||
			st.DeniedCalls != 1 || st.EndpointCalls < 5 || st.MissedDeadlines != 0 || st.LastFault != "" {
			t.Fatalf("status %+v", st)
		}
	})
}
