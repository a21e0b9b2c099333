package meta

import (
	"strings"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/abi"
)

func TestMatch(t *testing.T) {
	cases := []struct {
		pattern, name string
		want          bool
	}{
		{"sensor/temperature", "sensor/temperature", true},
		{"sensor/temperature", "sensor/humidity", false},
		{"sensor/temperature", "sensor/temperature/x", false},
		{"sensor/temperature", "sensor", false},
		{"sensor/+", "sensor/light", true},
		{"sensor/+", "sensor", false},
		{"sensor/+", "sensor/", true}, // an empty level is a level
		{"sensor/+", "sensor/a/b", false},
		{"+/+", "a/b", true},
		{"+/b", "a/c", false},
		{"msg/acme/#", "msg/acme", true},
		{"msg/acme/#", "msg/acme/a", true},
		{"msg/acme/#", "msg/acme/a/b", true},
		{"msg/acme/#", "msg/acmex", false},
		{"msg/acme/#", "msg", false},
		{"msg/+/#", "msg/a", true},
		{"msg/+/#", "msg", false},
		{"#", "log", true},
		{"#", "a/b/c", true},
		{"#", "/", true},
		{"+", "log", true},
		{"+", "a/b", false},
		{"/+", "/a", true},
		{"a//b", "a//b", true},
		{"a/+/b", "a//b", true},
		{"kv", "kv", true},
		{"kv", "KV", false},
		// '$' names are not matched by a leading wildcard (MQTT 4.7.2).
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"a/#", "a/$x", true},
		// Invalid patterns match nothing.
		{"", "a", false},
		{"a/#/b", "a/x/b", false},
		{"a/#/b", "a", false},
		{"a/b#", "a/b#", false},
		{"a+/b", "a+/b", false},
		{"sensor/temp+", "sensor/temp+", false},
		// Names holding wildcards are matched by nothing.
		{"msg/acme/+", "msg/acme/#", false},
		{"msg/acme/#", "msg/acme/+", false},
		{"a/+", "a/+", false},
		{"#", "", false},
		{"", "", false},
	}
	for _, c := range cases {
		if got := Match(c.pattern, c.name); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pattern, c.name, got, c.want)
		}
	}
}

func TestCovers(t *testing.T) {
	cases := []struct {
		outer, inner string
		want         bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/+", "a/b", true},
		{"a/+", "a/+", true},
		{"a/b", "a/+", false},
		{"a/+", "a/#", false}, // a/# matches "a" and "a/b/c"
		{"a/+", "a/b/c", false},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"a/#", "a/+/c", true},
		{"a/#", "a/#", true},
		{"a/#", "a/+/#", true},
		{"a/#", "b/#", false},
		{"a/#", "#", false},
		{"a/+/#", "a/#", false}, // a/# matches "a", which a/+/# does not
		{"a/+/#", "a/b", true},
		{"a/+/#", "a/+", true},
		{"a/+/#", "a/+/c/#", true},
		{"#", "#", true},
		{"#", "a/+/#", true},
		{"#", "+", true},
		{"+", "#", false},
		{"+", "+/a", false},
		{"+/a", "+/a", true},
		{"+/+", "a/+", true},
		{"a", "a/#", false},
		{"a", "a/b", false},
		{"a/b", "a", false},
		{"msg/acme/#", "msg/acme/cmd/#", true},
		{"msg/acme/#", "msg/+/cmd", false},
		{"msg/#", "msg/acme/cmd/#", true},
		// '$' literals are only covered literally.
		{"#", "$SYS/a", false},
		{"+/a", "$SYS/a", false},
		{"$SYS/#", "$SYS/a", true},
		{"#", "+/a", true},
		{"a/#", "a/$x", true},
		// Invalid filters cover and are covered by nothing.
		{"a/#/b", "a/x/b", false},
		{"a/b", "a/b+", false},
		{"#", "", false},
		{"", "a", false},
	}
	for _, c := range cases {
		if got := Covers(c.outer, c.inner); got != c.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", c.outer, c.inner, got, c.want)
		}
	}
}

func TestValidFilterAndTopic(t *testing.T) {
	filters := []struct {
		s  string
		ok bool
	}{
		{"a", true}, {"#", true}, {"+", true}, {"a/+/b/#", true}, {"/", true}, {"a//b", true}, {"$SYS/#", true},
		{"sensor/température", true}, {strings.Repeat("a", MaxTopic), true},
		{"", false}, {"a/#/b", false}, {"a#", false}, {"a/b+", false}, {"++", false}, {"#/", false},
		{"a\x00b", false}, {"\xff", false}, {strings.Repeat("a", MaxTopic+1), false},
	}
	for _, c := range filters {
		if err := ValidFilter(c.s); (err == nil) != c.ok {
			t.Errorf("ValidFilter(%q) = %v, want ok=%v", c.s, err, c.ok)
		}
	}
	topics := []struct {
		s  string
		ok bool
	}{
		{"a", true}, {"acme/cmd/x", true}, {"/", true}, {"$SYS/x", true}, {strings.Repeat("a", MaxTopic), true},
		{"", false}, {"a/+", false}, {"#", false}, {"a#b", false}, {"a\x00", false}, {"\xc3", false},
		{strings.Repeat("a", MaxTopic+1), false},
	}
	for _, c := range topics {
		if err := ValidTopic(c.s); (err == nil) != c.ok {
			t.Errorf("ValidTopic(%q) = %v, want ok=%v", c.s, err, c.ok)
		}
	}
}

func TestLookup(t *testing.T) {
	m := &Manifest{Endpoints: []EndpointRule{
		{Name: "sensor/+", Ops: abi.OpSetOf(abi.OpRead)},
		{Name: "sensor/temperature", Ops: abi.OpSetOf(abi.OpRead), Rate: &Rate{N: 10, Per: time.Second}},
		{Name: "actuator/led0", Ops: abi.OpSetOf(abi.OpWrite)},
		{Name: "actuator/#", Ops: abi.OpSetOf(abi.OpRead), Rate: &Rate{N: 1, Per: time.Millisecond}},
		{Name: "msg/acme/#", Ops: abi.OpSetOf(abi.OpPublish)},
	}}
	cases := []struct {
		name string
		ops  abi.OpSet
		rate int
	}{
		{"sensor/temperature", abi.OpSetOf(abi.OpRead), 1},
		{"sensor/light", abi.OpSetOf(abi.OpRead), -1},
		{"actuator/led0", abi.OpSetOf(abi.OpRead, abi.OpWrite), 3},
		{"actuator/led1", abi.OpSetOf(abi.OpRead), 3},
		{"msg/acme", abi.OpSetOf(abi.OpPublish), -1},
		{"msg/acme/x/y", abi.OpSetOf(abi.OpPublish), -1},
		{"msg/acme/+", 0, -1},
		{"msg/other", 0, -1},
		{"kv", 0, -1},
		{"", 0, -1},
	}
	for _, c := range cases {
		ops, rate := m.Lookup(c.name)
		if ops != c.ops || rate != c.rate {
			t.Errorf("Lookup(%q) = %v, %d; want %v, %d", c.name, ops, rate, c.ops, c.rate)
		}
		if got := m.Allowed(c.name); got != c.ops {
			t.Errorf("Allowed(%q) = %v, want %v", c.name, got, c.ops)
		}
	}
	if ops, rate := (*Manifest)(nil).Lookup("kv"); ops != 0 || rate != -1 {
		t.Errorf("nil manifest Lookup = %v, %d", ops, rate)
	}
	if n := testing.AllocsPerRun(100, func() { m.Lookup("actuator/led0") }); n != 0 {
		t.Errorf("Lookup allocates %v times", n)
	}
}

func BenchmarkLookup(b *testing.B) {
	m, err := Parse([]byte(specExample))
	if err != nil {
		b.Fatal(err)
	}
	// A realistic 16-rule rulebook; the name looked up matches the last rule.
	for i := range 14 {
		m.Endpoints = append([]EndpointRule{{Name: "sensor/s" + itoa(i), Ops: abi.OpSetOf(abi.OpRead)}}, m.Endpoints...)
	}
	b.ReportAllocs()
	for b.Loop() {
		m.Lookup("msg/acme/cmd/x")
	}
}

func TestOverlaps(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"log", "log", true},
		{"log", "kv", false},
		{"msg/#", "msg/acme/x", true},
		{"msg/#", "msg", true},
		{"msg/acme/#", "msg/+/x", true},
		{"msg/acme/#", "msg/globex/#", false},
		{"msg/+", "msg/a/b", false},
		{"msg/+/#", "msg/a/b", true},
		{"+/x", "a/+", true},
		{"a/b", "a/b/c", false},
		{"a/b", "a/b/#", true},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/+", true},
		{"#", "anything/at/all", true},
		{"a/#/b", "a", false}, // invalid
	} {
		if got := Overlaps(c.a, c.b); got != c.want {
			t.Errorf("Overlaps(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
		if got := Overlaps(c.b, c.a); got != c.want {
			t.Errorf("Overlaps(%q, %q) = %v, want %v", c.b, c.a, got, c.want)
		}
	}
}
