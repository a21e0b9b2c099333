package meta

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tinycontainer/tinycontainer/abi"
)

// MaxAllow bounds the rules of a ceiling; one ceiling serves all of a
// tenant's containers, so it may list more than one manifest.
const MaxAllow = 256

// Ceiling is what the owner grants a tenant (SPEC section 5): no manifest of
// the tenant may ask for more.
type Ceiling struct {
	Tenant     string
	Allow      []EndpointRule // Rate is ignored; nil when empty
	MaxMemory  uint64
	MaxStorage uint64
	MaxBudget  time.Duration
	MinPeriod  time.Duration
	// MaxPriority is the highest schedule.priority allowed, 0..15
	// (ParseCeiling: DefaultMaxPriority when the grant does not say).
	MaxPriority int
	// MaxCPU caps the CPU time all the tenant's containers together use on
	// a device, in percent of its capacity (1..100); 0: no cap.
	MaxCPU int
	// MaxCode is the largest guest code the tenant may install, in bytes,
	// 1..MaxCodeCeiling (ParseCeiling: DefaultMaxCode when the grant does
	// not say).
	MaxCode uint64
	// MaxRate caps the calls of each of the tenant's containers to the
	// endpoints each pattern matches; nil when none.
	MaxRate []RateCeiling
}

// RateCeiling is at most N calls per second, per container, to the
// endpoints Pattern matches ("log", "msg/#"). A manifest rule without a rate
// gets it; a manifest rate above it is refused.
type RateCeiling struct {
	Pattern string
	N       int
}

// DefaultRates are the rate ceilings of the endpoints every container
// shares with its neighbours, log and msg/#, for every tenant whose grant
// does not name their pattern and for containers without a grant: 1,000
// calls per second each, ten times what a container at the usual 10ms
// minimum period logging a line per activation needs (RATIONALE.md).
func DefaultRates() []RateCeiling {
	return []RateCeiling{{Pattern: "log", N: DefaultLogRate}, {Pattern: "msg/#", N: DefaultMsgRate}}
}

// Default rate ceilings (calls per second per container).
const (
	DefaultLogRate = 1000
	DefaultMsgRate = 1000
)

// Rates are the rate ceilings in force for the tenant: MaxRate, and each
// of DefaultRates whose pattern MaxRate does not name (a grant raises or
// lowers a default by naming its pattern).
func (c *Ceiling) Rates() []RateCeiling {
	out := append([]RateCeiling(nil), c.MaxRate...)
	for _, d := range DefaultRates() {
		named := false
		for _, r := range c.MaxRate {
			named = named || r.Pattern == d.Pattern
		}
		if !named {
			out = append(out, d)
		}
	}
	return out
}

// Defaults and bounds of the ceiling fields that a grant may leave out.
const (
	DefaultMaxPriority = 7
	DefaultMaxCode     = 1 * MiB
	// MaxCodeCeiling is the most code any grant may allow.
	MaxCodeCeiling = 4 * MiB
	// MaxRates bounds the rate ceilings of one grant.
	MaxRates = 64
)

func ceilingErrf(field, format string, args ...any) error {
	return &FieldError{Class: ErrInvalidCeiling, Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Validate checks c; the error wraps ErrInvalidCeiling and names the field.
func (c *Ceiling) Validate() error {
	if c == nil {
		return ceilingErrf("", "nil ceiling")
	}
	if err := validName(c.Tenant); err != nil {
		return ceilingErrf("tenant", "%v", err)
	}
	if len(c.Allow) > MaxAllow {
		return ceilingErrf("allow", "%d entries, at most %d allowed", len(c.Allow), MaxAllow)
	}
	for i := range c.Allow {
		if err := c.Allow[i].validate(ErrInvalidCeiling, fmt.Sprintf("allow[%d]", i), false); err != nil {
			return err
		}
	}
	// The bounds of a manifest bound the ceiling too: granting more than any
	// manifest may ask for is meaningless and usually a typo.
	switch {
	case c.MaxMemory > MaxMemory:
		return ceilingErrf("max_memory", "%s is above %s", formatSize(c.MaxMemory), formatSize(MaxMemory))
	case c.MaxStorage > MaxStorage:
		return ceilingErrf("max_storage", "%s is above %s", formatSize(c.MaxStorage), formatSize(MaxStorage))
	case c.MaxBudget < 0 || c.MaxBudget > MaxBudget:
		return ceilingErrf("max_budget", "%s is outside 0s..%s", formatDuration(c.MaxBudget), formatDuration(MaxBudget))
	case c.MinPeriod < 0 || c.MinPeriod > MaxPeriod:
		return ceilingErrf("min_period", "%s is outside 0s..%s", formatDuration(c.MinPeriod), formatDuration(MaxPeriod))
	case c.MaxPriority < 0 || c.MaxPriority > MaxPriority:
		return ceilingErrf("max_priority", "%d is outside 0..%d", c.MaxPriority, MaxPriority)
	case c.MaxCPU < 0 || c.MaxCPU > 100:
		return ceilingErrf("max_cpu", "%d%% is outside 1%%..100%% (0: no cap)", c.MaxCPU)
	case c.MaxCode < 1 || c.MaxCode > MaxCodeCeiling:
		return ceilingErrf("max_code", "%s is outside 1B..%s", formatSize(c.MaxCode), formatSize(MaxCodeCeiling))
	case len(c.MaxRate) > MaxRates:
		return ceilingErrf("max_rate", "%d entries, at most %d allowed", len(c.MaxRate), MaxRates)
	}
	for i, r := range c.MaxRate {
		field := fmt.Sprintf("max_rate[%d]", i)
		if err := validEndpointName(r.Pattern); err != nil {
			return ceilingErrf(field+".name", "%v", err)
		}
		if r.N < 1 || r.N > MaxRateN {
			return ceilingErrf(field+".rate", "%d/s is outside 1/s..%d/s", r.N, MaxRateN)
		}
		for _, q := range c.MaxRate[:i] {
			if q.Pattern == r.Pattern {
				return ceilingErrf(field+".name", "duplicate pattern %q", r.Pattern)
			}
		}
	}
	return nil
}

// ParseCeiling reads a ceiling written as JSON or YAML, as strictly as Parse
// reads a manifest. The fields of the first grants are required ("allow"
// may be empty); those added since (max_priority, max_cpu, max_code,
// max_rate) are optional, so grants signed before them still decode, and
// take their defaults. Errors wrap ErrInvalidCeiling.
func ParseCeiling(data []byte) (*Ceiling, error) {
	r := docReader{class: ErrInvalidCeiling}
	root, err := r.tree(data)
	if err != nil {
		return nil, err
	}
	if root.kind != kMap {
		return nil, r.errf("", "the document must be a mapping, not %s", root.kind)
	}
	c := &Ceiling{MaxPriority: DefaultMaxPriority, MaxCode: DefaultMaxCode}
	seen := map[string]bool{}
	for i, key := range root.keys {
		v := root.vals[i]
		switch key {
		case "tenant":
			c.Tenant, err = r.str(v, key)
		case "allow":
			c.Allow, err = r.rules(v, key, MaxAllow, false)
		case "max_memory":
			c.MaxMemory, err = r.size(v, key)
		case "max_storage":
			c.MaxStorage, err = r.size(v, key)
		case "max_budget":
			c.MaxBudget, err = r.duration(v, key)
		case "min_period":
			c.MinPeriod, err = r.duration(v, key)
		case "max_priority":
			c.MaxPriority, err = r.int(v, key)
		case "max_cpu":
			c.MaxCPU, err = r.percent(v, key)
		case "max_code":
			c.MaxCode, err = r.size(v, key)
		case "max_rate":
			c.MaxRate, err = r.rateCeilings(v, key)
		default:
			err = r.unknown(key, ceilingFields+", "+ceilingOptional)
		}
		if err != nil {
			return nil, err
		}
		seen[key] = true
	}
	for f := range strings.SplitSeq(ceilingFields, ", ") {
		if !seen[f] {
			return nil, r.errf(f, "required")
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

const (
	ceilingFields   = "tenant, allow, max_memory, max_storage, max_budget, min_period"
	ceilingOptional = "max_priority, max_cpu, max_code, max_rate"
)

// percent reads a share written as 50 or "50%".
func (r docReader) percent(n *node, path string) (int, error) {
	if n.kind == kStr {
		v, err := ParsePercent(n.text)
		if err != nil {
			return 0, r.errf(path, "%v", err)
		}
		return v, nil
	}
	return r.int(n, path)
}

// ParsePercent reads "P%" or "P" with P in 1..100 (a CLI --max-cpu).
func ParsePercent(s string) (int, error) {
	num := strings.TrimSuffix(s, "%")
	v, err := strconv.Atoi(num)
	if err != nil || num == "" || num[0] == '+' || num[0] == '-' {
		return 0, fmt.Errorf("%q is not a percentage (want e.g. \"25%%\")", s)
	}
	if v < 1 || v > 100 {
		return 0, fmt.Errorf("%q is outside 1%%..100%%", s)
	}
	return v, nil
}

// rateCeilings reads [{name: PATTERN, rate: "N/s"}, ...]; empty gives nil.
func (r docReader) rateCeilings(n *node, path string) ([]RateCeiling, error) {
	if err := r.want(n, path, kSeq); err != nil {
		return nil, err
	}
	if len(n.items) > MaxRates {
		return nil, r.errf(path, "%d entries, at most %d allowed", len(n.items), MaxRates)
	}
	var out []RateCeiling
	for i, it := range n.items {
		p := indexPath(path, i)
		if err := r.want(it, p, kMap); err != nil {
			return nil, err
		}
		var rc RateCeiling
		var hasName, hasRate bool
		for j, key := range it.keys {
			v, kp := it.vals[j], fieldPath(p, key)
			var err error
			switch key {
			case "name":
				hasName = true
				rc.Pattern, err = r.str(v, kp)
			case "rate":
				hasRate = true
				var s string
				if s, err = r.str(v, kp); err == nil {
					if rc.N, err = parsePerSecond(s); err != nil {
						err = r.errf(kp, "%q %v", s, err)
					}
				}
			default:
				err = r.unknown(kp, "name, rate")
			}
			if err != nil {
				return nil, err
			}
		}
		if !hasName {
			return nil, r.errf(fieldPath(p, "name"), "required")
		}
		if !hasRate {
			return nil, r.errf(fieldPath(p, "rate"), "required")
		}
		out = append(out, rc)
	}
	return out, nil
}

// parsePerSecond reads "N/s", the only unit of a rate ceiling.
func parsePerSecond(s string) (int, error) {
	rt, err := parseRate(s)
	if err != nil {
		return 0, err
	}
	if rt.Per != time.Second {
		return 0, errors.New("is not a rate per second (want N/s, e.g. \"100/s\")")
	}
	return rt.N, nil
}

// ParseRateCeiling reads a CLI grant "PATTERN=N/s" ("msg/acme/#=50/s"). The
// pattern ends at the last '='.
func ParseRateCeiling(s string) (RateCeiling, error) {
	const field = "max_rate"
	i := strings.LastIndexByte(s, '=')
	if i < 0 {
		return RateCeiling{}, ceilingErrf(field, "%q is not PATTERN=N/s", s)
	}
	n, err := parsePerSecond(s[i+1:])
	if err != nil {
		return RateCeiling{}, ceilingErrf(field, "%q: %v", s, err)
	}
	rc := RateCeiling{Pattern: s[:i], N: n}
	if err := validEndpointName(rc.Pattern); err != nil {
		return RateCeiling{}, ceilingErrf(field, "%q: %v", s, err)
	}
	return rc, nil
}

// UnmarshalJSON makes a Ceiling embeddable in JSON documents; it is
// ParseCeiling.
func (c *Ceiling) UnmarshalJSON(data []byte) error {
	p, err := ParseCeiling(data)
	if err != nil {
		return err
	}
	*c = *p
	return nil
}

type ceilingWire struct {
	Tenant     string     `json:"tenant" yaml:"tenant"`
	Allow      []ruleWire `json:"allow" yaml:"allow"`
	MaxMemory  string     `json:"max_memory" yaml:"max_memory"`
	MaxStorage string     `json:"max_storage" yaml:"max_storage"`
	MaxBudget  string     `json:"max_budget" yaml:"max_budget"`
	MinPeriod  string     `json:"min_period" yaml:"min_period"`
	// Written always, so a grant says what it grants (defaults included).
	MaxPriority int        `json:"max_priority" yaml:"max_priority"`
	MaxCPU      int        `json:"max_cpu,omitempty" yaml:"max_cpu,omitempty"`
	MaxCode     string     `json:"max_code" yaml:"max_code"`
	MaxRate     []rateWire `json:"max_rate,omitempty" yaml:"max_rate,omitempty"`
}

type rateWire struct {
	Name string `json:"name" yaml:"name"`
	Rate string `json:"rate" yaml:"rate"`
}

func (c *Ceiling) wire() (*ceilingWire, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &ceilingWire{
		Tenant: c.Tenant, Allow: rulesWire(c.Allow, false),
		MaxMemory: formatSize(c.MaxMemory), MaxStorage: formatSize(c.MaxStorage),
		MaxBudget: formatDuration(c.MaxBudget), MinPeriod: formatDuration(c.MinPeriod),
		MaxPriority: c.MaxPriority, MaxCPU: c.MaxCPU, MaxCode: formatSize(c.MaxCode), MaxRate: ratesWire(c.MaxRate),
	}, nil
}

func ratesWire(rs []RateCeiling) []rateWire {
	if len(rs) == 0 {
		return nil
	}
	out := make([]rateWire, len(rs))
	for i, r := range rs {
		out[i] = rateWire{Name: r.Pattern, Rate: strconv.Itoa(r.N) + "/s"}
	}
	return out
}

// MarshalJSON writes c in the form ParseCeiling reads ("max_memory":
// "64KiB", "max_budget": "5ms", "allow" entries as {name, ops}); an invalid
// c is an error wrapping ErrInvalidCeiling.
func (c Ceiling) MarshalJSON() ([]byte, error) {
	w, err := c.wire()
	if err != nil {
		return nil, err
	}
	return json.Marshal(w)
}

// YAML writes c as YAML, like MarshalJSON.
func (c *Ceiling) YAML() ([]byte, error) {
	w, err := c.wire()
	if err != nil {
		return nil, err
	}
	return encodeYAML(w)
}

// ParseAllow reads a CLI grant "PATTERN:op,op" ("msg/acme/#:publish"). The
// pattern ends at the last ':', so patterns may hold ':' themselves.
func ParseAllow(s string) (EndpointRule, error) {
	const field = "allow"
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return EndpointRule{}, ceilingErrf(field, "%q is not PATTERN:op,op", s)
	}
	r := EndpointRule{Name: s[:i]}
	for name := range strings.SplitSeq(s[i+1:], ",") {
		name = strings.TrimSpace(name)
		op, err := abi.ParseOp(name)
		if err != nil {
			return EndpointRule{}, ceilingErrf(field, "%q: %v", s, err)
		}
		if r.Ops.Has(op) {
			return EndpointRule{}, ceilingErrf(field, "%q: duplicate op %q", s, name)
		}
		r.Ops |= abi.OpSetOf(op)
	}
	if err := r.validate(ErrInvalidCeiling, field, false); err != nil {
		return EndpointRule{}, err
	}
	return r, nil
}

func ceilingf(field, format string, args ...any) error {
	return &FieldError{Class: ErrCeiling, Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Permits reports whether m stays within c: nil, or an error wrapping
// ErrCeiling that names the first offending field of m. An endpoint rule
// must be covered, op by op, by a single Allow rule granting that op (a
// union of Allow rules that together cover it is not searched for: refusing
// is the safe side); an event topic t must be covered by some Allow pattern
// as the endpoint "msg/"+t, whatever its ops.
func (c *Ceiling) Permits(m *Manifest) error {
	if c == nil || m == nil {
		return ceilingf("", "nil ceiling or manifest")
	}
	if m.Tenant != c.Tenant {
		return ceilingf("tenant", "%q is not the ceiling's tenant %q", m.Tenant, c.Tenant)
	}
	if m.Limits.Memory > c.MaxMemory {
		return ceilingf("limits.memory", "%s is above max_memory %s", formatSize(m.Limits.Memory), formatSize(c.MaxMemory))
	}
	if m.Limits.Storage > c.MaxStorage {
		return ceilingf("limits.storage", "%s is above max_storage %s", formatSize(m.Limits.Storage), formatSize(c.MaxStorage))
	}
	if m.Schedule.Budget > c.MaxBudget {
		return ceilingf("schedule.budget", "%s is above max_budget %s", formatDuration(m.Schedule.Budget), formatDuration(c.MaxBudget))
	}
	if m.Schedule.Trigger == Periodic && m.Schedule.Period < c.MinPeriod {
		return ceilingf("schedule.period", "%s is below min_period %s", formatDuration(m.Schedule.Period), formatDuration(c.MinPeriod))
	}
	if m.Schedule.Priority > c.MaxPriority {
		return ceilingf("schedule.priority", "%d is above max_priority %d", m.Schedule.Priority, c.MaxPriority)
	}
	for i, r := range m.Endpoints {
		for _, op := range r.Ops.Ops() {
			if !c.grants(r.Name, op) {
				return ceilingf(fmt.Sprintf("endpoints[%d]", i), "%s on %q is not granted", op, r.Name)
			}
		}
	}
	for i, r := range m.Endpoints {
		if r.Rate == nil {
			continue
		}
		worst := r.Rate.PerSecond()
		for _, rc := range c.Rates() {
			if Overlaps(rc.Pattern, r.Name) && worst > uint64(rc.N) {
				return ceilingf(fmt.Sprintf("endpoints[%d].rate", i), "%s allows %d calls in one second on %q, above max_rate %s=%d/s",
					formatRate(r.Rate), worst, r.Name, rc.Pattern, rc.N)
			}
		}
	}
	// Topics are checked whatever the trigger: they name what the
	// container listens to.
	for i, t := range m.Schedule.Topics {
		if !c.grants("msg/"+t, 0) {
			return ceilingf(fmt.Sprintf("schedule.topics[%d]", i), "topic %q is not granted (no allow pattern covers %q)", t, "msg/"+t)
		}
	}
	return nil
}

// PermitsCode reports whether n bytes of guest code stay within c's
// max_code: nil, or an error wrapping ErrCeiling.
func (c *Ceiling) PermitsCode(n int) error {
	if c == nil {
		return ceilingf("", "nil ceiling")
	}
	if n < 0 || uint64(n) > c.MaxCode {
		return ceilingf("code", "%s is above max_code %s", formatSize(uint64(n)), formatSize(c.MaxCode))
	}
	return nil
}

// grants reports whether one Allow rule covers pattern with op (any op when
// op is 0).
func (c *Ceiling) grants(pattern string, op abi.Op) bool {
	for _, a := range c.Allow {
		if (op == 0 || a.Ops.Has(op)) && Covers(a.Name, pattern) {
			return true
		}
	}
	return false
}
