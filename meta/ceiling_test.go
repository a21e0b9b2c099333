package meta

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/abi"
)

const ceilingJSON = `{"tenant": "acme",
 "allow": [{"name": "sensor/+", "ops": ["read"]}, {"name": "msg/acme/#", "ops": ["publish"]},
           {"name": "actuator/led0", "ops": ["read", "write"]}],
 "max_memory": "128KiB", "max_storage": "16KiB", "max_budget": "5ms", "min_period": "10ms"}`

func acmeCeiling() *Ceiling {
	return &Ceiling{
		Tenant: "acme",
		Allow: []EndpointRule{
			{Name: "sensor/+", Ops: abi.OpSetOf(abi.OpRead)},
			{Name: "msg/acme/#", Ops: abi.OpSetOf(abi.OpPublish)},
			{Name: "actuator/led0", Ops: abi.OpSetOf(abi.OpRead, abi.OpWrite)},
		},
		MaxMemory: 128 * KiB, MaxStorage: 16 * KiB, MaxBudget: 5 * time.Millisecond, MinPeriod: 10 * time.Millisecond,
	}
}

func TestParseCeiling(t *testing.T) {
	c, err := ParseCeiling([]byte(ceilingJSON))
	if err != nil {
		t.Fatal(err)
	}
	if want := acmeCeiling(); !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
	y, err := ParseCeiling([]byte(`tenant: acme
allow:
  - {name: sensor/+, ops: [read]}
  - {name: msg/acme/#, ops: [publish]}
  - {name: actuator/led0, ops: [write, read]}
max_memory: 131072
max_storage: 16KiB
max_budget: 5ms
min_period: 10ms
`))
	if err != nil || !reflect.DeepEqual(y, c) {
		t.Fatalf("YAML form: %+v, %v", y, err)
	}
	j, err := c.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"tenant":"acme","allow":[{"name":"sensor/+","ops":["read"]},{"name":"msg/acme/#","ops":["publish"]},` +
		`{"name":"actuator/led0","ops":["read","write"]}],"max_memory":"128KiB","max_storage":"16KiB","max_budget":"5ms","min_period":"10ms"}`
	if string(j) != want {
		t.Fatalf("got  %s\nwant %s", j, want)
	}
	yb, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range [][]byte{j, yb} {
		back, err := ParseCeiling(out)
		if err != nil || !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip: %+v, %v\n%s", back, err, out)
		}
	}
	var embedded struct{ C Ceiling }
	embedded.C = *c
	var back struct{ C Ceiling }
	if err := roundTripJSON(embedded, &back); err != nil || !reflect.DeepEqual(back.C, *c) {
		t.Fatalf("embedded: %+v, %v", back.C, err)
	}
	// An empty grant is allowed and written as [].
	e, err := ParseCeiling([]byte(`{"tenant":"t","allow":[],"max_memory":0,"max_storage":0,"max_budget":"0s","min_period":"0s"}`))
	if err != nil || e.Allow != nil {
		t.Fatalf("empty allow: %+v, %v", e, err)
	}
	if j, _ := e.MarshalJSON(); !strings.Contains(string(j), `"allow":[]`) {
		t.Fatalf("empty allow written as %s", j)
	}
}

func TestParseCeilingRefuses(t *testing.T) {
	cases := []struct {
		old, new, field, reason string
	}{
		{`"tenant": "acme",`, ``, "tenant", "required"},
		{`"tenant": "acme"`, `"tenant": "ACME"`, "tenant", "must match"},
		{`"max_memory": "128KiB", `, ``, "max_memory", "required"},
		{`"max_memory": "128KiB"`, `"max_memory": "1TiB"`, "max_memory", "not a size"},
		{`"max_memory": "128KiB"`, `"max_memory": "1GiB"`, "max_memory", "above 256MiB"},
		{`"max_storage": "16KiB"`, `"max_storage": "65MiB"`, "max_storage", "above 64MiB"},
		{`"max_budget": "5ms"`, `"max_budget": "11s"`, "max_budget", "outside 0s..10s"},
		{`"max_budget": "5ms"`, `"max_budget": "-1s"`, "max_budget", "outside"},
		{`"max_budget": "5ms"`, `"max_budget": 5`, "max_budget", "duration string"},
		{`"min_period": "10ms"`, `"min_period": "25h"`, "min_period", "outside 0s..24h"},
		{`"min_period": "10ms"`, `"min_period": "10ms", "min_period": "10ms"`, "min_period", "duplicate key"},
		{`"min_period": "10ms"`, `"min_period": "10ms", "max_cpu": 1`, "max_cpu", "unknown field"},
		{`"ops": ["publish"]`, `"ops": ["publish"], "rate": "1/s"`, "allow[1].rate", "unknown field (allowed: name, ops)"},
		{`"ops": ["publish"]`, `"ops": ["pub"]`, "allow[1].ops[0]", `unknown op "pub"`},
		{`"ops": ["publish"]`, `"ops": []`, "allow[1].ops", "at least one op"},
		{`"name": "sensor/+"`, `"name": "sensor/+x"`, "allow[0].name", "whole level"},
		{`"allow": [`, `"allow": 5, "x": [`, "allow", "must be a list"},
	}
	for _, c := range cases {
		doc := strings.Replace(ceilingJSON, c.old, c.new, 1)
		if doc == ceilingJSON {
			t.Fatalf("case %q does not apply", c.old)
		}
		checkFieldErr(t, doc, ErrInvalidCeiling, c.field, c.reason)
	}
	checkFieldErr(t, "", ErrInvalidCeiling, "", "empty document")
	checkFieldErr(t, "[1]", ErrInvalidCeiling, "", "must be a mapping")
	var c Ceiling
	if err := c.UnmarshalJSON([]byte(`{}`)); !errors.Is(err, ErrInvalidCeiling) {
		t.Fatalf("UnmarshalJSON: %v", err)
	}
	if _, err := (&Ceiling{Tenant: "a", Allow: make([]EndpointRule, MaxAllow+1)}).MarshalJSON(); !errors.Is(err, ErrInvalidCeiling) {
		t.Fatalf("too many allow rules marshalled: %v", err)
	}
}

func TestParseAllow(t *testing.T) {
	good := map[string]EndpointRule{
		"sensor/+:read":                              {Name: "sensor/+", Ops: abi.OpSetOf(abi.OpRead)},
		"msg/acme/#:publish":                         {Name: "msg/acme/#", Ops: abi.OpSetOf(abi.OpPublish)},
		"actuator/led0:write,read":                   {Name: "actuator/led0", Ops: abi.OpSetOf(abi.OpRead, abi.OpWrite)},
		"kv:get, put ,delete":                        {Name: "kv", Ops: abi.OpSetOf(abi.OpGet, abi.OpPut, abi.OpDelete)},
		"urn:x:y:invoke":                             {Name: "urn:x:y", Ops: abi.OpSetOf(abi.OpInvoke)},
		"#:read,write,get,put,delete,publish,invoke": {Name: "#", Ops: allOps},
	}
	for in, want := range good {
		got, err := ParseAllow(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseAllow(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for in, reason := range map[string]string{
		"sensor/+":       "not PATTERN:op,op",
		"sensor/+:":      `unknown op ""`,
		"sensor/+:reed":  `unknown op "reed"`,
		"sensor/+:read,": `unknown op ""`,
		"kv:get,get":     "duplicate op",
		":read":          "empty filter",
		"a/#/b:read":     "last level",
		"a\tb:read":      "printable",
	} {
		_, err := ParseAllow(in)
		var fe *FieldError
		if !errors.Is(err, ErrInvalidCeiling) || !errors.As(err, &fe) || !strings.HasPrefix(fe.Field, "allow") || !strings.Contains(err.Error(), reason) {
			t.Errorf("ParseAllow(%q) = %v; want an allow error with %q", in, err, reason)
		}
	}
}

func TestPermits(t *testing.T) {
	c := acmeCeiling()
	ok := func() *Manifest {
		return &Manifest{Name: "thermo", Tenant: "acme", Version: 1, Runtime: RuntimeWasm,
			Schedule: Schedule{Trigger: Periodic, Period: 10 * time.Millisecond, Budget: 5 * time.Millisecond,
				OnFault: Restart, MaxFaults: 3},
			Limits: Limits{Memory: 128 * KiB, Storage: 16 * KiB},
			Endpoints: []EndpointRule{
				{Name: "sensor/temperature", Ops: abi.OpSetOf(abi.OpRead), Rate: &Rate{N: 10, Per: time.Second}},
				{Name: "sensor/+", Ops: abi.OpSetOf(abi.OpRead)},
				{Name: "msg/acme/x/#", Ops: abi.OpSetOf(abi.OpPublish)},
				{Name: "actuator/led0", Ops: abi.OpSetOf(abi.OpRead, abi.OpWrite)},
			}}
	}
	if err := ok().Validate(); err != nil {
		t.Fatal(err)
	}
	if err := c.Permits(ok()); err != nil {
		t.Fatalf("at the ceiling: %v", err)
	}
	event := ok()
	event.Schedule = Schedule{Trigger: Event, Topics: []string{"acme/cmd/#", "acme/+/x"}, Budget: time.Millisecond,
		OnFault: Stop, MaxFaults: 1}
	if err := c.Permits(event); err != nil {
		t.Fatalf("event within the ceiling: %v", err)
	}
	cases := []struct {
		edit  func(m *Manifest)
		field string
	}{
		{func(m *Manifest) { m.Tenant = "evil" }, "tenant"},
		{func(m *Manifest) { m.Limits.Memory++ }, "limits.memory"},
		{func(m *Manifest) { m.Limits.Storage = 16*KiB + 1 }, "limits.storage"},
		{func(m *Manifest) { m.Schedule.Budget = 6 * time.Millisecond }, "schedule.budget"},
		{func(m *Manifest) { m.Schedule.Period = 9 * time.Millisecond }, "schedule.period"},
		{func(m *Manifest) { m.Endpoints[1].Ops |= abi.OpSetOf(abi.OpWrite) }, "endpoints[1]"},
		{func(m *Manifest) { m.Endpoints[2].Name = "msg/#" }, "endpoints[2]"},
		{func(m *Manifest) { m.Endpoints[2].Name = "msg/+/x" }, "endpoints[2]"},
		{func(m *Manifest) { m.Endpoints[3].Name = "actuator/+" }, "endpoints[3]"},
		{func(m *Manifest) {
			m.Endpoints = append(m.Endpoints, EndpointRule{Name: "kv", Ops: abi.OpSetOf(abi.OpGet)})
		}, "endpoints[4]"},
		{func(m *Manifest) { m.Endpoints[0].Name = "sensor/#" }, "endpoints[0]"},
		{func(m *Manifest) { m.Schedule.Topics = []string{"acme/x", "other/x"} }, "schedule.topics[1]"},
		{func(m *Manifest) { m.Schedule.Topics = []string{"#"} }, "schedule.topics[0]"},
		{func(m *Manifest) { m.Schedule.Topics = []string{"acme/#/"} }, "schedule.topics[0]"},
	}
	for i, tc := range cases {
		m := ok()
		tc.edit(m)
		err := c.Permits(m)
		var fe *FieldError
		if !errors.Is(err, ErrCeiling) || !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("case %d: got %v, want an ErrCeiling on %q", i, err, tc.field)
		}
	}
	// A topic is covered by any allow pattern on its msg/ endpoint, whatever
	// its ops; a once trigger has no period for min_period to bound.
	once := ok()
	once.Schedule = Schedule{Trigger: Once, Topics: []string{"acme/a"}, Budget: time.Millisecond, OnFault: Restart, MaxFaults: 3}
	if err := c.Permits(once); err != nil {
		t.Fatalf("once: %v", err)
	}
	if err := c.Permits(nil); !errors.Is(err, ErrCeiling) {
		t.Fatalf("nil manifest: %v", err)
	}
	if err := (*Ceiling)(nil).Permits(ok()); !errors.Is(err, ErrCeiling) {
		t.Fatalf("nil ceiling: %v", err)
	}
}
