package ctl

import (
	"fmt"
	"slices"
	"strings"
)

// Selector picks devices by their labels: every K=V must hold. The zero
// Selector (from --all) matches every device.
type Selector struct {
	terms [][2]string
	text  string
}

// ParseSelector reads K=V[,K=V...]; "" is refused (use All for every
// device).
func ParseSelector(s string) (Selector, error) {
	if strings.TrimSpace(s) == "" {
		return Selector{}, fmt.Errorf("%w: empty selector (use --all for every device)", ErrInput)
	}
	var sel Selector
	for _, t := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(t), "=")
		if !ok || k == "" || strings.ContainsAny(k+v, "=,\x00") {
			return Selector{}, fmt.Errorf("%w: selector term %q: want K=V", ErrInput, t)
		}
		sel.terms = append(sel.terms, [2]string{k, v})
	}
	slices.SortFunc(sel.terms, func(a, b [2]string) int { return strings.Compare(a[0]+"="+a[1], b[0]+"="+b[1]) })
	parts := make([]string, len(sel.terms))
	for i, t := range sel.terms {
		parts[i] = t[0] + "=" + t[1]
	}
	sel.text = strings.Join(parts, ",")
	return sel, nil
}

// All matches every device.
func All() Selector { return Selector{} }

// Matches reports whether labels satisfy every term.
func (s Selector) Matches(labels map[string]string) bool {
	for _, t := range s.terms {
		if v, ok := labels[t[0]]; !ok || v != t[1] {
			return false
		}
	}
	return true
}

// String is the selector in its canonical form ("" for all devices).
func (s Selector) String() string { return s.text }
