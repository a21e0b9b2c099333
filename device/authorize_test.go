package device_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/trust"
)

// strictAcmeGrant is acme's grant with every ceiling field set: thermo
// (priority 5, memory 64KiB, sensor rate 20/s) is exactly at it.
func strictAcmeGrant(t testing.TB) []byte {
	t.Helper()
	c := meta.Ceiling{Tenant: "acme", MaxMemory: 64 * meta.KiB, MaxStorage: 4 * meta.KiB,
		MaxBudget: 10 * time.Millisecond, MinPeriod: 50 * time.Millisecond, MaxPriority: 5, MaxCPU: 50,
		MaxCode: 64 * meta.KiB, MaxRate: []meta.RateCeiling{{Pattern: "sensor/+", N: 20}, {Pattern: "log", N: 100}}}
	return signGrant(t, c, acmeKey, "sensor/+:read", "log:write", "kv:get,put", "msg/acme/#:publish")
}

// beyond are manifests of thermo that each ask for more than
// strictAcmeGrant in one field, and the code each is packed with.
func beyond(t *testing.T, m *meta.Manifest, code []byte) map[string]struct {
	m    *meta.Manifest
	code []byte
} {
	next := func(edit func(*meta.Manifest)) *meta.Manifest {
		return variant(m, func(m *meta.Manifest) { m.Version = 2; edit(m) })
	}
	big := append(bytes.Clone(code), make([]byte, 64*meta.KiB)...)
	type ask = struct {
		m    *meta.Manifest
		code []byte
	}
	return map[string]ask{
		"memory":   {next(func(m *meta.Manifest) { m.Limits.Memory = 128 * meta.KiB }), code},
		"priority": {next(func(m *meta.Manifest) { m.Schedule.Priority = 6 }), code},
		"rate":     {next(func(m *meta.Manifest) { m.Endpoints[0].Rate = &meta.Rate{N: 21, Per: time.Second} }), code},
		"endpoint": {next(func(m *meta.Manifest) {
			m.Endpoints = append(m.Endpoints, meta.EndpointRule{Name: "actuator/led0", Ops: opSet(t, "write")})
		}), code},
		"code": {next(func(*meta.Manifest) {}), big},
	}
}

// TestTenantBeyondCeilingRefusedEveryMode: whatever the device's mode
// (owner key; insecure with an owner key), every verb a tenant signs that
// asks for more than its ceiling is refused, deploy and meta apply alike,
// and so is the same request from a key the device does not know; the owner
// is not bound by tenant ceilings (but is by the code size).
func TestTenantBeyondCeilingRefusedEveryMode(t *testing.T) {
	for _, mode := range []struct {
		name string
		cfg  device.Config
	}{
		{"secure", device.Config{Owner: pub(ownerKey)}},
		{"insecure", device.Config{Owner: pub(ownerKey), Insecure: true}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			td := openDevice(t, t.TempDir(), mode.cfg)
			td.mustExec(ownerKey, device.VerbTenantAdd, "", strictAcmeGrant(t))
			m, code := example(t, "thermo")
			td.mustDeploy(pack(t, m, code, acmeKey))
			signers := map[string]ed25519.PrivateKey{"acme": acmeKey}
			if mode.cfg.Insecure {
				signers["unknown key"] = otherKey
			}
			for what, ask := range beyond(t, m, code) {
				for who, key := range signers {
					_, err := td.deploy(pack(t, ask.m, ask.code, key))
					want := mgmt.ErrDenied
					if what == "code" {
						want = mgmt.ErrTooLarge
					}
					if !errors.Is(err, want) {
						t.Errorf("%s: deploy beyond the ceiling (%s): %v, want %v", who, what, err, want)
					}
					if what == "code" {
						continue
					}
					_, err = td.exec(key, device.VerbMetaApply, "thermo", manifestJSON(t, ask.m))
					if !errors.Is(err, mgmt.ErrDenied) {
						t.Errorf("%s: meta apply beyond the ceiling (%s): %v, want denied", who, what, err)
					}
				}
			}
			if st := td.status("thermo"); st.Version != 1 {
				t.Fatalf("a refused request changed thermo: %+v", st)
			}
			// The owner is not bound by the tenant's ceiling.
			asks := beyond(t, m, code)
			pri := asks["priority"].m
			td.mustExec(ownerKey, device.VerbMetaApply, "thermo", manifestJSON(t, pri))
			mem := variant(asks["memory"].m, func(m *meta.Manifest) { m.Version = 3 })
			if st := td.mustDeploy(pack(t, mem, code, ownerKey)); st.Version != 3 {
				t.Fatalf("owner deploy beyond the ceiling: %+v", st)
			}
			// Code size holds for everyone.
			big := variant(m, func(m *meta.Manifest) { m.Version = 4 })
			_, err := td.deploy(pack(t, big, asks["code"].code, ownerKey))
			wantErr(t, "owner deploy of code above max_code", err, mgmt.ErrTooLarge)
		})
	}
}

// TestInsecureOwnerDeployAndMetaApplyAgree is the regression test of the
// three authorizations that disagreed: on an insecure device with an owner
// key, a tenant's deploy beyond its ceiling was refused while a meta apply
// of the same manifest was accepted.
func TestInsecureOwnerDeployAndMetaApplyAgree(t *testing.T) {
	td := openDevice(t, t.TempDir(), device.Config{Owner: pub(ownerKey), Insecure: true})
	td.addTenants()
	m, code := td.deployThermo()
	over := variant(m, func(m *meta.Manifest) { m.Version = 2; m.Limits.Memory = 128 * meta.KiB })
	_, derr := td.deploy(pack(t, over, code, acmeKey))
	_, merr := td.exec(acmeKey, device.VerbMetaApply, "thermo", manifestJSON(t, over))
	if !errors.Is(derr, mgmt.ErrDenied) || !errors.Is(merr, mgmt.ErrDenied) {
		t.Fatalf("tenant beyond its ceiling: deploy %v, meta apply %v; want both denied", derr, merr)
	}
	// And the owner gets both.
	td.mustExec(ownerKey, device.VerbMetaApply, "thermo", manifestJSON(t, over))
	over3 := variant(over, func(m *meta.Manifest) { m.Version = 3 })
	td.mustDeploy(pack(t, over3, code, ownerKey))
}

// TestDeployOverAnotherTenantsContainerRefused: a tenant cannot take over
// a container of another tenant by deploying an image of the same name with
// a higher version (the upgrade path did not look at the installed
// container's tenant).
func TestDeployOverAnotherTenantsContainerRefused(t *testing.T) {
	td := newDevice(t)
	td.addTenants()
	m, code := td.deployThermo()
	hijack := variant(m, func(m *meta.Manifest) {
		m.Tenant, m.Version = "globex", 9
		m.Endpoints = []meta.EndpointRule{{Name: "log", Ops: opSet(t, "write")}}
	})
	_, err := td.deploy(pack(t, hijack, code, globexKey))
	wantErr(t, "globex deploy over acme's thermo", err, mgmt.ErrDenied)
	_, err = td.deploy(pack(t, hijack, code, ownerKey))
	wantErr(t, "owner deploy moving thermo to globex", err, mgmt.ErrConflict)
	if st := td.status("thermo"); st.Tenant != "acme" || st.Version != 1 {
		t.Fatalf("thermo changed hands: %+v", st)
	}
}

func TestAuthorize(t *testing.T) {
	acme := &meta.Ceiling{Tenant: "acme", MaxMemory: 64 * meta.KiB, MaxBudget: 10 * time.Millisecond,
		MaxPriority: 5, MaxCode: 1000}
	st := device.State{Ceilings: map[string]*meta.Ceiling{"acme": acme}}
	m := &meta.Manifest{Name: "x", Tenant: "acme", Version: 1, Runtime: meta.RuntimeWasm,
		Schedule: meta.Schedule{Trigger: meta.Once, Budget: time.Millisecond, Priority: 5, OnFault: meta.Stop, MaxFaults: 1},
		Limits:   meta.Limits{Memory: 64 * meta.KiB}}
	over := variant(m, func(m *meta.Manifest) { m.Schedule.Priority = 6 })
	owner := device.Signer{KeyID: "o", Owner: true}
	tenant := device.Signer{KeyID: "a", Tenant: "acme"}
	other := device.Signer{KeyID: "g", Tenant: "globex"}
	anon := device.Signer{KeyID: "?", Unverified: true}
	theirs := variant(m, func(m *meta.Manifest) { m.Tenant = "globex" })
	for i, c := range []struct {
		s    device.Signer
		r    device.Request
		want error
	}{
		{tenant, device.Request{Verb: device.VerbDeploy, Tenant: "acme", Manifest: m, CodeSize: 1000}, nil},
		{tenant, device.Request{Verb: device.VerbDeploy, Tenant: "acme", Manifest: m, CodeSize: 1001}, mgmt.ErrTooLarge},
		{tenant, device.Request{Verb: device.VerbDeploy, Tenant: "acme", Manifest: over}, mgmt.ErrDenied},
		{tenant, device.Request{Verb: device.VerbMetaApply, Tenant: "acme", Manifest: over}, mgmt.ErrDenied},
		{anon, device.Request{Verb: device.VerbMetaApply, Tenant: "acme", Manifest: over}, mgmt.ErrDenied},
		{owner, device.Request{Verb: device.VerbMetaApply, Tenant: "acme", Manifest: over}, nil},
		{owner, device.Request{Verb: device.VerbDeploy, Tenant: "acme", Manifest: over, CodeSize: 1001}, mgmt.ErrTooLarge},
		{other, device.Request{Verb: device.VerbStop, Tenant: "acme"}, mgmt.ErrDenied},
		{tenant, device.Request{Verb: device.VerbStop, Tenant: "acme"}, nil},
		{anon, device.Request{Verb: device.VerbStop, Tenant: "acme"}, nil},
		{tenant, device.Request{Verb: device.VerbTenantAdd, Tenant: "acme"}, mgmt.ErrDenied},
		{anon, device.Request{Verb: device.VerbTenantRevoke, Tenant: "acme"}, mgmt.ErrDenied},
		{owner, device.Request{Verb: device.VerbTenantRevoke, Tenant: "acme"}, nil},
		{tenant, device.Request{Verb: "reboot", Tenant: "acme"}, mgmt.ErrInvalid},
		{device.Signer{KeyID: "nobody"}, device.Request{Verb: device.VerbStop, Tenant: "acme"}, mgmt.ErrDenied},
		{tenant, device.Request{Verb: device.VerbDeploy, Tenant: "acme"}, mgmt.ErrInvalid},
		{tenant, device.Request{Verb: device.VerbDeploy, Tenant: "globex", Manifest: m}, mgmt.ErrInvalid},
		// A tenant without a grant: only the owner and (insecure) unverified signers.
		{other, device.Request{Verb: device.VerbDeploy, Tenant: "globex", Manifest: theirs}, mgmt.ErrDenied},
		{anon, device.Request{Verb: device.VerbDeploy, Tenant: "globex", Manifest: theirs}, nil},
		{owner, device.Request{Verb: device.VerbDeploy, Tenant: "globex", Manifest: theirs}, nil},
		// A container's tenant does not change.
		{tenant, device.Request{Verb: device.VerbDeploy, Tenant: "acme", Manifest: m, Installed: theirs}, mgmt.ErrDenied},
		{owner, device.Request{Verb: device.VerbDeploy, Tenant: "acme", Manifest: m, Installed: theirs}, mgmt.ErrConflict},
	} {
		err := device.Authorize(c.s, c.r, st)
		if (c.want == nil) != (err == nil) || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("case %d (%s %s by %s): %v, want %v", i, c.r.Verb, c.r.Tenant, c.s, err, c.want)
		}
	}
}

// TestIdentify: a transport other than CoAP finds the signer the same way.
func TestIdentify(t *testing.T) {
	td := newDevice(t)
	td.addTenants()
	sign := func(k ed25519.PrivateKey) (string, func(ed25519.PublicKey) error) {
		sc, err := trust.OpenCommand(signCmd(t, k, device.VerbStop, "x", nil))
		if err != nil {
			t.Fatal(err)
		}
		return sc.KeyID, sc.Verify
	}
	if s, err := td.mg.Identify(sign(ownerKey)); err != nil || !s.Owner {
		t.Fatalf("owner: %+v, %v", s, err)
	}
	if s, err := td.mg.Identify(sign(acmeKey)); err != nil || s.Tenant != "acme" || s.Owner {
		t.Fatalf("acme: %+v, %v", s, err)
	}
	_, err := td.mg.Identify(sign(otherKey))
	wantErr(t, "unknown key", err, mgmt.ErrDenied)
	id, _ := sign(acmeKey)
	_, err = td.mg.Identify(id, func(ed25519.PublicKey) error { return errors.New("bad signature") })
	wantErr(t, "bad signature", err, mgmt.ErrDenied)
	if err := td.mg.Authorize(device.Signer{KeyID: id, Tenant: "acme"}, device.Request{Verb: device.VerbStop, Tenant: "globex"}); !errors.Is(err, mgmt.ErrDenied) {
		t.Fatalf("Manager.Authorize: %v", err)
	}
}
