package meta

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// matchRef is Match written the obvious way, over split levels.
func matchRef(pattern, name string) bool {
	if filterSyntax(pattern) != nil || name == "" || strings.ContainsAny(name, "+#") {
		return false
	}
	if name[0] == '$' && (pattern[0] == '+' || pattern[0] == '#') {
		return false
	}
	p, n := strings.Split(pattern, "/"), strings.Split(name, "/")
	for i, level := range p {
		switch {
		case level == "#":
			return true
		case i == len(n):
			return false
		case level != "+" && level != n[i]:
			return false
		}
	}
	return len(p) == len(n)
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{specExample, specJSON, base, minimal, minimalEvent, "", "{}", "a: &x 1\nb: *x\n",
		"name: [\n", `{"name": 1e3}`, "schedule: {trigger: periodic, period: 1ms}\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			var fe *FieldError
			if !errors.Is(err, ErrInvalid) || !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FieldError wrapping ErrInvalid", err)
			}
			return
		}
		j, err := m.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON of a parsed manifest: %v", err)
		}
		y, err := m.YAML()
		if err != nil {
			t.Fatalf("YAML of a parsed manifest: %v", err)
		}
		for _, out := range [][]byte{j, y} {
			back, err := Parse(out)
			if err != nil {
				t.Fatalf("reparse: %v\n%s", err, out)
			}
			if !reflect.DeepEqual(back, m) {
				t.Fatalf("round trip changed\n%s\n got %+v\nwant %+v", out, back, m)
			}
		}
		if !reflect.DeepEqual(m.Clone(), m) {
			t.Fatal("Clone differs")
		}
	})
}

func FuzzParseCeiling(f *testing.F) {
	for _, s := range []string{ceilingJSON, "tenant: a\nallow: []\nmax_memory: 1\nmax_storage: 0\nmax_budget: 1s\nmin_period: 0s\n", "", "[]",
		"tenant: a\nallow: []\nmax_memory: 1\nmax_storage: 0\nmax_budget: 1s\nmin_period: 0s\nmax_priority: 0\nmax_cpu: 25%\nmax_code: 2MiB\nmax_rate: [{name: log, rate: 10/s}, {name: 'msg/#', rate: 5/s}]\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCeiling(data)
		if err != nil {
			var fe *FieldError
			if !errors.Is(err, ErrInvalidCeiling) || !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FieldError wrapping ErrInvalidCeiling", err)
			}
			return
		}
		j, err := c.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON of a parsed ceiling: %v", err)
		}
		back, err := ParseCeiling(j)
		if err != nil || !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip: %+v, %v\n%s", back, err, j)
		}
	})
}

// FuzzMatchCovers checks Covers against Match: if outer covers inner, every
// name inner matches, outer matches too; and a valid filter covers itself.
func FuzzMatchCovers(f *testing.F) {
	seeds := [][3]string{
		{"a/#", "a/+/c", "a/b/c"}, {"#", "+", "x"}, {"a/+/#", "a/b", "a/b"}, {"+/+", "$SYS/+", "$SYS/x"},
		{"#", "$x/#", "$x"}, {"a//#", "a//b", "a//b"}, {"a/#", "a", "a"}, {"a/+", "a/#", "a/b/c"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, outer, inner, name string) {
		if got, want := Match(inner, name), matchRef(inner, name); got != want {
			t.Fatalf("Match(%q, %q) = %v, the level-by-level reference says %v", inner, name, got, want)
		}
		if Covers(outer, inner) && Match(inner, name) && !Match(outer, name) {
			t.Fatalf("Covers(%q, %q) but %q matches only the inner", outer, inner, name)
		}
		// Two patterns that match one name overlap, both ways round.
		if Match(outer, name) && Match(inner, name) && (!Overlaps(outer, inner) || !Overlaps(inner, outer)) {
			t.Fatalf("%q and %q both match %q but do not overlap", outer, inner, name)
		}
		if Overlaps(outer, inner) != Overlaps(inner, outer) {
			t.Fatalf("Overlaps(%q, %q) is not symmetric", outer, inner)
		}
		if filterSyntax(inner) == nil && !Covers(inner, inner) {
			t.Fatalf("%q does not cover itself", inner)
		}
		// A topic name is a filter matching exactly itself.
		if validTopicSyntax(name) && Match(inner, name) != Covers(inner, name) {
			t.Fatalf("Match(%q, %q) = %v but Covers = %v", inner, name, Match(inner, name), Covers(inner, name))
		}
	})
}
