package msg

import (
	"errors"
	"strings"
	"testing"
)

func TestValidTopic(t *testing.T) {
	good := []string{"a", "a/b", "/", "a//b", "acme/cmd/led", "ä/ü", strings.Repeat("x", MaxTopicLen)}
	for _, s := range good {
		if err := ValidTopic(s); err != nil {
			t.Errorf("ValidTopic(%q) = %v, want nil", s, err)
		}
	}
	bad := []string{"", "a/+", "a/#", "+", "a+b", "$SYS/x", "a\x00b", "\xff", strings.Repeat("x", MaxTopicLen+1)}
	for _, s := range bad {
		if err := ValidTopic(s); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("ValidTopic(%q) = %v, want ErrInvalidTopic", s, err)
		}
	}
}

func TestValidFilter(t *testing.T) {
	good := []string{"#", "+", "a/#", "a/+/b", "+/+", "/#", "a//+", "$SYS/#", "a"}
	for _, s := range good {
		if err := ValidFilter(s); err != nil {
			t.Errorf("ValidFilter(%q) = %v, want nil", s, err)
		}
	}
	bad := []string{"", "a/#/b", "a#", "a/b+", "++", "##", "#/", "$share/g/a", "a\x00", "\xc3", strings.Repeat("a", MaxTopicLen+1)}
	for _, s := range bad {
		if err := ValidFilter(s); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("ValidFilter(%q) = %v, want ErrInvalidTopic", s, err)
		}
	}
}

func TestMatch(t *testing.T) {
	cases := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"a/+", "a/b", true},
		{"a/+", "a/", true},
		{"a/+", "a", false},
		{"a/+", "a/b/c", false},
		{"+/+", "/x", true},
		{"+", "/x", false},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"a/#", "ab", false},
		{"#", "a/b", true},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"$SYS/+", "$SYS/x", true},
		{"/#", "/", true},
		{"/#", "a", false},
		{"a/+/c/#", "a/b/c", true},
		{"a/+/c/#", "a/b/d", false},
	}
	for _, c := range cases {
		if got := Match(c.filter, c.topic); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
		if got := refMatch(c.filter, c.topic); got != c.want {
			t.Errorf("refMatch(%q, %q) = %v, want %v (reference matcher broken)", c.filter, c.topic, got, c.want)
		}
	}
}

// refMatch is a deliberately naive MQTT matcher used as the oracle in tests.
func refMatch(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	var rec func(f, t []string) bool
	rec = func(f, t []string) bool {
		switch {
		case len(f) == 0:
			return len(t) == 0
		case f[0] == "#":
			return true
		case len(t) == 0:
			return false
		case f[0] == "+" || f[0] == t[0]:
			return rec(f[1:], t[1:])
		}
		return false
	}
	return rec(strings.Split(filter, "/"), strings.Split(topic, "/"))
}

func FuzzMatch(f *testing.F) {
	seeds := [][2]string{
		{"a/#", "a"}, {"+/+", "/x"}, {"#", "$SYS/a"}, {"a/+/c", "a//c"}, {"$SYS/+", "$SYS/x"},
		{"/", "/"}, {"+", ""}, {"a/#/b", "a/x/b"}, {"a\x00", "a\x00"}, {"\xff/#", "\xff"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, filter, topic string) {
		ferr, terr := ValidFilter(filter), validInbound(topic)
		if ferr != nil && !errors.Is(ferr, ErrInvalidTopic) {
			t.Fatalf("ValidFilter(%q) error %v does not wrap ErrInvalidTopic", filter, ferr)
		}
		if terr != nil && !errors.Is(terr, ErrInvalidTopic) {
			t.Fatalf("validInbound(%q) error %v does not wrap ErrInvalidTopic", topic, terr)
		}
		if ValidTopic(topic) == nil {
			if terr != nil {
				t.Fatalf("ValidTopic accepts %q but validInbound refuses it", topic)
			}
			if ValidFilter(topic) != nil {
				t.Fatalf("valid topic %q is not a valid filter", topic)
			}
			if !Match(topic, topic) {
				t.Fatalf("topic %q does not match itself", topic)
			}
		}
		if ferr != nil || terr != nil {
			return
		}
		got, want := Match(filter, topic), refMatch(filter, topic)
		if got != want {
			t.Fatalf("Match(%q, %q) = %v, reference says %v", filter, topic, got, want)
		}
		if Match("#", topic) == strings.HasPrefix(topic, "$") {
			t.Fatalf(`Match("#", %q) wrong for '$' rule`, topic)
		}
	})
}

func BenchmarkMatch(b *testing.B) {
	for b.Loop() {
		Match("acme/+/sensors/#", "acme/dev42/sensors/temp/raw")
	}
}
