package cli_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// TestTenantLsAndRevoke drives tenant ls and tenant revoke against a device
// process (SPEC section 6).
func TestTenantLsAndRevoke(t *testing.T) {
	_, p := deviceTest(t)
	must(t, 0, "pack", "--manifest", example("thermo"), "--key", p("acme.key"), "-o", p("thermo.img"))
	d := startDevice(t, "--data", p("state"), "--owner", p("owner.pub"))
	defer d.stop(t)
	dev := []string{"--device", d.addr}
	m := func(want int, args ...string) result { t.Helper(); return must(t, want, append(args, dev...)...) }

	if r := m(0, "tenant", "ls"); strings.TrimSpace(r.stdout) != "no tenants" {
		t.Fatalf("tenant ls of no tenants: %q", r.stdout)
	}
	if r := m(0, "tenant", "ls", "--json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("tenant ls --json of no tenants: %q", r.stdout)
	}
	m(0, "tenant", "add", p("acme.grant"), "--key", p("owner.key"))
	m(0, "tenant", "add", p("globex.grant"), "--key", p("owner.key"))
	m(0, "deploy", p("thermo.img"))
	r := m(0, "tenant", "ls")
	for _, want := range []string{"acme  key ", "1 container\n", "globex  key ", "0 containers", "max_memory: 64KiB",
		"max_priority: 7", "max_cpu: no cap", "rates in force: log=1000/s (default), msg/#=1000/s (default)"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("tenant ls lacks %q:\n%s", want, r.stdout)
		}
	}
	var ts []mgmt.TenantInfo
	if err := json.Unmarshal([]byte(m(0, "tenant", "ls", "--json").stdout), &ts); err != nil || len(ts) != 2 || ts[0].Name != "acme" || ts[0].Containers != 1 {
		t.Fatalf("tenant ls --json: %+v, %v", ts, err)
	}
	var c map[string]any
	if err := json.Unmarshal(ts[0].Ceiling, &c); err != nil || c["max_code"] != "1MiB" || c["tenant"] != "acme" {
		t.Fatalf("ceiling of tenant ls --json: %s, %v", ts[0].Ceiling, err)
	}

	m(1, "tenant", "revoke", "acme", "--key", p("acme.key")) // only the owner revokes
	m(1, "tenant", "revoke", "nobody", "--key", p("owner.key"))
	m(2, "tenant", "revoke", "acme")                  // unsigned
	m(2, "tenant", "revoke", "--key", p("owner.key")) // no tenant
	r = m(0, "tenant", "revoke", "acme", "--key", p("owner.key"))
	if strings.TrimSpace(r.stdout) != "revoked tenant acme: stopped thermo" {
		t.Fatalf("tenant revoke: %q", r.stdout)
	}
	if st := m(0, "status", "thermo", "--json").stdout; !strings.Contains(st, `"state": "stopped"`) {
		t.Fatalf("thermo after revoke: %s", st)
	}
	m(1, "start", "thermo", "--key", p("acme.key"))
	if err := json.Unmarshal([]byte(m(0, "tenant", "ls", "--json").stdout), &ts); err != nil || len(ts) != 1 || ts[0].Name != "globex" {
		t.Fatalf("tenant ls after revoke: %+v, %v", ts, err)
	}
}
