package cli_test

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinycontainer/tinycontainer/fleet/ctl/ctltest"
	"github.com/tinycontainer/tinycontainer/fleet/doc"
	"github.com/tinycontainer/tinycontainer/internal/testbroker"
	"github.com/tinycontainer/tinycontainer/internal/testwait"
	"github.com/tinycontainer/tinycontainer/trust"
)

// packThermo writes thermo at version v as NAME.img signed by acme.
func packThermo(t *testing.T, dir string, v int) string {
	t.Helper()
	y, err := os.ReadFile("../examples/thermo/thermo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	code, err := os.ReadFile("../examples/thermo/thermo.wasm")
	if err != nil {
		t.Fatal(err)
	}
	m := strings.Replace(string(y), "version: 1", fmt.Sprintf("version: %d", v), 1)
	mf := filepath.Join(dir, fmt.Sprintf("thermo-v%d.yaml", v))
	if err := os.WriteFile(mf, []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "thermo.wasm"), code, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, fmt.Sprintf("thermo-v%d.img", v))
	must(t, 0, "pack", "--manifest", mf, "--key", filepath.Join(dir, "acme.key"), "-o", out)
	return out
}

// TestFleetVerbs drives the fleet verbs against a real mosquitto and
// stand-in devices: read verbs, a rollout that completes, one whose
// canary faults (aborted, exit 1, devices back), and bad input.
func TestFleetVerbs(t *testing.T) {
	dir := t.TempDir()
	keys(t, dir)
	br := testbroker.Start(t)
	pub, err := trust.LoadPublicKey(filepath.Join(dir, "acme.pub"))
	if err != nil {
		t.Fatal(err)
	}
	var devs []*ctltest.Device
	for i := range 4 {
		labels := map[string]string{"site": "lab", "floor": fmt.Sprint(i % 2)}
		devs = append(devs, ctltest.Start(t, br.URL(), fmt.Sprintf("dev-%d", i), labels, "acme", ed25519.PublicKey(pub), doc.DesiredContainer{}, 2))
	}
	b := []string{"--broker", br.URL(), "--settle", "200ms"}
	fleet := func(want int, args ...string) result {
		t.Helper()
		return must(t, want, append(append([]string{"fleet"}, args...), b...)...)
	}
	testbroker.WaitFor(t, "four devices online", func() bool {
		var ds []map[string]any
		r := tc(append([]string{"fleet", "devices", "--json"}, b...)...)
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &ds) == nil && len(ds) == 4
	})
	var ds []map[string]any
	if err := json.Unmarshal([]byte(fleet(0, "devices", "--json", "--selector", "floor=1").stdout), &ds); err != nil || len(ds) != 2 {
		t.Fatalf("devices floor=1: %v %v", ds, err)
	}
	for _, f := range []string{"id", "labels", "online", "last_seen", "containers", "version"} {
		if _, ok := ds[0][f]; !ok {
			t.Errorf("fleet devices --json lacks %q: %v", f, ds[0])
		}
	}
	if out := fleet(0, "devices").stdout; !strings.Contains(out, "dev-3") || !strings.Contains(out, "floor=1,site=lab") {
		t.Errorf("fleet devices:\n%s", out)
	}

	// Version 1 everywhere: the first line is the rollout's id.
	v1 := packThermo(t, dir, 1)
	r := fleet(0, "rollout", v1, "--key", filepath.Join(dir, "acme.key"), "--all", "--canary", "25%", "--wave", "50%", "--health", "200ms")
	t.Logf("rollout:\n%s", r.stdout)
	id, _, _ := strings.Cut(r.stdout, "\n")
	if doc.ValidID(id) != nil || !strings.Contains(r.stdout, "completed") {
		t.Fatalf("rollout output:\n%s", r.stdout)
	}
	for _, d := range devs {
		if d.Version() != 1 {
			t.Fatalf("%s runs %d", d.ID, d.Version())
		}
	}
	var cs []map[string]any
	if err := json.Unmarshal([]byte(fleet(0, "ps", "--json").stdout), &cs); err != nil || len(cs) != 4 {
		t.Fatalf("fleet ps: %v %v", cs, err)
	}
	for _, f := range append(specFields, "device", "health") {
		if _, ok := cs[0][f]; !ok {
			t.Errorf("fleet ps --json lacks %q: %v", f, cs[0])
		}
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(fleet(0, "status", id, "--json", "--pub", filepath.Join(dir, "acme.pub")).stdout), &st); err != nil {
		t.Fatal(err)
	}
	if st["state"] != "COMPLETED" || st["verified"] != true {
		t.Fatalf("status: %v", st)
	}
	out := fleet(0, "status", id).stdout
	t.Logf("status:\n%s", out)
	if !strings.Contains(out, "SUCCEEDED") || !strings.Contains(out, "canary") {
		t.Fatalf("status:\n%s", out)
	}

	// Version 2 faults: the canary aborts the rollout, exit 1, and the
	// canary device is back on version 1.
	v2 := packThermo(t, dir, 2)
	r = fleet(1, "rollout", v2, "--key", filepath.Join(dir, "acme.key"), "--selector", "site=lab", "--canary", "25%", "--health", "200ms", "--json")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var first, last map[string]any
	if json.Unmarshal([]byte(lines[0]), &first) != nil || json.Unmarshal([]byte(lines[len(lines)-1]), &last) != nil ||
		first["event"] != "created" || first["rollout"] == "" || last["event"] != "aborted" {
		t.Fatalf("rollout --json:\n%s", r.stdout)
	}
	// The abort publishes the canary's way back; the device applies it
	// when the message arrives, which on a busy machine may be after the
	// rollout verb returned (it failed here so, "dev-2 runs 2, ran [1 2]").
	for _, d := range devs {
		testwait.For(t, d.ID+" back on version 1", func() bool { return d.Version() == 1 })
	}
	// Aborting an aborted rollout is done already; a completed one cannot be.
	fleet(0, "abort", first["rollout"].(string), "--key", filepath.Join(dir, "acme.key"))
	fleet(1, "abort", id, "--key", filepath.Join(dir, "acme.key"))

	// Bad input: exit 2, nothing published.
	fleet(2, "rollout", v2, "--key", filepath.Join(dir, "acme.key"))                                 // no selector
	fleet(2, "rollout", v2, "--key", filepath.Join(dir, "acme.key"), "--selector", "site")           // bad selector
	fleet(2, "rollout", v2, "--key", filepath.Join(dir, "globex.key"), "--all")                      // another tenant's key
	fleet(2, "rollout", v2, "--key", filepath.Join(dir, "acme.key"), "--all", "--canary", "120%")    // bad percentage
	fleet(2, "rollout", v1, "--key", filepath.Join(dir, "acme.key"), "--selector", "site=elsewhere") // nobody
	fleet(2, "status", "no/such")
	fleet(1, "status", "no-such-rollout")
	must(t, 1, "fleet", "devices", "--broker", "mqtt://127.0.0.1:1", "--timeout", "300ms")
}
