package device_test

import (
	"context"
	"testing"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/store"
)

// Deploy and FleetDeploy share one path (Manager.deploy) and differ only
// in their gate and in how they place the compiled container: these pin
// both routes' choices so a change to the shared path shows.
func TestDeployRoutes(t *testing.T) {
	ctx := context.Background()
	td := newDevice(t)
	td.addTenants()
	m1, code := example(t, "thermo")
	m2 := variant(m1, func(m *meta.Manifest) { m.Version = 2 })
	v1, v2 := pack(t, m1, code, acmeKey), pack(t, m2, code, acmeKey)
	want := func(v uint64, revert bool) device.FleetWant {
		return device.FleetWant{Tenant: "acme", Name: "thermo", Version: v, Revert: revert}
	}

	// The fleet's image must be what its desired state names.
	_, err := td.mg.FleetDeploy(ctx, v1, want(2, false))
	wantErr(t, "fleet deploy of another version", err, device.ErrInvalid)

	// Install by the fleet; the same version again is a restart, and
	// records the running state.
	if st, err := td.mg.FleetDeploy(ctx, v1, want(1, false)); err != nil || st.Version != 1 || st.State != mgmt.StateRunning {
		t.Fatalf("fleet install: %+v, %v", st, err)
	}
	if err := td.mg.Device().Stop("thermo"); err != nil {
		t.Fatal(err)
	}
	rec, err := td.st.GetContainer("thermo")
	if err != nil {
		t.Fatal(err)
	}
	rec.State = store.StateStopped
	if err := td.st.PutContainer(rec); err != nil {
		t.Fatal(err)
	}
	if st, err := td.mg.FleetDeploy(ctx, v1, want(1, false)); err != nil || st.Version != 1 || st.State != mgmt.StateRunning {
		t.Fatalf("fleet restart: %+v, %v", st, err)
	}
	if rec, _ := td.st.GetContainer("thermo"); rec.State != store.StateRunning {
		t.Fatalf("stored state after a fleet restart: %q", rec.State)
	}
	// CoAP: the same version again is a conflict, not a restart.
	_, err = td.deploy(v1)
	wantErr(t, "deploy of the installed version", err, device.ErrConflict)

	// Upgrade by the fleet; back down only as a revert.
	if st, err := td.mg.FleetDeploy(ctx, v2, want(2, false)); err != nil || st.Version != 2 {
		t.Fatalf("fleet upgrade: %+v, %v", st, err)
	}
	_, err = td.mg.FleetDeploy(ctx, v1, want(1, false))
	wantErr(t, "fleet downgrade without revert", err, device.ErrConflict)
	if st, err := td.mg.FleetDeploy(ctx, v1, want(1, true)); err != nil || st.Version != 1 || st.State != mgmt.StateRunning {
		t.Fatalf("fleet revert: %+v, %v", st, err)
	}
	if rec, _ := td.st.GetContainer("thermo"); rec.Version != 1 || rec.State != store.StateRunning {
		t.Fatalf("stored record after a revert: version %d state %q", rec.Version, rec.State)
	}
	// CoAP never goes back down (the version floor stays at 2).
	_, err = td.deploy(v1)
	wantErr(t, "deploy below the floor", err, device.ErrConflict)

	// A fleet-managed tenant's own CoAP deploys are refused; the owner's
	// and the fleet's go through.
	td.mg.SetFleetManaged("acme", true)
	m3 := variant(m1, func(m *meta.Manifest) { m.Version = 3 })
	_, err = td.deploy(pack(t, m3, code, acmeKey))
	wantErr(t, "tenant deploy to a fleet-managed tenant", err, device.ErrDenied)
	if st, err := td.deploy(pack(t, m3, code, ownerKey)); err != nil || st.Version != 3 {
		t.Fatalf("owner deploy to a fleet-managed tenant: %+v, %v", st, err)
	}
	m4 := variant(m1, func(m *meta.Manifest) { m.Version = 4 })
	if st, err := td.mg.FleetDeploy(ctx, pack(t, m4, code, acmeKey), want(4, false)); err != nil || st.Version != 4 {
		t.Fatalf("fleet deploy to a fleet-managed tenant: %+v, %v", st, err)
	}
}
