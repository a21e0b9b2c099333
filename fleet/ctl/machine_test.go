package ctl

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

const (
	oldImage = "1111111111111111111111111111111111111111111111111111111111111111"
	newImage = "2222222222222222222222222222222222222222222222222222222222222222"
)

// fakeDev is a device of the fake fleet: how it reacts to a new version.
type fakeDev struct {
	obs      Observation
	behavior string // ok, fault, refuse, silent (never reports), offline
	sentAt   time.Time
	seq      uint64
}

// fakeFleet applies a rollout's decisions to fake devices on a fake clock.
type fakeFleet struct {
	t      *testing.T
	now    time.Time
	devs   map[string]*fakeDev
	r      *Rollout
	events []Event
	sends  int
}

func newFakeFleet(t *testing.T, n int, p Params, behavior func(i int) string) *fakeFleet {
	t.Helper()
	f := &fakeFleet{t: t, now: time.Unix(1_700_000_000, 0).UTC(), devs: map[string]*fakeDev{}}
	var targets []Target
	for i := range n {
		id := fmt.Sprintf("dev-%04d", i)
		b := behavior(i)
		f.devs[id] = &fakeDev{behavior: b, obs: Observation{Online: b != "offline", Version: 1, Image: oldImage, Health: HealthHealthy, Seq: 1}, seq: 1}
		targets = append(targets, Target{Device: id, From: 1, FromImage: oldImage})
	}
	r, err := NewRollout("r-1", "acme", "thermo", 2, newImage, 13000, "site=lab", p, targets, f.now)
	if err != nil {
		t.Fatal(err)
	}
	f.r = r
	return f
}

func (f *fakeFleet) observe(id string) (Observation, bool) {
	d, ok := f.devs[id]
	if !ok {
		return Observation{}, false
	}
	if d.behavior == "ok" && d.obs.Version == 2 && d.obs.Health == HealthPending && f.now.Sub(d.sentAt) >= f.r.Params.Health {
		d.obs.Health = HealthHealthy
	}
	return d.obs, true
}

func (f *fakeFleet) apply(d Decision) {
	f.events = append(f.events, d.Events...)
	for _, id := range d.Send {
		dev := f.devs[id]
		dev.seq++
		f.r.Sent(id, dev.seq)
		f.sends++
		dev.sentAt = f.now
		switch dev.behavior {
		case "ok":
			dev.obs = Observation{Online: true, Version: 2, Image: newImage, Health: HealthPending, Seq: dev.seq}
		case "fault":
			dev.obs = Observation{Online: true, Version: 2, Image: newImage, Health: HealthFailed, Reason: "trap", Seq: dev.seq}
		case "refuse":
			dev.obs = Observation{Online: true, Version: 1, Image: oldImage, Health: HealthHealthy, Seq: dev.seq - 1, RefusedSeq: dev.seq, Refused: "signed by the wrong key"}
		}
	}
	for _, id := range d.Revert {
		dev := f.devs[id]
		dev.seq++
		f.r.Reverted(id, dev.seq)
		if dev.obs.Online && dev.behavior != "silent" {
			dev.obs = Observation{Online: true, Version: 1, Image: oldImage, Health: HealthHealthy, Seq: dev.seq}
		}
	}
}

// run steps the rollout every 100 ms of fake time until it ends.
func (f *fakeFleet) run() {
	f.t.Helper()
	for range 100000 {
		f.apply(f.r.Step(f.now, f.observe))
		if f.r.Done() {
			return
		}
		f.now = f.now.Add(100 * time.Millisecond)
	}
	f.t.Fatalf("rollout did not end: %s", f.r.State)
}

func (f *fakeFleet) eventKinds() string {
	var b []string
	for _, e := range f.events {
		if e.Kind != EvDevice {
			b = append(b, fmt.Sprintf("%s/%d", e.Kind, e.Wave))
		}
	}
	return strings.Join(b, " ")
}

func testParams() Params {
	p := DefaultParams()
	p.Health = 2 * time.Second
	p.Timeout = 30 * time.Second
	return p
}

func TestRolloutCompletes(t *testing.T) {
	f := newFakeFleet(t, 20, testParams(), func(int) string { return "ok" })
	f.run()
	if f.r.State != RolloutCompleted {
		t.Fatalf("state %s (%s)", f.r.State, f.r.Reason)
	}
	if c := f.r.Counts(); c[JobSucceeded] != 20 {
		t.Fatalf("counts %v", c)
	}
	if got, want := f.eventKinds(), "rollout_started/0 wave_started/0 wave_done/0 wave_started/1 wave_done/1 wave_started/2 wave_done/2 wave_started/3 wave_done/3 wave_started/4 wave_done/4 completed/4"; got != want {
		t.Fatalf("events\n got %s\nwant %s", got, want)
	}
	// Each wave waited for its devices to be healthy: no two waves closer
	// than the health window.
	for i := 1; i < len(f.r.Waves); i++ {
		if gap := f.r.Waves[i].Started.Sub(f.r.Waves[i-1].Started); gap < f.r.Params.Health {
			t.Fatalf("wave %d started %v after wave %d", i, gap, i-1)
		}
	}
}

func TestFaultingCanaryAbortsBeforeFirstFullWave(t *testing.T) {
	f := newFakeFleet(t, 100, testParams(), func(int) string { return "fault" })
	f.run()
	if f.r.State != RolloutAborted {
		t.Fatalf("state %s", f.r.State)
	}
	if f.sends != f.r.Waves[0].Size {
		t.Fatalf("sent the new version to %d devices, canary is %d", f.sends, f.r.Waves[0].Size)
	}
	for _, j := range f.r.Jobs {
		want := JobCanceled
		if j.Wave == 0 {
			want = JobRolledBack
		}
		if j.State != want {
			t.Fatalf("%s in wave %d: %s, want %s", j.Device, j.Wave, j.State, want)
		}
		if j.Wave == 0 && f.devs[j.Device].obs.Version != 1 {
			t.Fatalf("%s not back on version 1", j.Device)
		}
	}
	if !strings.Contains(f.r.Reason, "failed") {
		t.Fatalf("reason %q", f.r.Reason)
	}
}

func TestMaxFailuresCountsAttemptedDevices(t *testing.T) {
	// 100 devices, 10% may fail; devices 0-7 fault. Whatever the order,
	// at most 8 of 100 fail, so the rollout completes.
	p := testParams()
	p.MaxFailures = 1000
	f := newFakeFleet(t, 100, p, func(i int) string {
		if i < 8 {
			return "fault"
		}
		return "ok"
	})
	f.run()
	c := f.r.Counts()
	// Failures are checked over the devices attempted so far: if the
	// canary alone held more than 10% faulting devices it had to abort.
	canaryFail := 0
	for _, j := range f.r.Jobs {
		if j.Wave == 0 && f.devs[j.Device].behavior == "fault" {
			canaryFail++
		}
	}
	if canaryFail*10 > f.r.Waves[0].Size {
		if f.r.State != RolloutAborted {
			t.Fatalf("canary had %d of %d failing, state %s", canaryFail, f.r.Waves[0].Size, f.r.State)
		}
		return
	}
	if f.r.State != RolloutCompleted || c[JobFailed] != 8 || c[JobSucceeded] != 92 {
		t.Fatalf("state %s counts %v (%s)", f.r.State, c, f.r.Reason)
	}
}

func TestOfflineDevicesDoNotBlockWaves(t *testing.T) {
	f := newFakeFleet(t, 20, testParams(), func(i int) string {
		if i%5 == 0 {
			return "offline"
		}
		return "ok"
	})
	f.run()
	if f.r.State != RolloutCompleted {
		t.Fatalf("state %s (%s)", f.r.State, f.r.Reason)
	}
	c := f.r.Counts()
	if c[JobPending] != 4 || c[JobSucceeded] != 16 {
		t.Fatalf("counts %v", c)
	}
}

func TestPendingDeviceCatchesUpWhileRolling(t *testing.T) {
	f := newFakeFleet(t, 20, testParams(), func(i int) string { return "ok" })
	// Take a canary device offline before it hears of the rollout.
	canary := f.r.Jobs[0].Device
	f.devs[canary].behavior = "offline"
	f.devs[canary].obs.Online = false
	for !f.r.Done() && f.r.Wave < 2 {
		f.apply(f.r.Step(f.now, f.observe))
		f.now = f.now.Add(100 * time.Millisecond)
	}
	if j := f.r.job(canary); j.State != JobPending {
		t.Fatalf("offline canary: %s", j.State)
	}
	// It comes back and runs the new version well.
	f.devs[canary].behavior = "ok"
	f.devs[canary].obs = Observation{Online: true, Version: 2, Image: newImage, Health: HealthHealthy, Seq: f.r.job(canary).Seq}
	f.run()
	if j := f.r.job(canary); j.State != JobSucceeded || f.r.State != RolloutCompleted {
		t.Fatalf("canary %s, rollout %s", j.State, f.r.State)
	}
}

func TestRejectedAndTimedOutCountAsFailures(t *testing.T) {
	f := newFakeFleet(t, 4, testParams(), func(i int) string {
		return [...]string{"refuse", "silent", "ok", "ok"}[i]
	})
	// Put the refusing and silent devices in the canary by making the
	// canary everything.
	f.r.Params.Canary = 10000
	f.r.Params.MaxFailures = 4000 // one failure of four is fine, two are not
	f.r = mustReplan(t, f.r, 4)
	f.run()
	if f.r.State != RolloutAborted {
		t.Fatalf("state %s", f.r.State)
	}
	got := map[string]string{}
	for _, j := range f.r.Jobs {
		got[f.devs[j.Device].behavior] = j.State
	}
	if got["refuse"] != JobRolledBack || got["ok"] != JobRolledBack {
		t.Fatalf("states %v", got)
	}
	if got["silent"] != JobRollbackFailed {
		t.Fatalf("silent device: %s", got["silent"])
	}
	var sawReject, sawTimeout bool
	for _, e := range f.events {
		sawReject = sawReject || e.State == JobRejected && strings.Contains(e.Reason, "wrong key")
		sawTimeout = sawTimeout || e.State == JobTimedOut
	}
	if !sawReject || !sawTimeout {
		t.Fatalf("events lack REJECTED or TIMED_OUT: %v", f.eventKinds())
	}
}

func mustReplan(t *testing.T, r *Rollout, n int) *Rollout {
	t.Helper()
	var targets []Target
	for _, j := range r.Jobs {
		targets = append(targets, Target{Device: j.Device, From: j.From, FromImage: j.FromImage})
	}
	nr, err := NewRollout(r.ID, r.Tenant, r.Container, r.Version, r.Image, r.ImageSize, r.Selector, r.Params, targets, r.Created)
	if err != nil || len(nr.Jobs) != n {
		t.Fatal(err)
	}
	return nr
}

func TestAbortByHandReturnsTouchedDevices(t *testing.T) {
	f := newFakeFleet(t, 20, testParams(), func(int) string { return "ok" })
	for f.r.Wave < 1 {
		f.apply(f.r.Step(f.now, f.observe))
		f.now = f.now.Add(100 * time.Millisecond)
	}
	f.apply(f.r.Step(f.now, f.observe)) // wave 1 sent
	f.apply(f.r.Abort(f.now, "aborted by hand"))
	f.run()
	c := f.r.Counts()
	touched := f.r.Waves[0].Size + f.r.Waves[1].Size
	if f.r.State != RolloutAborted || c[JobRolledBack] != touched || c[JobCanceled] != 20-touched {
		t.Fatalf("state %s counts %v, touched %d", f.r.State, c, touched)
	}
	for id, d := range f.devs {
		if d.obs.Version != 1 {
			t.Fatalf("%s on version %d", id, d.obs.Version)
		}
	}
}

func TestLease(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	r := &Rollout{Params: testParams()}
	r.Claim("a", now)
	if r.Lease.Term != 1 || r.Lease.TTL != r.Params.Lease || !r.Lease.Until.Equal(now.Add(r.Params.Lease)) {
		t.Fatalf("lease %+v", r.Lease)
	}
	if r.RenewDue(now) || !r.RenewDue(now.Add(r.Params.Lease/3+time.Millisecond)) {
		t.Fatal("renewal due at the wrong time")
	}
	if r.Lease.Supersedes("a", 1) || !r.Lease.Supersedes("b", 1) || r.Lease.Supersedes("b", 2) {
		t.Fatal("Supersedes")
	}
	r.Claim("b", now)
	if !r.Lease.Supersedes("a", 1) {
		t.Fatal("a higher term must supersede")
	}
}

// Regression test: the lease compared the holder's wall clock (Until) with
// the watcher's. A watcher whose clock is an hour ahead took over a live
// driver at once; one an hour behind waited an hour for a dead one. The
// watcher now counts the lease's duration on its own clock from when it
// saw the lease, or its latest renewal, arrive.
func TestLeaseIsJudgedByTheWatchersOwnClock(t *testing.T) {
	for _, skew := range []time.Duration{-time.Hour, 0, time.Hour, 30 * 24 * time.Hour} {
		t.Run(skew.String(), func(t *testing.T) {
			watcher := time.Unix(1_700_000_000, 0) // the watcher's clock, advanced by hand
			holder := func() time.Time { return watcher.Add(skew) }
			r := &Rollout{Params: testParams()}
			r.Claim("a", holder())
			// The copy travels through the broker; the watcher sees it
			// arrive a little later.
			watcher = watcher.Add(200 * time.Millisecond)
			w := watchLease(r.Lease, watcher)
			ttl := r.Params.Lease
			if w.left(watcher) != ttl {
				t.Fatalf("left %v at arrival, want the whole lease %v", w.left(watcher), ttl)
			}
			// The holder renews a third of the way in: live again for a
			// whole lease from when the renewal arrives.
			watcher = watcher.Add(ttl / 3)
			r.Renew(holder())
			if w.see(r.Lease, watcher) != true || w.left(watcher) != ttl {
				t.Fatalf("renewal not seen: left %v", w.left(watcher))
			}
			// The same copy again is no renewal.
			if w.see(r.Lease, watcher.Add(time.Second)) {
				t.Fatal("the same lease seen again counted as a renewal")
			}
			// The holder dies: live until a lease after its last renewal
			// arrived, whatever its clock said.
			if w.left(watcher.Add(ttl-time.Millisecond)) <= 0 {
				t.Fatal("expired before its duration passed on the watcher's clock")
			}
			if w.left(watcher.Add(ttl)) > 0 {
				t.Fatalf("still live a whole lease after the last renewal (holder's clock %v off)", skew)
			}
		})
	}
}
