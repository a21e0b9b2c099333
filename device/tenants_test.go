package device_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
)

// TestTenantsAndRevoke: the device lists its tenants with their ceilings;
// the owner (only) revokes one: its containers stop, its key signs nothing
// more, its rates fall back to the defaults, and all of it holds after a
// restart.
func TestTenantsAndRevoke(t *testing.T) {
	td := newDevice(t)
	ctx := context.Background()
	if ts, err := td.mg.Tenants(ctx); err != nil || len(ts) != 0 {
		t.Fatalf("no tenants: %+v, %v", ts, err)
	}
	td.addTenants()
	m, code := td.deployThermo()
	ts, err := td.mg.Tenants(ctx)
	if err != nil || len(ts) != 2 || ts[0].Name != "acme" || ts[1].Name != "globex" || ts[0].Containers != 1 || ts[1].Containers != 0 || ts[0].Key == "" {
		t.Fatalf("tenants: %+v, %v", ts, err)
	}
	c, err := meta.ParseCeiling(ts[0].Ceiling)
	if err != nil || c.Tenant != "acme" || c.MaxMemory != 64*meta.KiB || c.MaxPriority != meta.DefaultMaxPriority {
		t.Fatalf("acme's ceiling: %+v, %v", c, err)
	}

	_, err = td.exec(acmeKey, device.VerbTenantRevoke, "acme", nil)
	wantErr(t, "revoke by the tenant", err, mgmt.ErrDenied)
	_, err = td.exec(ownerKey, device.VerbTenantRevoke, "nobody", nil)
	wantErr(t, "revoke of an unknown tenant", err, mgmt.ErrNotFound)
	res := td.mustExec(ownerKey, device.VerbTenantRevoke, "acme", nil)
	var r struct {
		Revoked string   `json:"revoked"`
		Stopped []string `json:"stopped"`
	}
	if err := json.Unmarshal(res, &r); err != nil || r.Revoked != "acme" || len(r.Stopped) != 1 || r.Stopped[0] != "thermo" {
		t.Fatalf("revoke result %s: %v", res, err)
	}
	check := func(td *testDevice) {
		t.Helper()
		if st := td.status("thermo"); st.State != mgmt.StateStopped {
			t.Fatalf("thermo after revoke: %s", st.State)
		}
		if ts, _ := td.mg.Tenants(ctx); len(ts) != 1 || ts[0].Name != "globex" {
			t.Fatalf("tenants after revoke: %+v", ts)
		}
		if _, ok := td.mg.Device().Ceiling("acme"); ok {
			t.Fatal("acme's ceiling outlived its revocation")
		}
		_, err := td.exec(acmeKey, device.VerbStart, "thermo", nil)
		wantErr(t, "a revoked tenant's command", err, mgmt.ErrDenied)
		_, err = td.deploy(pack(t, variant(m, func(m *meta.Manifest) { m.Version = 5 }), code, acmeKey))
		wantErr(t, "a revoked tenant's image", err, mgmt.ErrDenied)
	}
	check(td)
	td = td.reopen()
	check(td)
	// The owner may still remove the container; the tenant may be granted again.
	td.mustExec(ownerKey, device.VerbRemove, "thermo", nil)
	td.mustExec(ownerKey, device.VerbTenantAdd, "", acmeGrant(t))
	if ts, _ := td.mg.Tenants(ctx); len(ts) != 2 {
		t.Fatalf("tenants after a new grant: %+v", ts)
	}
}
