// Package meta is the rulebook of a container (SPEC section 5): what it may
// touch with which ops, how it is scheduled, its limits; and the ceiling an
// owner grants a tenant.
//
// Manifests are written by people as YAML or JSON and parsed strictly (Parse);
// MarshalJSON and YAML give the same form back. Endpoint names and message
// topics use MQTT-style wildcards (Match, Covers).
package meta

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/internal/lazyre"
)

// Error classes. Every error of this package wraps exactly one of them.
var (
	// ErrInvalid: a manifest (or a Manifest value) breaks a rule.
	ErrInvalid = errors.New("invalid manifest")
	// ErrInvalidCeiling: a ceiling (or an --allow rule) breaks a rule.
	ErrInvalidCeiling = errors.New("invalid ceiling")
	// ErrCeiling: a valid manifest asks for more than its tenant's ceiling.
	ErrCeiling = errors.New("beyond the tenant's ceiling")
)

// FieldError names the field at fault, as a path in the YAML/JSON form
// ("schedule.budget", "endpoints[2].ops[0]"); Field is empty for errors of
// the document as a whole (syntax, size).
type FieldError struct {
	Class  error // ErrInvalid, ErrInvalidCeiling or ErrCeiling
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Class.Error() + ": " + e.Reason
	}
	return e.Class.Error() + ": " + e.Field + ": " + e.Reason
}

func (e *FieldError) Unwrap() error { return e.Class }

func invalidf(field, format string, args ...any) error {
	return &FieldError{Class: ErrInvalid, Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Trigger says what starts an activation.
type Trigger string

const (
	Periodic Trigger = "periodic"
	Event    Trigger = "event"
	Once     Trigger = "once"
)

// FaultAction is what happens after a fault.
type FaultAction string

const (
	Restart FaultAction = "restart"
	Stop    FaultAction = "stop"
)

// Runtimes a manifest may name.
const (
	RuntimeWasm = "wasm"
	RuntimeEBPF = "ebpf"
)

// Manifest is a container's metadata. Field names and units match the
// YAML/JSON form of SPEC section 5; Parse returns it validated and with
// defaults filled in.
type Manifest struct {
	Name      string
	Tenant    string
	Version   uint64
	Runtime   string // "wasm" | "ebpf"
	Code      string // optional, relative to the manifest
	Schedule  Schedule
	Limits    Limits
	Endpoints []EndpointRule // nil when empty
}

// Schedule is how and when the container runs.
type Schedule struct {
	Trigger Trigger
	Period  time.Duration // periodic only
	// Topics are the MQTT filters whose messages activate an event
	// container; required for Event, optional (and inert) otherwise so
	// that the SPEC's example, which lists them with trigger periodic,
	// parses as written. nil when absent.
	Topics    []string
	Budget    time.Duration // longest activation
	Priority  int           // 0..15, higher runs first
	OnFault   FaultAction
	MaxFaults int // consecutive faults before "faulted"
}

// Limits bound the container's resources, in bytes.
type Limits struct {
	Memory  uint64
	Storage uint64
}

// EndpointRule grants ops on the endpoints whose names match Name (an MQTT
// style pattern: '+' one level, '#' the rest).
type EndpointRule struct {
	Name string
	Ops  abi.OpSet
	Rate *Rate // nil: no rate limit
}

// Rate is at most N calls per Per; Per is one of time.Millisecond,
// time.Second, time.Minute, time.Hour.
type Rate struct {
	N   int
	Per time.Duration
}

// PerSecond is the most calls r admits in any one-second window: N for an
// interval of a second or more (a whole burst fits in one second), N times
// the intervals in a second otherwise.
func (r *Rate) PerSecond() uint64 {
	if r.Per >= time.Second {
		return uint64(r.N)
	}
	return uint64(r.N) * uint64(time.Second/r.Per)
}

// Units, bounds and defaults of SPEC section 5.
const (
	KiB = 1 << 10
	MiB = 1 << 20
	GiB = 1 << 30

	DefaultBudget    = 10 * time.Millisecond
	DefaultMaxFaults = 3
	DefaultMemory    = 64 * KiB

	MinPeriod, MaxPeriod       = time.Millisecond, 24 * time.Hour
	MinBudget, MaxBudget       = 10 * time.Microsecond, 10 * time.Second
	MaxPriority                = 15
	MinMaxFaults, MaxMaxFaults = 1, 1000
	MinMemory, MaxMemory       = 1 * KiB, 256 * MiB
	MaxStorage                 = 64 * MiB
	MaxEndpoints               = 64
	MaxTopics                  = 64
	MaxEndpointName            = 128
	MaxCodePath                = 255
	// MaxRateN keeps rate arithmetic (N × interval) far from overflow.
	MaxRateN = 1_000_000_000
)

var namePattern = lazyre.New(`^[a-z0-9][a-z0-9-]{0,31}$`)

// validName checks a container or tenant name.
func validName(s string) error {
	if s == "" {
		return errors.New("required")
	}
	if !namePattern().MatchString(s) {
		return fmt.Errorf("%q must match [a-z0-9][a-z0-9-]{0,31}", s)
	}
	return nil
}

// Validate checks every rule of SPEC section 5 on m as it is (no defaults
// are applied); the error names the first offending field.
func (m *Manifest) Validate() error {
	if m == nil {
		return invalidf("", "nil manifest")
	}
	if err := validName(m.Name); err != nil {
		return invalidf("name", "%v", err)
	}
	if err := validName(m.Tenant); err != nil {
		return invalidf("tenant", "%v", err)
	}
	if m.Version < 1 {
		return invalidf("version", "required, must be >= 1")
	}
	switch m.Runtime {
	case RuntimeWasm, RuntimeEBPF:
	case "":
		return invalidf("runtime", "required (wasm or ebpf)")
	default:
		return invalidf("runtime", "%q is not wasm or ebpf", m.Runtime)
	}
	if m.Code != "" {
		if err := validCode(m.Code); err != nil {
			return invalidf("code", "%v", err)
		}
	}
	if err := m.Schedule.validate(); err != nil {
		return err
	}
	if l := m.Limits.Memory; l < MinMemory || l > MaxMemory {
		return invalidf("limits.memory", "%s is outside %s..%s", formatSize(l), formatSize(MinMemory), formatSize(MaxMemory))
	}
	if l := m.Limits.Storage; l > MaxStorage {
		return invalidf("limits.storage", "%s is above the maximum %s", formatSize(l), formatSize(MaxStorage))
	}
	if len(m.Endpoints) > MaxEndpoints {
		return invalidf("endpoints", "%d entries, at most %d allowed", len(m.Endpoints), MaxEndpoints)
	}
	for i := range m.Endpoints {
		if err := m.Endpoints[i].validate(ErrInvalid, fmt.Sprintf("endpoints[%d]", i), true); err != nil {
			return err
		}
	}
	return nil
}

// validCode accepts a slash-separated path that stays inside the manifest's
// directory, so pack and run never read outside it.
func validCode(p string) error {
	switch {
	case len(p) > MaxCodePath:
		return fmt.Errorf("longer than %d bytes", MaxCodePath)
	case !printableASCII(p):
		return fmt.Errorf("%q must be printable ASCII", p)
	case strings.Contains(p, `\`):
		return fmt.Errorf("%q: use '/' as the separator", p)
	case strings.HasPrefix(p, "/"), len(p) >= 2 && p[1] == ':':
		return fmt.Errorf("%q must be a relative path", p)
	case strings.HasSuffix(p, "/"):
		return fmt.Errorf("%q does not name a file", p)
	}
	depth := 0
	for seg := range strings.SplitSeq(p, "/") {
		switch seg {
		case "", ".":
		case "..":
			if depth--; depth < 0 {
				return fmt.Errorf("%q escapes the manifest's directory", p)
			}
		default:
			depth++
		}
	}
	if depth == 0 {
		return fmt.Errorf("%q does not name a file", p)
	}
	return nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func (s *Schedule) validate() error {
	switch s.Trigger {
	case Periodic:
		if s.Period < MinPeriod || s.Period > MaxPeriod {
			return invalidf("schedule.period", "%s is outside %s..%s", formatDuration(s.Period), formatDuration(MinPeriod), formatDuration(MaxPeriod))
		}
	case Event, Once:
		if s.Period != 0 {
			return invalidf("schedule.period", "only allowed with trigger periodic")
		}
	case "":
		return invalidf("schedule.trigger", "required (periodic, event or once)")
	default:
		return invalidf("schedule.trigger", "%q is not periodic, event or once", string(s.Trigger))
	}
	if s.Trigger == Event && s.Topics == nil {
		return invalidf("schedule.topics", "required for trigger event")
	}
	if s.Topics != nil {
		if len(s.Topics) == 0 {
			return invalidf("schedule.topics", "must not be empty")
		}
		if len(s.Topics) > MaxTopics {
			return invalidf("schedule.topics", "%d entries, at most %d allowed", len(s.Topics), MaxTopics)
		}
		for i, t := range s.Topics {
			if err := ValidFilter(t); err != nil {
				return invalidf(fmt.Sprintf("schedule.topics[%d]", i), "%v", err)
			}
			for _, u := range s.Topics[:i] {
				if u == t {
					return invalidf(fmt.Sprintf("schedule.topics[%d]", i), "duplicate topic %q", t)
				}
			}
		}
	}
	if s.Budget < MinBudget || s.Budget > MaxBudget {
		return invalidf("schedule.budget", "%s is outside %s..%s", formatDuration(s.Budget), formatDuration(MinBudget), formatDuration(MaxBudget))
	}
	if s.Trigger == Periodic && s.Budget > s.Period {
		return invalidf("schedule.budget", "%s is longer than schedule.period %s", formatDuration(s.Budget), formatDuration(s.Period))
	}
	if s.Priority < 0 || s.Priority > MaxPriority {
		return invalidf("schedule.priority", "%d is outside 0..%d", s.Priority, MaxPriority)
	}
	switch s.OnFault {
	case Restart, Stop:
	case "":
		return invalidf("schedule.on_fault", "required (restart or stop)")
	default:
		return invalidf("schedule.on_fault", "%q is not restart or stop", string(s.OnFault))
	}
	if s.MaxFaults < MinMaxFaults || s.MaxFaults > MaxMaxFaults {
		return invalidf("schedule.max_faults", "%d is outside %d..%d", s.MaxFaults, MinMaxFaults, MaxMaxFaults)
	}
	return nil
}

const allOps = abi.OpSet(1<<abi.OpRead | 1<<abi.OpWrite | 1<<abi.OpGet | 1<<abi.OpPut |
	1<<abi.OpDelete | 1<<abi.OpPublish | 1<<abi.OpInvoke)

// validate checks one rule; withRate is false for ceilings, which ignore Rate.
func (r *EndpointRule) validate(class error, field string, withRate bool) error {
	if err := validEndpointName(r.Name); err != nil {
		return &FieldError{Class: class, Field: field + ".name", Reason: err.Error()}
	}
	if r.Ops == 0 {
		return &FieldError{Class: class, Field: field + ".ops", Reason: "must list at least one op"}
	}
	if r.Ops&^allOps != 0 {
		return &FieldError{Class: class, Field: field + ".ops", Reason: fmt.Sprintf("unknown op bits %#x", uint16(r.Ops&^allOps))}
	}
	if withRate && r.Rate != nil {
		if r.Rate.N < 1 || r.Rate.N > MaxRateN {
			return &FieldError{Class: class, Field: field + ".rate", Reason: fmt.Sprintf("count %d is outside 1..%d", r.Rate.N, MaxRateN)}
		}
		if rateUnit(r.Rate.Per) == "" {
			return &FieldError{Class: class, Field: field + ".rate", Reason: fmt.Sprintf("interval %s is not one of 1ms, 1s, 1min, 1h", r.Rate.Per)}
		}
	}
	return nil
}

// validEndpointName: an MQTT filter, additionally short and printable so it
// is safe in logs, audit entries and CLI flags.
func validEndpointName(s string) error {
	if len(s) > MaxEndpointName {
		return fmt.Errorf("longer than %d bytes", MaxEndpointName)
	}
	if !printableASCII(s) {
		return fmt.Errorf("%q must be printable ASCII", s)
	}
	return ValidFilter(s)
}

// Lookup returns the ops granted on the endpoint called name (the union over
// every matching rule) and the index of the first matching rule with a Rate,
// or -1. It does not allocate: it runs on every endpoint open and call.
func (m *Manifest) Lookup(name string) (ops abi.OpSet, rateRule int) {
	rateRule = -1
	if m == nil || !validTopicSyntax(name) {
		return 0, -1
	}
	for i := range m.Endpoints {
		r := &m.Endpoints[i]
		if match(r.Name, name) {
			ops |= r.Ops
			if rateRule < 0 && r.Rate != nil {
				rateRule = i
			}
		}
	}
	return ops, rateRule
}

// Allowed returns the ops granted on the endpoint called name.
func (m *Manifest) Allowed(name string) abi.OpSet {
	ops, _ := m.Lookup(name)
	return ops
}

// Clone returns a deep copy of m (nil for nil).
func (m *Manifest) Clone() *Manifest {
	if m == nil {
		return nil
	}
	c := *m
	c.Schedule.Topics = slices.Clone(m.Schedule.Topics)
	if m.Endpoints != nil {
		c.Endpoints = make([]EndpointRule, len(m.Endpoints))
		for i, r := range m.Endpoints {
			if r.Rate != nil {
				rate := *r.Rate
				r.Rate = &rate
			}
			c.Endpoints[i] = r
		}
	}
	return &c
}

// validUTF8NoNUL is the character rule MQTT sets for topics and filters.
func validUTF8NoNUL(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return errors.New("contains NUL")
	}
	return nil
}
