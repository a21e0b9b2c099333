package meta

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/abi"
)

// specExample is the manifest of SPEC section 5, verbatim.
const specExample = `name: thermo              # [a-z0-9][a-z0-9-]{0,31}, unique on a device
tenant: acme              # must match the tenant of the signing key
version: 3                # an install or update with version <= the installed one is refused
runtime: wasm             # wasm | ebpf
code: thermo.wasm         # path relative to the manifest (for pack and run)
schedule:
  trigger: periodic       # periodic | event | once
  period: 100ms           # periodic
  topics: ["acme/cmd/#"]  # event: activate on each message on these topics (MQTT wildcards)
  budget: 5ms             # the longest one activation may run; the watchdog stops it past this
  priority: 5             # 0 (lowest) .. 15
  on_fault: restart       # restart | stop
  max_faults: 3           # consecutive faults before the container goes to state "faulted"
limits:
  memory: 64KiB           # guest memory ceiling
  storage: 4KiB           # kv quota
endpoints:                # default deny: only what is listed here is reachable
  - name: sensor/temperature
    ops: [read]
    rate: 10/s            # optional; beyond it calls get -EAGAIN
  - name: msg/acme/#      # MQTT-style wildcards allowed in names
    ops: [publish]
`

func specManifest() *Manifest {
	return &Manifest{
		Name: "thermo", Tenant: "acme", Version: 3, Runtime: "wasm", Code: "thermo.wasm",
		Schedule: Schedule{
			Trigger: Periodic, Period: 100 * time.Millisecond, Topics: []string{"acme/cmd/#"},
			Budget: 5 * time.Millisecond, Priority: 5, OnFault: Restart, MaxFaults: 3,
		},
		Limits: Limits{Memory: 64 * KiB, Storage: 4 * KiB},
		Endpoints: []EndpointRule{
			{Name: "sensor/temperature", Ops: abi.OpSetOf(abi.OpRead), Rate: &Rate{N: 10, Per: time.Second}},
			{Name: "msg/acme/#", Ops: abi.OpSetOf(abi.OpPublish)},
		},
	}
}

func mustParse(t *testing.T, doc string) *Manifest {
	t.Helper()
	m, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, doc)
	}
	return m
}

func TestParseSpecExample(t *testing.T) {
	m := mustParse(t, specExample)
	if want := specManifest(); !reflect.DeepEqual(m, want) {
		t.Fatalf("got  %+v\nwant %+v", m, want)
	}
}

const specJSON = `{
  "name": "thermo", "tenant": "acme", "version": 3, "runtime": "wasm", "code": "thermo.wasm",
  "schedule": {"trigger": "periodic", "period": "100ms", "topics": ["acme/cmd/#"], "budget": "5ms",
               "priority": 5, "on_fault": "restart", "max_faults": 3},
  "limits": {"memory": "64KiB", "storage": 4096},
  "endpoints": [
    {"name": "sensor/temperature", "ops": ["read"], "rate": "10/s"},
    {"name": "msg/acme/#", "ops": ["publish"]}
  ]
}`

func TestParseJSONEqualsYAML(t *testing.T) {
	y, j := mustParse(t, specExample), mustParse(t, specJSON)
	if !reflect.DeepEqual(y, j) {
		t.Fatalf("YAML %+v\nJSON %+v", y, j)
	}
	// A YAML flow mapping starts like JSON but is read as YAML.
	flow := mustParse(t, "{name: a, tenant: b, version: 1, runtime: wasm, schedule: {trigger: once}}")
	if !reflect.DeepEqual(flow, mustParse(t, minimal)) {
		t.Fatalf("flow mapping: %+v", flow)
	}
	// A UTF-8 byte order mark and leading blank lines do not change the syntax.
	if b := mustParse(t, "\uFEFF\n  "+specJSON); !reflect.DeepEqual(b, j) {
		t.Fatalf("with BOM: %+v", b)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, doc := range []string{specExample, specJSON, minimal, minimalEvent, `
name: x
tenant: "1"
version: 18446744073709551615
runtime: ebpf
code: a/../b/c.o
schedule: {trigger: periodic, period: 90s, budget: 250us, priority: 15, on_fault: stop, max_faults: 1000}
limits: {memory: 1000kB, storage: 1500}
endpoints:
  - {name: "a: b/+/#", ops: [invoke, read, write, get, put, delete, publish], rate: 1000000000/h}
  - {name: "$SYS/yes", ops: [read], rate: 1/ms}
  - {name: "2024-01-01", ops: [read], rate: 7/min}
  - {name: "true", ops: [read]}
`} {
		m := mustParse(t, doc)
		j, err := m.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		y, err := m.YAML()
		if err != nil {
			t.Fatal(err)
		}
		for _, out := range [][]byte{j, y} {
			back, err := Parse(out)
			if err != nil {
				t.Fatalf("reparse: %v\n%s", err, out)
			}
			if !reflect.DeepEqual(back, m) {
				t.Fatalf("round trip changed the manifest\n%s\n got %+v\nwant %+v", out, back, m)
			}
		}
		if c := m.Clone(); !reflect.DeepEqual(c, m) {
			t.Fatalf("Clone differs: %+v", c)
		}
	}
}

func TestMarshalForm(t *testing.T) {
	m := specManifest()
	j, err := m.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"thermo","tenant":"acme","version":3,"runtime":"wasm","code":"thermo.wasm",` +
		`"schedule":{"trigger":"periodic","period":"100ms","topics":["acme/cmd/#"],"budget":"5ms","priority":5,"on_fault":"restart","max_faults":3},` +
		`"limits":{"memory":"64KiB","storage":"4KiB"},` +
		`"endpoints":[{"name":"sensor/temperature","ops":["read"],"rate":"10/s"},{"name":"msg/acme/#","ops":["publish"]}]}`
	if string(j) != want {
		t.Fatalf("got  %s\nwant %s", j, want)
	}
	// A Manifest value, not only a pointer, marshals in the SPEC form.
	type wrapper struct{ M Manifest }
	if _, err := (&Manifest{}).MarshalJSON(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid manifest marshalled: %v", err)
	}
	w := wrapper{M: *m}
	var back wrapper
	if err := roundTripJSON(w, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.M, *m) {
		t.Fatalf("embedded round trip: %+v", back.M)
	}
	y, err := m.YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"period: 100ms", "memory: 64KiB", "ops: [read]", "rate: 10/s", "name: msg/acme/#"} {
		if !strings.Contains(string(y), line) {
			t.Errorf("YAML lacks %q:\n%s", line, y)
		}
	}
	// No endpoints: an empty list, not null.
	e := mustParse(t, minimal)
	if j, _ := e.MarshalJSON(); !strings.Contains(string(j), `"endpoints":[]`) {
		t.Fatalf("empty endpoints: %s", j)
	}
}

const minimal = `name: a
tenant: b
version: 1
runtime: wasm
schedule: {trigger: once}
`

const minimalEvent = `{"name": "a", "tenant": "b", "version": 1, "runtime": "ebpf",
 "schedule": {"trigger": "event", "topics": ["acme/+/cmd", "#"]}}`

func TestDefaults(t *testing.T) {
	m := mustParse(t, minimal)
	want := &Manifest{Name: "a", Tenant: "b", Version: 1, Runtime: "wasm",
		Schedule: Schedule{Trigger: Once, Budget: 10 * time.Millisecond, OnFault: Restart, MaxFaults: 3},
		Limits:   Limits{Memory: 64 * KiB}}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("got  %+v\nwant %+v", m, want)
	}
	// A period shorter than the default budget lowers the default budget.
	p := mustParse(t, strings.Replace(minimal, "{trigger: once}", "{trigger: periodic, period: 2ms}", 1))
	if p.Schedule.Budget != 2*time.Millisecond {
		t.Fatalf("budget default with period 2ms: %v", p.Schedule.Budget)
	}
	p = mustParse(t, strings.Replace(minimal, "{trigger: once}", "{trigger: periodic, period: 1s}", 1))
	if p.Schedule.Budget != DefaultBudget {
		t.Fatalf("budget default with period 1s: %v", p.Schedule.Budget)
	}
	if e := mustParse(t, strings.Replace(minimal, "runtime: wasm", "runtime: wasm\nendpoints: []", 1)); e.Endpoints != nil {
		t.Fatalf("empty endpoints not nil: %#v", e.Endpoints)
	}
}

// base is the SPEC example without comments; each bad case replaces one
// piece of it.
const base = `name: thermo
tenant: acme
version: 3
runtime: wasm
code: thermo.wasm
schedule:
  trigger: periodic
  period: 100ms
  budget: 5ms
  priority: 5
  on_fault: restart
  max_faults: 3
limits:
  memory: 64KiB
  storage: 4KiB
endpoints:
  - name: sensor/temperature
    ops: [read]
    rate: 10/s
  - name: msg/acme/#
    ops: [publish]
  - name: ml
    ops: [invoke]
`

func TestParseRefuses(t *testing.T) {
	mustParse(t, base)
	long := strings.Repeat("a", 129)
	cases := []struct {
		old, new string
		field    string // FieldError.Field
		reason   string // in the message
	}{
		{"name: thermo", "name: Thermo", "name", "must match"},
		{"name: thermo", "name: -x", "name", "must match"},
		{"name: thermo", "name: " + strings.Repeat("a", 33), "name", "must match"},
		{"name: thermo", "name: 1234", "name", "must be a string, not an integer"},
		{"name: thermo\n", "", "name", "required"},
		{"name: thermo", "name: ''", "name", "required"},
		{"name: thermo", "name: null", "name", "not null"},
		{"name: thermo", "name: [a]", "name", "not a list"},
		{"tenant: acme", "tenant: ac_me", "tenant", "must match"},
		{"tenant: acme\n", "", "tenant", "required"},
		{"version: 3", "version: 0", "version", ">= 1"},
		{"version: 3", "version: -1", "version", "negative"},
		{"version: 3", "version: 3.0", "version", "not a fractional number"},
		{"version: 3", `version: "3"`, "version", "not a string"},
		{"version: 3", "version: 0x3", "version", "plain decimal"},
		{"version: 3", "version: 03", "version", "plain decimal"},
		{"version: 3", "version: 18446744073709551616", "version", "out of range"},
		{"version: 3\n", "", "version", "required"},
		{"runtime: wasm", "runtime: jvm", "runtime", `"jvm" is not wasm or ebpf`},
		{"runtime: wasm\n", "", "runtime", "required"},
		{"code: thermo.wasm", "code: /etc/passwd", "code", "relative"},
		{"code: thermo.wasm", "code: ../x.wasm", "code", "escapes"},
		{"code: thermo.wasm", "code: a/../../x.wasm", "code", "escapes"},
		{"code: thermo.wasm", `code: 'a\b.wasm'`, "code", "separator"},
		{"code: thermo.wasm", "code: 'C:x.wasm'", "code", "relative"},
		{"code: thermo.wasm", "code: a/..", "code", "does not name a file"},
		{"code: thermo.wasm", "code: dir/", "code", "does not name a file"},
		{"code: thermo.wasm", `code: "a\tb"`, "code", "printable"},
		{"schedule:\n  trigger: periodic\n  period: 100ms\n  budget: 5ms\n  priority: 5\n  on_fault: restart\n  max_faults: 3\n", "", "schedule", "required"},
		{"trigger: periodic", "trigger: sometimes", "schedule.trigger", `"sometimes" is not periodic`},
		{"  trigger: periodic\n", "", "schedule.trigger", "required"},
		{"period: 100ms", "period: 0s", "schedule.period", "outside 1ms..24h"},
		{"period: 100ms", "period: 25h", "schedule.period", "outside 1ms..24h"},
		{"period: 100ms", "period: 100", "schedule.period", "duration string"},
		{"period: 100ms", "period: 100 ms", "schedule.period", `"100 ms" is not a duration`},
		{"  period: 100ms\n", "", "schedule.period", "outside"},
		{"trigger: periodic", "trigger: once", "schedule.period", "only allowed with trigger periodic"},
		{"trigger: periodic\n  period: 100ms", "trigger: event\n  period: 100ms\n  topics: [a]", "schedule.period", "only allowed"},
		{"trigger: periodic\n  period: 100ms", "trigger: event", "schedule.topics", "required for trigger event"},
		{"trigger: periodic\n  period: 100ms", "trigger: event\n  topics: []", "schedule.topics", "must not be empty"},
		{"trigger: periodic\n  period: 100ms", "trigger: event\n  topics: [a/#/b]", "schedule.topics[0]", "last level"},
		{"trigger: periodic\n  period: 100ms", "trigger: event\n  topics: [a, b, a]", "schedule.topics[2]", "duplicate"},
		{"trigger: periodic\n  period: 100ms", "trigger: event\n  topics: [a, 5]", "schedule.topics[1]", "must be a string"},
		{"trigger: periodic\n  period: 100ms", "trigger: event\n  topics: [\"\"]", "schedule.topics[0]", "empty filter"},
		{"trigger: periodic\n  period: 100ms", "trigger: event\n  topics: a", "schedule.topics", "must be a list"},
		{"budget: 5ms", "budget: 5 ms", "schedule.budget", `"5 ms" is not a duration`},
		{"budget: 5ms", "budget: 5us", "schedule.budget", "outside 10us..10s"},
		{"budget: 5ms", "budget: 11s", "schedule.budget", "outside 10us..10s"},
		{"budget: 5ms", "budget: -1ms", "schedule.budget", "outside"},
		{"budget: 5ms", "budget: 200ms", "schedule.budget", "longer than schedule.period 100ms"},
		{"budget: 5ms", "budget: 99999999999h", "schedule.budget", "not a duration"},
		{"priority: 5", "priority: 16", "schedule.priority", "outside 0..15"},
		{"priority: 5", "priority: -1", "schedule.priority", "outside 0..15"},
		{"priority: 5", "priority: 99999999999999999999", "schedule.priority", "out of range"},
		{"priority: 5", "priority: high", "schedule.priority", "must be an integer"},
		{"on_fault: restart", "on_fault: retry", "schedule.on_fault", `"retry" is not restart or stop`},
		{"max_faults: 3", "max_faults: 0", "schedule.max_faults", "outside 1..1000"},
		{"max_faults: 3", "max_faults: 1001", "schedule.max_faults", "outside 1..1000"},
		{"max_faults: 3", "max_faults: 3\n  maxfaults: 3", "schedule.maxfaults", "unknown field"},
		{"max_faults: 3", "max_faults: 3\n  max_faults: 4", "schedule.max_faults", "duplicate key"},
		{"memory: 64KiB", "memory: 512B", "limits.memory", "outside 1KiB..256MiB"},
		{"memory: 64KiB", "memory: 257MiB", "limits.memory", "outside"},
		{"memory: 64KiB", "memory: 64KB", "limits.memory", "not a size"},
		{"memory: 64KiB", "memory: 64 KiB", "limits.memory", "not a size"},
		{"memory: 64KiB", "memory: KiB", "limits.memory", "not a size"},
		{"memory: 64KiB", "memory: -5", "limits.memory", "negative"},
		{"memory: 64KiB", "memory: 1.5", "limits.memory", "must be a size"},
		{"memory: 64KiB", "memory: 99999999999GiB", "limits.memory", "out of range"},
		{"memory: 64KiB", "memory: 99999999999999999999", "limits.memory", "out of range"},
		{"storage: 4KiB", "storage: 65MiB", "limits.storage", "above the maximum 64MiB"},
		{"storage: 4KiB", "storage: 4KiB\n  disk: 1", "limits.disk", "unknown field"},
		{"limits:\n  memory: 64KiB\n  storage: 4KiB\n", "limits: 5\n", "limits", "must be a mapping"},
		{"name: sensor/temperature", "name: sensor/temp+", "endpoints[0].name", "whole level"},
		{"name: sensor/temperature", "name: '#/x'", "endpoints[0].name", "last level"},
		{"name: sensor/temperature", "name: ''", "endpoints[0].name", "empty filter"},
		{"name: sensor/temperature", "name: " + long, "endpoints[0].name", "longer than 128"},
		{"name: sensor/temperature", `name: "sensor/t\u00e9"`, "endpoints[0].name", "printable ASCII"},
		{"name: sensor/temperature", `name: "a\u0000b"`, "endpoints[0].name", "printable ASCII"},
		{"  - name: sensor/temperature\n", "  - \n", "endpoints[0].name", "required"},
		{"ops: [read]", "ops: []", "endpoints[0].ops", "at least one op"},
		{"ops: [read]", "ops: read", "endpoints[0].ops", "must be a list"},
		{"ops: [read]\n    rate: 10/s", "rate: 10/s", "endpoints[0].ops", "required"},
		{"ops: [read]", "ops: [read, read]", "endpoints[0].ops[1]", `duplicate op "read"`},
		{"ops: [invoke]", "ops: [reed]", "endpoints[2].ops[0]", `unknown op "reed"`},
		{"ops: [invoke]", "ops: [1]", "endpoints[2].ops[0]", "must be a string"},
		{"rate: 10/s", "rate: 10/sec", "endpoints[0].rate", "not a rate"},
		{"rate: 10/s", "rate: 0/s", "endpoints[0].rate", "count must be"},
		{"rate: 10/s", "rate: -1/s", "endpoints[0].rate", "not a rate"},
		{"rate: 10/s", "rate: 1000000001/s", "endpoints[0].rate", "count must be"},
		{"rate: 10/s", "rate: /s", "endpoints[0].rate", "not a rate"},
		{"rate: 10/s", "rate: 10", "endpoints[0].rate", "must be a string"},
		{"rate: 10/s", "rate: 10/s\n    burst: 3", "endpoints[0].burst", "unknown field"},
		{"endpoints:\n", "endpoints: 3\nx:\n", "endpoints", "must be a list"},
		{"runtime: wasm", "runtime: wasm\nruntime: wasm", "runtime", "duplicate key"},
		{"runtime: wasm", "runtime: wasm\nRuntime: wasm", "Runtime", "unknown field"},
		{"runtime: wasm", "runtime: !!binary d2FzbQ==", "runtime", "unsupported YAML tag"},
		{"runtime: wasm", "runtime: !custom wasm", "runtime", "unsupported YAML tag"},
		{"runtime: wasm", "runtime: &r wasm", "runtime", "anchors"},
		{"runtime: wasm", "runtime: &r wasm\nlimits2: *r", "runtime", "anchors"},
	}
	for _, c := range cases {
		doc := strings.Replace(base, c.old, c.new, 1)
		if doc == base {
			t.Fatalf("case %q does not apply to the base", c.old)
		}
		checkFieldErr(t, doc, ErrInvalid, c.field, c.reason)
	}
	many := base + strings.Repeat("  - {name: kv, ops: [get]}\n", MaxEndpoints-3)
	mustParse(t, many)
	checkFieldErr(t, many+"  - {name: kv, ops: [put]}\n", ErrInvalid, "endpoints", "65 entries, at most 64")
}

func checkFieldErr(t *testing.T, doc string, class error, field, reason string) {
	t.Helper()
	var err error
	if class == ErrInvalid {
		_, err = Parse([]byte(doc))
	} else {
		_, err = ParseCeiling([]byte(doc))
	}
	if err == nil {
		t.Errorf("accepted:\n%s", doc)
		return
	}
	var fe *FieldError
	if !errors.Is(err, class) || !errors.As(err, &fe) {
		t.Errorf("error %v does not wrap %v as a *FieldError", err, class)
		return
	}
	if fe.Field != field || !strings.Contains(err.Error(), reason) {
		t.Errorf("got field %q, error %q; want field %q and %q\n%s", fe.Field, err, field, reason, doc)
	}
	if field != "" && !strings.Contains(err.Error(), field+": ") {
		t.Errorf("message %q does not name %q", err, field)
	}
}

func TestParseRefusesDocuments(t *testing.T) {
	cases := []struct {
		doc, field, reason string
	}{
		{"", "", "empty document"},
		{" \n\t", "", "empty document"},
		{"# only a comment\n", "", "empty document"},
		{"---\n", "", "must be a mapping, not null"},
		{"- a\n- b\n", "", "must be a mapping, not a list"},
		{"just text", "", "must be a mapping, not a string"},
		{base + "---\nname: x\n", "", "only one YAML document"},
		{"name: [unclosed\n", "", "yaml:"},
		{"name: a\n\tversion: 1\n", "", "yaml:"},
		{"a: &x [1]\nb: *x\n", "a", "anchors"},
		{"*x\n", "", "yaml:"},
		{"<<: {name: a}\n", "", "merge keys"},
		{"? [a]\n: 1\n", "", "keys must be plain strings"},
		{"\xff: 1\n", "", "not valid UTF-8"},
		{"{\"name\": \"a\" \"b\"}", "", "JSON syntax error on line 1"},
		{"{name: a, name: b}", "name", "duplicate key"},
		{"{\"name\": \"a\"", "", "JSON document ends early"},
		{"{\"name\": \"a\"} {}", "", "unexpected data after the JSON document"},
		{"{\"name\": \"a\", \"name\": \"a\"}", "name", "duplicate key"},
		{"{\n\"name\": \"a\",\n\"x\": [1, 2]]}", "", "JSON syntax error on line 3"},
		{`{"schedule": {"trigger": {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}}}`, "schedule.trigger.a.b.c.d.e.f", "nested too deeply"},
		{"a:\n b:\n  c:\n   d:\n    e:\n     f:\n      g:\n       h:\n        i: 1\n", "a.b.c.d.e.f.g.h", "nested too deeply"},
		{strings.Repeat("[", 40) + strings.Repeat("]", 40), "[0][0][0][0][0][0][0][0]", "nested too deeply"},
		{strings.Repeat("[", 20000) + strings.Repeat("]", 20000), "", "depth"},
		{strings.Repeat("{", 20000) + strings.Repeat("}", 20000), "", "JSON"},
		{"x: " + strings.Repeat("a", MaxDocument), "", "larger than 65536"},
		{manyKeys("k%d: 1\n", ""), "", "more than 32 keys"},
		{"x: [" + strings.Repeat("1,", 300) + "1]", "x", "more than 256 items"},
		{`{"x": [` + strings.Repeat("1,", 300) + "1]}", "x", "more than 256 items"},
		{manyKeys(`"k%d": 1,`, "{") + `"z": 1}`, "", "more than 32 keys"},
	}
	for _, c := range cases {
		checkFieldErr(t, c.doc, ErrInvalid, c.field, c.reason)
	}
}

// An alias bomb (each level doubling the last) is refused at the first
// anchor, before anything is expanded.
func TestParseAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x]\n")
	for i := 1; i < 30; i++ {
		b.WriteString("a" + itoa(i) + ": &a" + itoa(i) + " [*a" + itoa(i-1) + ", *a" + itoa(i-1) + "]\n")
	}
	b.WriteString("name: *a29\n")
	checkFieldErr(t, b.String(), ErrInvalid, "a0", "anchors")
}

var itoa = strconv.Itoa

func manyKeys(format, prefix string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for i := range 40 {
		fmt.Fprintf(&b, format, i)
	}
	return b.String()
}

func roundTripJSON(in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

func TestUnits(t *testing.T) {
	sizes := []struct {
		in   string
		want uint64
	}{
		{"0", 0}, {"0B", 0}, {"1B", 1}, {"1500", 1500}, {"1KiB", 1024}, {"64KiB", 65536}, {"2MiB", 2 << 20},
		{"1GiB", 1 << 30}, {"4kB", 4000}, {"3MB", 3_000_000}, {"1GB", 1_000_000_000},
		{"18446744073709551615", 1<<64 - 1}, {"16777215GiB", 16777215 << 30},
	}
	for _, s := range sizes {
		if got, err := parseSize(s.in); err != nil || got != s.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", s.in, got, err, s.want)
		}
	}
	for _, bad := range []string{"", "B", "1 B", "1b", "1kib", "1KB", "1K", "+1", "-1", "1.5KiB", "0x10", "17179869184GiB", "18446744073709551616"} {
		if v, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", bad, v)
		}
	}
	formats := map[uint64]string{0: "0B", 1: "1B", 1000: "1kB", 1024: "1KiB", 1500: "1500B", 65536: "64KiB",
		3 << 20: "3MiB", 1 << 30: "1GiB", 2_000_000: "2MB", 5_000_000_000: "5GB", 1024000: "1000KiB"}
	for n, want := range formats {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
		if back, err := parseSize(formatSize(n)); err != nil || back != n {
			t.Errorf("parseSize(formatSize(%d)) = %d, %v", n, back, err)
		}
	}
	durs := map[time.Duration]string{0: "0ns", time.Hour: "1h", 90 * time.Minute: "90m", 90 * time.Second: "90s",
		100 * time.Millisecond: "100ms", 250 * time.Microsecond: "250us", 1500 * time.Microsecond: "1500us", 7: "7ns",
		-5 * time.Millisecond: "-5ms"}
	for d, want := range durs {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
		if back, err := time.ParseDuration(want); err != nil || back != d {
			t.Errorf("ParseDuration(%q) = %v, %v", want, back, err)
		}
	}
	rates := map[string]Rate{"1/ms": {1, time.Millisecond}, "10/s": {10, time.Second}, "5/min": {5, time.Minute},
		"1000000000/h": {MaxRateN, time.Hour}}
	for in, want := range rates {
		if got, err := parseRate(in); err != nil || *got != want {
			t.Errorf("parseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "10", "10/", "/s", "0/s", "+1/s", "1.5/s", "10/S", "10/m", "10/s/s", " 10/s", "99999999999999999999/s"} {
		if r, err := parseRate(bad); err == nil {
			t.Errorf("parseRate(%q) = %v, want an error", bad, r)
		}
	}
}

func TestValidateStruct(t *testing.T) {
	good := specManifest()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (*Manifest)(nil).Validate(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("nil manifest: %v", err)
	}
	cases := []struct {
		edit  func(m *Manifest)
		field string
	}{
		{func(m *Manifest) { m.Endpoints[0].Rate = &Rate{N: 1, Per: 2 * time.Second} }, "endpoints[0].rate"},
		{func(m *Manifest) { m.Endpoints[0].Rate = &Rate{N: 0, Per: time.Second} }, "endpoints[0].rate"},
		{func(m *Manifest) { m.Endpoints[1].Ops = 1 }, "endpoints[1].ops"},
		{func(m *Manifest) { m.Endpoints[1].Ops = 1 << 9 }, "endpoints[1].ops"},
		{func(m *Manifest) { m.Endpoints[1].Ops = 0 }, "endpoints[1].ops"},
		{func(m *Manifest) { m.Endpoints = make([]EndpointRule, MaxEndpoints+1) }, "endpoints"},
		{func(m *Manifest) { m.Schedule.Topics = make([]string, MaxTopics+1) }, "schedule.topics"},
		{func(m *Manifest) { m.Schedule.Topics = []string{} }, "schedule.topics"},
		{func(m *Manifest) { m.Schedule.OnFault = "" }, "schedule.on_fault"},
		{func(m *Manifest) { m.Schedule.Trigger = Event; m.Schedule.Period = 0; m.Schedule.Topics = nil }, "schedule.topics"},
		{func(m *Manifest) { m.Code = strings.Repeat("a", MaxCodePath+1) }, "code"},
		{func(m *Manifest) { m.Schedule.Topics = []string{strings.Repeat("a", MaxTopic+1)} }, "schedule.topics[0]"},
	}
	for i, c := range cases {
		m := good.Clone()
		c.edit(m)
		err := m.Validate()
		var fe *FieldError
		if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) || fe.Field != c.field {
			t.Errorf("case %d: got %v, want an error on %q", i, err, c.field)
		}
	}
	// Clone is deep: editing the copy leaves the original alone.
	c := good.Clone()
	c.Endpoints[0].Rate.N = 99
	c.Schedule.Topics[0] = "x"
	c.Endpoints[1].Name = "y"
	if !reflect.DeepEqual(good, specManifest()) {
		t.Fatal("Clone shares memory with the original")
	}
	if (*Manifest)(nil).Clone() != nil {
		t.Fatal("Clone(nil) != nil")
	}
}

func TestUnmarshalJSONRefuses(t *testing.T) {
	var m Manifest
	err := m.UnmarshalJSON([]byte(`{"name": "a"}`))
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("got %v", err)
	}
}

// BenchmarkParse measures the SPEC example and the worst 64 KiB documents
// found for the parser (all refused), so a hostile manifest's cost is known.
func BenchmarkParse(b *testing.B) {
	fill := func(prefix, unit, suffix string) []byte {
		n := (MaxDocument - len(prefix) - len(suffix)) / len(unit)
		return []byte(prefix + strings.Repeat(unit, n) + suffix)
	}
	docs := []struct {
		name string
		doc  []byte
	}{
		{"spec-yaml", []byte(specExample)},
		{"spec-json", []byte(specJSON)},
		{"hostile-flow-list", fill("x: [", "1,", "1]")},
		{"hostile-block-list", fill("x:\n", "- a\n", "")},
		{"hostile-nesting", fill("", "[", "")},
		{"hostile-aliases", fill("a: &a [x]\nb: [", "*a,", "*a]")},
		{"hostile-json-list", fill(`{"x": [`, "1,", "1]}")},
		{"hostile-long-string", fill("x: '", "a", "'")},
	}
	for _, d := range docs {
		b.Run(d.name, func(b *testing.B) {
			b.SetBytes(int64(len(d.doc)))
			b.ReportAllocs()
			for b.Loop() {
				Parse(d.doc)
			}
		})
	}
}

func TestParseSizeExported(t *testing.T) {
	if v, err := ParseSize("64KiB"); err != nil || v != 64*KiB {
		t.Fatalf("ParseSize(64KiB) = %d, %v", v, err)
	}
	if _, err := ParseSize("64 KiB"); err == nil || !strings.Contains(err.Error(), `"64 KiB" is not a size`) {
		t.Fatalf("ParseSize(64 KiB): %v", err)
	}
}
