package meta

import (
	"encoding/json"
	"fmt"
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
}

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
	}
	return nil
}

// ParseCeiling reads a ceiling written as JSON or YAML, as strictly as Parse
// reads a manifest. Every field is required ("allow" may be empty); errors
// wrap ErrInvalidCeiling.
func ParseCeiling(data []byte) (*Ceiling, error) {
	r := docReader{class: ErrInvalidCeiling}
	root, err := r.tree(data)
	if err != nil {
		return nil, err
	}
	if root.kind != kMap {
		return nil, r.errf("", "the document must be a mapping, not %s", root.kind)
	}
	c := &Ceiling{}
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
		default:
			err = r.unknown(key, ceilingFields)
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

const ceilingFields = "tenant, allow, max_memory, max_storage, max_budget, min_period"

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
}

func (c *Ceiling) wire() (*ceilingWire, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &ceilingWire{
		Tenant: c.Tenant, Allow: rulesWire(c.Allow, false),
		MaxMemory: formatSize(c.MaxMemory), MaxStorage: formatSize(c.MaxStorage),
		MaxBudget: formatDuration(c.MaxBudget), MinPeriod: formatDuration(c.MinPeriod),
	}, nil
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
	for i, r := range m.Endpoints {
		for _, op := range r.Ops.Ops() {
			if !c.grants(r.Name, op) {
				return ceilingf(fmt.Sprintf("endpoints[%d]", i), "%s on %q is not granted", op, r.Name)
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
