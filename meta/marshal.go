package meta

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// The wire structs fix field order and spelling of the SPEC form, shared by
// the JSON and YAML encoders.
type manifestWire struct {
	Name      string       `json:"name" yaml:"name"`
	Tenant    string       `json:"tenant" yaml:"tenant"`
	Version   uint64       `json:"version" yaml:"version"`
	Runtime   string       `json:"runtime" yaml:"runtime"`
	Code      string       `json:"code,omitempty" yaml:"code,omitempty"`
	Schedule  scheduleWire `json:"schedule" yaml:"schedule"`
	Limits    limitsWire   `json:"limits" yaml:"limits"`
	Endpoints []ruleWire   `json:"endpoints" yaml:"endpoints"`
}

type scheduleWire struct {
	Trigger   string   `json:"trigger" yaml:"trigger"`
	Period    string   `json:"period,omitempty" yaml:"period,omitempty"`
	Topics    []string `json:"topics,omitempty" yaml:"topics,omitempty,flow"`
	Budget    string   `json:"budget" yaml:"budget"`
	Priority  int      `json:"priority" yaml:"priority"`
	OnFault   string   `json:"on_fault" yaml:"on_fault"`
	MaxFaults int      `json:"max_faults" yaml:"max_faults"`
}

type limitsWire struct {
	Memory  string `json:"memory" yaml:"memory"`
	Storage string `json:"storage" yaml:"storage"`
}

type ruleWire struct {
	Name string   `json:"name" yaml:"name"`
	Ops  []string `json:"ops" yaml:"ops,flow"`
	Rate string   `json:"rate,omitempty" yaml:"rate,omitempty"`
}

func (m *Manifest) wire() (*manifestWire, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	s := &m.Schedule
	w := &manifestWire{
		Name: m.Name, Tenant: m.Tenant, Version: m.Version, Runtime: m.Runtime, Code: m.Code,
		Schedule: scheduleWire{
			Trigger: string(s.Trigger), Topics: s.Topics, Budget: formatDuration(s.Budget),
			Priority: s.Priority, OnFault: string(s.OnFault), MaxFaults: s.MaxFaults,
		},
		Limits:    limitsWire{Memory: formatSize(m.Limits.Memory), Storage: formatSize(m.Limits.Storage)},
		Endpoints: rulesWire(m.Endpoints, true),
	}
	if s.Trigger == Periodic {
		w.Schedule.Period = formatDuration(s.Period)
	}
	return w, nil
}

// rulesWire is never nil, so an empty list is written as [] rather than null.
func rulesWire(rules []EndpointRule, withRate bool) []ruleWire {
	out := make([]ruleWire, len(rules))
	for i, r := range rules {
		out[i] = ruleWire{Name: r.Name, Ops: opNames(r)}
		if withRate && r.Rate != nil {
			out[i].Rate = formatRate(r.Rate)
		}
	}
	return out
}

func formatRate(r *Rate) string { return strconv.Itoa(r.N) + "/" + rateUnit(r.Per) }

func opNames(r EndpointRule) []string {
	ops := r.Ops.Ops()
	out := make([]string, len(ops))
	for i, o := range ops {
		out[i] = o.String()
	}
	return out
}

// MarshalJSON writes m in the SPEC form: durations and sizes as strings
// ("100ms", "64KiB"), ops by name, rates as "10/s". Parse reads the result
// back to an equal Manifest. An invalid m is an error (wrapping ErrInvalid).
// The receiver is a value so that Manifest values marshal the same way.
func (m Manifest) MarshalJSON() ([]byte, error) {
	w, err := m.wire()
	if err != nil {
		return nil, err
	}
	return json.Marshal(w)
}

// YAML writes m in the SPEC form as YAML, like MarshalJSON.
func (m *Manifest) YAML() ([]byte, error) {
	w, err := m.wire()
	if err != nil {
		return nil, err
	}
	return encodeYAML(w)
}

func encodeYAML(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// formatSize writes n with the largest unit that divides it exactly,
// binary units first ("64KiB", "4kB", "1500B").
func formatSize(n uint64) string {
	units := [...]struct {
		name string
		size uint64
	}{{"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}, {"GB", 1e9}, {"MB", 1e6}, {"kB", 1e3}}
	for _, u := range units {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatUint(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatUint(n, 10) + "B"
}

// formatDuration writes d with the largest unit that divides it exactly
// ("100ms", "90s", "250us"), which time.ParseDuration reads back exactly;
// unlike Duration.String it never mixes units or uses 'µ'.
func formatDuration(d time.Duration) string {
	units := [...]struct {
		name string
		size time.Duration
	}{{"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}, {"us", time.Microsecond}}
	for _, u := range units {
		if d != 0 && d%u.size == 0 {
			return strconv.FormatInt(int64(d/u.size), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(d), 10) + "ns"
}
