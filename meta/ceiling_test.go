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
		MaxPriority: DefaultMaxPriority, MaxCode: DefaultMaxCode,
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
		`{"name":"actuator/led0","ops":["read","write"]}],"max_memory":"128KiB","max_storage":"16KiB","max_budget":"5ms","min_period":"10ms",` +
		`"max_priority":7,"max_code":"1MiB"}`
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
		{`"min_period": "10ms"`, `"min_period": "10ms", "max_cpus": 1`, "max_cpus", "unknown field"},
		{`"min_period": "10ms"`, `"min_period": "10ms", "max_cpu": 101`, "max_cpu", "outside 1%..100%"},
		{`"min_period": "10ms"`, `"min_period": "10ms", "max_cpu": "0%"`, "max_cpu", "outside 1%..100%"},
		{`"min_period": "10ms"`, `"min_period": "10ms", "max_cpu": "x"`, "max_cpu", "not a percentage"},
		{`"min_period": "10ms"`, `"min_period": "10ms", "max_priority": 16`, "max_priority", "outside 0..15"},
		{`"min_period": "10ms"`, `"min_period": "10ms", "max_priority": -1`, "max_priority", "outside 0..15"},
		{`"min_period": "10ms"`, `"min_period": "10ms", "max_code": "5MiB"`, "max_code", "outside 1B..4MiB"},
		{`"min_period": "10ms"`, `"min_period": "10ms", "max_code": 0`, "max_code", "outside 1B..4MiB"},
		{`"min_period": "10ms"`, `"min_period": "10ms", "max_rate": [{"name": "log", "rate": "10/min"}]`, "max_rate[0].rate", "per second"},
		{`"min_period": "10ms"`, `"min_period": "10ms", "max_rate": [{"name": "log", "rate": "0/s"}]`, "max_rate[0].rate", "count must be"},
		{`"min_period": "10ms"`, `"min_period": "10ms", "max_rate": [{"name": "log"}]`, "max_rate[0].rate", "required"},
		{`"min_period": "10ms"`, `"min_period": "10ms", "max_rate": [{"name": "a/#/b", "rate": "1/s"}]`, "max_rate[0].name", "last level"},
		{`"min_period": "10ms"`, `"min_period": "10ms", "max_rate": [{"name": "log", "rate": "1/s", "x": 1}]`, "max_rate[0].x", "unknown field"},
		{`"min_period": "10ms"`, `"min_period": "10ms", "max_rate": [{"name": "log", "rate": "1/s"}, {"name": "log", "rate": "2/s"}]`, "max_rate[1].name", "duplicate pattern"},
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

// TestCeilingNewFields: the fields added in SPEC version 2 (max_priority,
// max_cpu, max_code, max_rate) parse, round-trip, and default when a grant
// written before them leaves them out.
func TestCeilingNewFields(t *testing.T) {
	doc := strings.Replace(ceilingJSON, `"min_period": "10ms"`, `"min_period": "10ms", "max_priority": 3, "max_cpu": "25%",
		"max_code": "2MiB", "max_rate": [{"name": "log", "rate": "100/s"}, {"name": "msg/acme/#", "rate": "50/s"}]`, 1)
	c, err := ParseCeiling([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := acmeCeiling()
	want.MaxPriority, want.MaxCPU, want.MaxCode = 3, 25, 2*MiB
	want.MaxRate = []RateCeiling{{Pattern: "log", N: 100}, {Pattern: "msg/acme/#", N: 50}}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
	j, err := c.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(j), `"max_priority":3,"max_cpu":25,"max_code":"2MiB","max_rate":[{"name":"log","rate":"100/s"},{"name":"msg/acme/#","rate":"50/s"}]`) {
		t.Fatalf("written as %s", j)
	}
	y, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range [][]byte{j, y} {
		if back, err := ParseCeiling(out); err != nil || !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip: %+v, %v\n%s", back, err, out)
		}
	}
	// A max_priority of 0 is a real value, not "unset".
	zero := strings.Replace(ceilingJSON, `"min_period": "10ms"`, `"min_period": "10ms", "max_priority": 0`, 1)
	if c, err := ParseCeiling([]byte(zero)); err != nil || c.MaxPriority != 0 {
		t.Fatalf("max_priority 0: %+v, %v", c, err)
	}
	// A grant of the first format keeps decoding, with the defaults.
	old, err := ParseCeiling([]byte(ceilingJSON))
	if err != nil || old.MaxPriority != DefaultMaxPriority || old.MaxCode != DefaultMaxCode || old.MaxCPU != 0 || old.MaxRate != nil {
		t.Fatalf("old grant: %+v, %v", old, err)
	}
}

func TestParseRateCeiling(t *testing.T) {
	good := map[string]RateCeiling{
		"log=100/s":      {Pattern: "log", N: 100},
		"msg/acme/#=5/s": {Pattern: "msg/acme/#", N: 5},
		"a=b=7/s":        {Pattern: "a=b", N: 7},
	}
	for in, want := range good {
		if got, err := ParseRateCeiling(in); err != nil || got != want {
			t.Errorf("ParseRateCeiling(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for in, reason := range map[string]string{
		"log":        "not PATTERN=N/s",
		"log=100":    "not a rate",
		"log=100/ms": "per second",
		"log=0/s":    "count must be",
		"=1/s":       "empty filter",
		"a/#/b=1/s":  "last level",
	} {
		_, err := ParseRateCeiling(in)
		var fe *FieldError
		if !errors.Is(err, ErrInvalidCeiling) || !errors.As(err, &fe) || fe.Field != "max_rate" || !strings.Contains(err.Error(), reason) {
			t.Errorf("ParseRateCeiling(%q) = %v; want a max_rate error with %q", in, err, reason)
		}
	}
}

func TestParsePercent(t *testing.T) {
	for in, want := range map[string]int{"1%": 1, "100%": 100, "25": 25} {
		if got, err := ParsePercent(in); err != nil || got != want {
			t.Errorf("ParsePercent(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "%", "0%", "101%", "-5%", "+5%", "5%%", "x"} {
		if _, err := ParsePercent(in); err == nil {
			t.Errorf("ParsePercent(%q) accepted", in)
		}
	}
}

func TestPermitsPriorityRateCode(t *testing.T) {
	c := acmeCeiling()
	c.MaxRate = []RateCeiling{{Pattern: "sensor/+", N: 100}, {Pattern: "msg/#", N: 10}}
	m := &Manifest{Name: "thermo", Tenant: "acme", Version: 1, Runtime: RuntimeWasm,
		Schedule: Schedule{Trigger: Periodic, Period: 10 * time.Millisecond, Budget: 5 * time.Millisecond,
			Priority: DefaultMaxPriority, OnFault: Restart, MaxFaults: 3},
		Limits: Limits{Memory: 64 * KiB},
		Endpoints: []EndpointRule{
			{Name: "sensor/temperature", Ops: abi.OpSetOf(abi.OpRead), Rate: &Rate{N: 100, Per: time.Second}},
			{Name: "msg/acme/#", Ops: abi.OpSetOf(abi.OpPublish)},
		}}
	if err := c.Permits(m); err != nil {
		t.Fatalf("at the ceiling: %v", err)
	}
	for i, tc := range []struct {
		edit  func(m *Manifest)
		field string
	}{
		{func(m *Manifest) { m.Schedule.Priority = DefaultMaxPriority + 1 }, "schedule.priority"},
		{func(m *Manifest) { m.Endpoints[0].Rate.N = 101 }, "endpoints[0].rate"},
		// 1/ms is 1,000 calls in one second.
		{func(m *Manifest) { m.Endpoints[0].Rate = &Rate{N: 1, Per: time.Millisecond} }, "endpoints[0].rate"},
		// A burst of 101 per minute fits in one second.
		{func(m *Manifest) { m.Endpoints[0].Rate = &Rate{N: 101, Per: time.Minute} }, "endpoints[0].rate"},
		// msg/acme/# overlaps msg/#.
		{func(m *Manifest) { m.Endpoints[1].Rate = &Rate{N: 11, Per: time.Second} }, "endpoints[1].rate"},
	} {
		mm := m.Clone()
		tc.edit(mm)
		err := c.Permits(mm)
		var fe *FieldError
		if !errors.Is(err, ErrCeiling) || !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("case %d: got %v, want an ErrCeiling on %q", i, err, tc.field)
		}
	}
	slow := m.Clone()
	slow.Endpoints[0].Rate = &Rate{N: 100, Per: time.Hour}
	slow.Endpoints[1].Rate = &Rate{N: 10, Per: time.Second}
	if err := c.Permits(slow); err != nil {
		t.Fatalf("rates within: %v", err)
	}
	if err := c.PermitsCode(DefaultMaxCode); err != nil {
		t.Fatal(err)
	}
	if err := c.PermitsCode(DefaultMaxCode + 1); !errors.Is(err, ErrCeiling) {
		t.Fatalf("code above max_code: %v", err)
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

// TestCeilingRates: the default rates of log and msg/# hold unless the
// grant names their pattern, and bound manifest rates like the grant's own.
func TestCeilingRates(t *testing.T) {
	c := acmeCeiling()
	if got := c.Rates(); !reflect.DeepEqual(got, DefaultRates()) {
		t.Fatalf("no max_rate: %+v", got)
	}
	c.MaxRate = []RateCeiling{{Pattern: "log", N: 5000}, {Pattern: "sensor/+", N: 10}}
	c.Allow = append(c.Allow, EndpointRule{Name: "log", Ops: abi.OpSetOf(abi.OpWrite)})
	want := []RateCeiling{{Pattern: "log", N: 5000}, {Pattern: "sensor/+", N: 10}, {Pattern: "msg/#", N: DefaultMsgRate}}
	if got := c.Rates(); !reflect.DeepEqual(got, want) {
		t.Fatalf("rates %+v, want %+v", got, want)
	}
	m := &Manifest{Name: "x", Tenant: "acme", Version: 1, Runtime: RuntimeWasm,
		Schedule: Schedule{Trigger: Once, Budget: time.Millisecond, OnFault: Stop, MaxFaults: 1},
		Limits:   Limits{Memory: 64 * KiB},
		Endpoints: []EndpointRule{{Name: "msg/acme/x", Ops: abi.OpSetOf(abi.OpPublish), Rate: &Rate{N: DefaultMsgRate + 1, Per: time.Second}},
			{Name: "log", Ops: abi.OpSetOf(abi.OpWrite), Rate: &Rate{N: 5000, Per: time.Second}}}}
	if err := c.Permits(m); !errors.Is(err, ErrCeiling) || !strings.Contains(err.Error(), "endpoints[0].rate") {
		t.Fatalf("a msg rate above the default: %v", err)
	}
	m.Endpoints[0].Rate.N = DefaultMsgRate
	if err := c.Permits(m); err != nil {
		t.Fatalf("log raised by the grant: %v", err)
	}
}
