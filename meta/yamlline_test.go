package meta

import (
	"errors"
	"strings"
	"testing"
)

// TestYAMLErrorLineIsTheLineToFix: the YAML parser said "line 5" for a tab
// on line 6 (issue 13); every syntax error must name the line to fix.
func TestYAMLErrorLineIsTheLineToFix(t *testing.T) {
	const head = "name: thermo\ntenant: acme\nversion: 1\nruntime: wasm\nschedule:\n"
	for _, c := range []struct{ doc, want string }{
		{head + "\ttrigger: periodic\n", "line 6: "},
		{head + "  trigger: periodic\n\tbudget: 5ms\n", "line 7: found a tab character"},
		{head + "  trigger: [periodic\nlimits: {}\n", "line 6: did not find expected"},
		{head + "  trigger: periodic\n- x\n", "line 7: did not find expected key"},
		{head + "  trigger: periodic: x\n", "line 6: mapping values are not allowed"},
		{head + "  trigger: \"periodic\n", "line 6: found unexpected end of stream"},
		{head + "  trigger: @x\n", "line 6: found character that cannot start any token"},
	} {
		_, err := Parse([]byte(c.doc))
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error with %q", c.doc, err, c.want)
		}
	}
}
