package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFleetACL(t *testing.T) {
	dir := t.TempDir()
	keys(t, dir)
	grants(t, dir)
	p := func(n string) string { return filepath.Join(dir, n) }
	out := p("broker")
	must(t, 0, "fleet", "acl", "--owner", p("owner.pub"), "--tenant", "acme="+p("acme.pub"), "--tenant", "globex="+p("globex.pub"),
		"--grant", p("acme.grant"), "--device", "dev-1,dev-2", "--device", "dev-3", "-o", out)
	acl, err := os.ReadFile(filepath.Join(out, "acl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"pattern write tc/v1/dev/%u/status", "user _tenant-globex", "user dev-3", "topic readwrite acme/#"} {
		if !strings.Contains(string(acl), want) {
			t.Errorf("acl lacks %q:\n%s", want, acl)
		}
	}
	for _, u := range []string{"_owner", "_tenant-acme", "_tenant-globex", "dev-1", "dev-2", "dev-3"} {
		if _, err := os.Stat(filepath.Join(out, "passwords", u)); err != nil {
			t.Error(err)
		}
	}
	// Writing again over the same files is refused; so is a grant signed by
	// another key than the owner's, one for a tenant not given, or one whose
	// tenant key is not the one given.
	must(t, 2, "fleet", "acl", "--owner", p("owner.pub"), "--device", "dev-1", "-o", out)
	must(t, 2, "fleet", "acl", "--owner", p("acme.pub"), "--tenant", "acme="+p("acme.pub"), "--grant", p("acme.grant"), "--device", "d", "-o", p("b2"))
	must(t, 2, "fleet", "acl", "--owner", p("owner.pub"), "--grant", p("acme.grant"), "--device", "d", "-o", p("b3"))
	must(t, 2, "fleet", "acl", "--owner", p("owner.pub"), "--tenant", "acme="+p("globex.pub"), "--grant", p("acme.grant"), "--device", "d", "-o", p("b4"))
	must(t, 2, "fleet", "acl", "--owner", p("owner.pub"), "--device", "bad/id", "-o", p("b5"))
	must(t, 2, "fleet", "acl", "--owner", p("owner.pub"), "-o", p("b6"))
}
