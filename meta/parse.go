package meta

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tinycontainer/tinycontainer/abi"
)

// Parse reads a manifest written as YAML or JSON (same field names), fills
// in the defaults and validates it. Unknown fields, duplicate keys, YAML
// anchors and aliases, wrong types and bad or out-of-range values are
// refused; every error wraps ErrInvalid and names the field.
func Parse(data []byte) (*Manifest, error) {
	r := docReader{class: ErrInvalid}
	root, err := r.tree(data)
	if err != nil {
		return nil, err
	}
	m, err := r.manifest(root)
	if err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// UnmarshalJSON makes a Manifest embeddable in JSON documents; it is Parse.
func (m *Manifest) UnmarshalJSON(data []byte) error {
	p, err := Parse(data)
	if err != nil {
		return err
	}
	*m = *p
	return nil
}

func (r docReader) unknown(path string, allowed string) error {
	return r.errf(path, "unknown field (allowed: %s)", allowed)
}

func (r docReader) want(n *node, path string, k kind) error {
	if n.kind != k {
		return r.errf(path, "must be %s, not %s", k, n.kind)
	}
	return nil
}

func (r docReader) str(n *node, path string) (string, error) {
	if err := r.want(n, path, kStr); err != nil {
		return "", err
	}
	return n.text, nil
}

func (r docReader) uint(n *node, path string) (uint64, error) {
	if err := r.want(n, path, kInt); err != nil {
		return 0, err
	}
	if strings.HasPrefix(n.text, "-") {
		return 0, r.errf(path, "%s must not be negative", n.text)
	}
	v, err := strconv.ParseUint(n.text, 10, 64)
	if err != nil {
		return 0, r.errf(path, "%s is out of range", n.text)
	}
	return v, nil
}

func (r docReader) int(n *node, path string) (int, error) {
	if err := r.want(n, path, kInt); err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(n.text, 10, 64)
	if err != nil || v < math.MinInt || v > math.MaxInt {
		return 0, r.errf(path, "%s is out of range", n.text)
	}
	return int(v), nil
}

func (r docReader) duration(n *node, path string) (time.Duration, error) {
	if n.kind != kStr {
		return 0, r.errf(path, "must be a duration string such as \"100ms\", not %s", n.kind)
	}
	d, err := time.ParseDuration(n.text)
	if err != nil {
		return 0, r.errf(path, "%q is not a duration (want e.g. \"100ms\", \"1s\", \"250us\")", n.text)
	}
	return d, nil
}

func (r docReader) size(n *node, path string) (uint64, error) {
	switch n.kind {
	case kInt:
		return r.uint(n, path)
	case kStr:
		v, err := parseSize(n.text)
		if err != nil {
			return 0, r.errf(path, "%q %v", n.text, err)
		}
		return v, nil
	}
	return 0, r.errf(path, "must be a size such as \"64KiB\" or a byte count, not %s", n.kind)
}

var sizeUnits = map[string]uint64{"": 1, "B": 1, "KiB": KiB, "MiB": MiB, "GiB": GiB,
	"kB": 1000, "MB": 1000 * 1000, "GB": 1000 * 1000 * 1000}

var errSizeSyntax = errors.New("is not a size (want a byte count or e.g. \"64KiB\", \"4kB\"; units B, KiB, MiB, GiB, kB, MB, GB)")

// parseSize reads "N" or "N<unit>" with a unit of sizeUnits.
func parseSize(s string) (uint64, error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	mult, ok := sizeUnits[s[i:]]
	if i == 0 || !ok {
		return 0, errSizeSyntax
	}
	v, err := strconv.ParseUint(s[:i], 10, 64)
	if err != nil || v > math.MaxUint64/mult {
		return 0, errors.New("is out of range")
	}
	return v * mult, nil
}

var rateUnits = map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "min": time.Minute, "h": time.Hour}

// rateUnit is the spelling of a Rate's interval, "" when it has none.
func rateUnit(per time.Duration) string {
	switch per {
	case time.Millisecond:
		return "ms"
	case time.Second:
		return "s"
	case time.Minute:
		return "min"
	case time.Hour:
		return "h"
	}
	return ""
}

// parseRate reads "N/unit".
func parseRate(s string) (*Rate, error) {
	num, unit, ok := strings.Cut(s, "/")
	per, known := rateUnits[unit]
	if !ok || !known || num == "" || strings.Trim(num, "0123456789") != "" {
		return nil, errors.New("is not a rate (want N/ms, N/s, N/min or N/h, e.g. \"10/s\")")
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n < 1 || n > MaxRateN {
		return nil, errors.New("count must be 1.." + strconv.Itoa(MaxRateN))
	}
	return &Rate{N: int(n), Per: per}, nil
}

func (r docReader) manifest(root *node) (*Manifest, error) {
	if root.kind != kMap {
		return nil, r.errf("", "the document must be a mapping, not %s", root.kind)
	}
	m := &Manifest{Limits: Limits{Memory: DefaultMemory}}
	hasSchedule := false
	var err error
	for i, key := range root.keys {
		v := root.vals[i]
		switch key {
		case "name":
			m.Name, err = r.str(v, key)
		case "tenant":
			m.Tenant, err = r.str(v, key)
		case "version":
			m.Version, err = r.uint(v, key)
		case "runtime":
			m.Runtime, err = r.str(v, key)
		case "code":
			m.Code, err = r.str(v, key)
		case "schedule":
			hasSchedule = true
			err = r.schedule(v, &m.Schedule)
		case "limits":
			err = r.limits(v, &m.Limits)
		case "endpoints":
			m.Endpoints, err = r.rules(v, key, MaxEndpoints, true)
		default:
			err = r.unknown(key, "name, tenant, version, runtime, code, schedule, limits, endpoints")
		}
		if err != nil {
			return nil, err
		}
	}
	if !hasSchedule {
		return nil, r.errf("schedule", "required")
	}
	return m, nil
}

func (r docReader) schedule(n *node, s *Schedule) error {
	const path = "schedule"
	if err := r.want(n, path, kMap); err != nil {
		return err
	}
	var hasPeriod, hasBudget, hasOnFault, hasMaxFaults bool
	var err error
	for i, key := range n.keys {
		v, p := n.vals[i], fieldPath(path, key)
		switch key {
		case "trigger":
			var t string
			t, err = r.str(v, p)
			s.Trigger = Trigger(t)
		case "period":
			hasPeriod = true
			s.Period, err = r.duration(v, p)
		case "topics":
			s.Topics, err = r.topics(v, p)
		case "budget":
			hasBudget = true
			s.Budget, err = r.duration(v, p)
		case "priority":
			s.Priority, err = r.int(v, p)
		case "on_fault":
			hasOnFault = true
			var a string
			a, err = r.str(v, p)
			s.OnFault = FaultAction(a)
		case "max_faults":
			hasMaxFaults = true
			s.MaxFaults, err = r.int(v, p)
		default:
			err = r.unknown(p, "trigger, period, topics, budget, priority, on_fault, max_faults")
		}
		if err != nil {
			return err
		}
	}
	if hasPeriod && (s.Trigger == Event || s.Trigger == Once) {
		return r.errf("schedule.period", "only allowed with trigger periodic")
	}
	if !hasBudget {
		// A short period lowers the default so that it stays valid.
		s.Budget = DefaultBudget
		if s.Trigger == Periodic && s.Period >= MinBudget && s.Period < s.Budget {
			s.Budget = s.Period
		}
	}
	if !hasOnFault {
		s.OnFault = Restart
	}
	if !hasMaxFaults {
		s.MaxFaults = DefaultMaxFaults
	}
	return nil
}

func (r docReader) topics(n *node, path string) ([]string, error) {
	if err := r.want(n, path, kSeq); err != nil {
		return nil, err
	}
	if len(n.items) > MaxTopics {
		return nil, r.errf(path, "%d entries, at most %d allowed", len(n.items), MaxTopics)
	}
	out := make([]string, len(n.items))
	for i, it := range n.items {
		t, err := r.str(it, indexPath(path, i))
		if err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}

func (r docReader) limits(n *node, l *Limits) error {
	const path = "limits"
	if err := r.want(n, path, kMap); err != nil {
		return err
	}
	var err error
	for i, key := range n.keys {
		v, p := n.vals[i], fieldPath(path, key)
		switch key {
		case "memory":
			l.Memory, err = r.size(v, p)
		case "storage":
			l.Storage, err = r.size(v, p)
		default:
			err = r.unknown(p, "memory, storage")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// rules reads a list of endpoint rules; ceilings (withRate false) have no
// "rate" field. An empty list gives nil.
func (r docReader) rules(n *node, path string, max int, withRate bool) ([]EndpointRule, error) {
	if err := r.want(n, path, kSeq); err != nil {
		return nil, err
	}
	if len(n.items) > max {
		return nil, r.errf(path, "%d entries, at most %d allowed", len(n.items), max)
	}
	if len(n.items) == 0 {
		return nil, nil
	}
	out := make([]EndpointRule, len(n.items))
	for i, it := range n.items {
		if err := r.rule(it, indexPath(path, i), withRate, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (r docReader) rule(n *node, path string, withRate bool, e *EndpointRule) error {
	if err := r.want(n, path, kMap); err != nil {
		return err
	}
	allowed := "name, ops"
	if withRate {
		allowed = "name, ops, rate"
	}
	var hasName, hasOps bool
	var err error
	for i, key := range n.keys {
		v, p := n.vals[i], fieldPath(path, key)
		switch {
		case key == "name":
			hasName = true
			e.Name, err = r.str(v, p)
		case key == "ops":
			hasOps = true
			e.Ops, err = r.ops(v, p)
		case key == "rate" && withRate:
			var s string
			if s, err = r.str(v, p); err == nil {
				if e.Rate, err = parseRate(s); err != nil {
					err = r.errf(p, "%q %v", s, err)
				}
			}
		default:
			err = r.unknown(p, allowed)
		}
		if err != nil {
			return err
		}
	}
	if !hasName {
		return r.errf(fieldPath(path, "name"), "required")
	}
	if !hasOps {
		return r.errf(fieldPath(path, "ops"), "required")
	}
	return nil
}

func (r docReader) ops(n *node, path string) (abi.OpSet, error) {
	if err := r.want(n, path, kSeq); err != nil {
		return 0, err
	}
	if len(n.items) == 0 {
		return 0, r.errf(path, "must list at least one op")
	}
	var set abi.OpSet
	for i, it := range n.items {
		p := indexPath(path, i)
		s, err := r.str(it, p)
		if err != nil {
			return 0, err
		}
		op, err := abi.ParseOp(s)
		if err != nil {
			return 0, r.errf(p, "%v", err)
		}
		if set.Has(op) {
			return 0, r.errf(p, "duplicate op %q", s)
		}
		set |= abi.OpSetOf(op)
	}
	return set, nil
}
