package cli_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/trust"
)

// TestGrantCeilingFlags: the ceiling fields of SPEC version 2 reach the
// signed grant, their defaults included; bad values are bad input (exit 2).
func TestGrantCeilingFlags(t *testing.T) {
	dir := t.TempDir()
	keys(t, dir)
	p := func(n string) string { return filepath.Join(dir, n) }
	base := []string{"tenant", "grant", "--owner-key", p("owner.key"), "--tenant", "acme", "--pub", p("acme.pub"), "--allow", "log:write"}
	read := func(name string) *meta.Ceiling {
		t.Helper()
		b, err := os.ReadFile(p(name))
		if err != nil {
			t.Fatal(err)
		}
		owner, err := trust.LoadPublicKey(p("owner.pub"))
		if err != nil {
			t.Fatal(err)
		}
		g, err := trust.OpenGrant(b, owner)
		if err != nil {
			t.Fatal(err)
		}
		c, err := meta.ParseCeiling(g.CeilingJSON)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	must(t, 0, append(base, "-o", p("plain.grant"))...)
	if c := read("plain.grant"); c.MaxPriority != 7 || c.MaxCode != meta.MiB || c.MaxCPU != 0 || c.MaxRate != nil {
		t.Fatalf("defaults: %+v", c)
	}
	must(t, 0, append(base, "--max-priority", "3", "--max-cpu", "25%", "--max-code", "2MiB",
		"--max-rate", "log=100/s", "--max-rate", "msg/acme/#=50/s", "-o", p("full.grant"))...)
	c := read("full.grant")
	want := []meta.RateCeiling{{Pattern: "log", N: 100}, {Pattern: "msg/acme/#", N: 50}}
	if c.MaxPriority != 3 || c.MaxCPU != 25 || c.MaxCode != 2*meta.MiB || !reflect.DeepEqual(c.MaxRate, want) {
		t.Fatalf("flags: %+v", c)
	}
	for _, bad := range [][]string{
		{"--max-priority", "16"}, {"--max-cpu", "0%"}, {"--max-cpu", "150%"}, {"--max-code", "5MiB"},
		{"--max-code", "big"}, {"--max-rate", "log"}, {"--max-rate", "log=5/min"}, {"--max-rate", "log=1/s", "--max-rate", "log=2/s"},
	} {
		must(t, 2, append(append(base, bad...), "-o", p("bad.grant"))...)
	}
}
