// Package simtest runs a small real fleet for the tests of several
// packages: a mosquitto broker (the test skips without one, and fails with
// TC_REQUIRE_MOSQUITTO=1), simulated devices (fleet/sim), and a controller
// (fleet/ctl) that granted tenant acme on every device and rolled the
// blinker example out to all of them.
package simtest

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/examples"
	"github.com/tinycontainer/tinycontainer/fleet/ctl"
	"github.com/tinycontainer/tinycontainer/fleet/sim"
	"github.com/tinycontainer/tinycontainer/internal/testbroker"
	"github.com/tinycontainer/tinycontainer/internal/testgrant"
	"github.com/tinycontainer/tinycontainer/internal/testwait"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/trust"
)

// World is a running fleet: the broker, the devices and a controller's
// live view of them (rollouts watched too).
type World struct {
	Broker  *testbroker.Broker
	Devices *sim.Fleet
	Ctl     *ctl.Fleet
	Owner   ed25519.PrivateKey
	Acme    ed25519.PrivateKey // the tenant's key
	Rollout string             // the completed rollout of blinker v1
}

// Key is a test key derived from name.
func Key(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("simtest " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

// Start runs n simulated devices (sim-0000, ...), grants acme on all of
// them, and rolls blinker v1 out in a canary and one wave, healthy after
// 100 ms, to completion. Everything stops when the test ends.
func Start(t *testing.T, n int) *World {
	t.Helper()
	w := &World{Broker: testbroker.Start(t), Owner: Key("owner"), Acme: Key("acme")}
	ctx, cancel := context.WithTimeout(t.Context(), testwait.Guard())
	defer cancel()
	devs, err := sim.Start(ctx, sim.Options{Devices: n, Broker: w.Broker.URL(), Owner: w.Owner.Public().(ed25519.PublicKey),
		Tick: 10 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w.Devices = devs
	t.Cleanup(devs.Close)
	f, err := ctl.Open(ctx, ctl.Options{Broker: w.Broker.URL(), Settle: 200 * time.Millisecond}, ctl.RolloutFilter(""))
	if err != nil {
		t.Fatal(err)
	}
	w.Ctl = f
	t.Cleanup(f.Close)
	testbroker.WaitFor(t, "every device online", func() bool {
		online := 0
		for _, d := range f.Devices(ctl.All()) {
			if d.Online {
				online++
			}
		}
		return online == n
	})

	c := testgrant.Ceiling("acme")
	c.MaxBudget = 30 * time.Millisecond
	grant := testgrant.Sign(t, c, w.Acme.Public().(ed25519.PublicKey), w.Owner, "actuator/led0:read,write", "log:write")
	res, err := f.Grant(ctx, grant, w.Owner, ctl.All(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.State != ctl.GrantAccepted {
			t.Fatalf("grant on %s: %s %s", r.Device, r.State, r.Reason)
		}
	}

	y, err := examples.FS.ReadFile("blinker/blinker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := meta.Parse(y)
	if err != nil {
		t.Fatal(err)
	}
	m.Tenant = "acme"
	code, err := examples.FS.ReadFile("blinker/blinker.wasm")
	if err != nil {
		t.Fatal(err)
	}
	mj, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	img, err := trust.Pack(mj, code, w.Acme)
	if err != nil {
		t.Fatal(err)
	}
	p := ctl.DefaultParams()
	p.Canary, p.Wave, p.Health, p.Timeout = 5000, 10000, 100*time.Millisecond, time.Minute // 50 % then the rest
	run, err := f.StartRollout(ctx, ctl.RolloutRequest{Image: img, Key: w.Acme, Selector: ctl.All(), Params: p, ID: "blinker-1"})
	if err != nil {
		t.Fatal(err)
	}
	state, err := run.Drive(ctx, nil)
	if err != nil || state != ctl.RolloutCompleted {
		t.Fatalf("rollout: %s, %v", state, err)
	}
	w.Rollout = run.ID()
	return w
}
