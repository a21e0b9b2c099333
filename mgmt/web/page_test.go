package web

import (
	"strings"
	"testing"
)

// Both pages render in the one frame (layout.html): every block filled,
// each with its own script, and the containers table with a device column
// on the fleet's page only.
func TestPagesShareTheFrame(t *testing.T) {
	for _, c := range []struct {
		name      string
		want, not []string
	}{
		{"device.html", []string{`<title>TinyContainer device</title>`, `src="/assets/device.js"`, `id="tenants"`, `id="logs"`,
			`id="audit"`, `href="/metrics"`, `id="containers"`, `id="empty"`}, []string{`<th>device</th>`, `id="rollouts"`}},
		{"fleet.html", []string{`<title>TinyContainer fleet</title>`, `src="/assets/fleet.js"`, `id="rollouts"`, `id="devices"`,
			`<th>activity</th><th>device</th><th>container</th>`, `href="/api/rollouts"`, `id="containers"`, `id="empty"`},
			[]string{`id="logs"`, `href="/metrics"`}},
	} {
		b, err := render(c.name)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		page := string(b)
		if !strings.HasPrefix(page, "<!doctype html>") || strings.Contains(page, "{{") {
			t.Errorf("%s: not rendered: %.80q", c.name, page)
		}
		for _, w := range c.want {
			if !strings.Contains(page, w) {
				t.Errorf("%s: %s missing", c.name, w)
			}
		}
		for _, n := range c.not {
			if strings.Contains(page, n) {
				t.Errorf("%s: %s present", c.name, n)
			}
		}
	}
}
