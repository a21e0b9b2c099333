package mqtt

import (
	"slices"
	"strings"
)

// Brokers such as mosquitto send one copy of a message per matching
// subscription, so overlapping broker subscriptions ("a/#" and "a/b") would
// hand the bus duplicates. reduceFilters turns the bus's filter union into a
// set of pairwise non-overlapping filters that together match at least every
// topic the union matches; the bus then filters precisely on the way in.
// Overlaps are merged into their least general common filter, which for the
// usual nested case ("a/#" with "a/b") is just the broader one.
func reduceFilters(filters []string) []string {
	out := slices.Clone(filters)
	for changed := true; changed; {
		changed = false
	outer:
		for i := 0; i < len(out); i++ {
			for j := i + 1; j < len(out); j++ {
				if overlap(out[i], out[j]) {
					out[i] = join(out[i], out[j])
					out = slices.Delete(out, j, j+1)
					changed = true
					break outer
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// wildFirst reports whether the filter's first level is a wildcard; such
// filters never match topics starting with '$'.
func wildFirst(f string) bool { return f != "" && (f[0] == '+' || f[0] == '#') }

// overlap reports whether some topic matches both (valid) filters.
func overlap(a, b string) bool {
	if (wildFirst(a) && strings.HasPrefix(b, "$")) || (wildFirst(b) && strings.HasPrefix(a, "$")) {
		return false
	}
	for {
		al, arest, amore := strings.Cut(a, "/")
		bl, brest, bmore := strings.Cut(b, "/")
		if al == "#" || bl == "#" {
			return true
		}
		if al != "+" && bl != "+" && al != bl {
			return false
		}
		switch {
		case !amore && !bmore:
			return true
		case !amore:
			return brest == "#" // b's "#" also matches a's last level as its parent
		case !bmore:
			return arest == "#"
		}
		a, b = arest, brest
	}
}

// join returns the most specific filter matching every topic either filter
// matches: equal levels are kept, differing ones become '+', and where one
// filter ends before the other, or has '#', the rest becomes '#'.
func join(a, b string) string {
	var levels []string
	for {
		al, arest, amore := strings.Cut(a, "/")
		bl, brest, bmore := strings.Cut(b, "/")
		switch {
		case al == "#" || bl == "#":
			return strings.Join(append(levels, "#"), "/")
		case al == bl:
			levels = append(levels, al)
		default:
			levels = append(levels, "+")
		}
		switch {
		case !amore && !bmore:
			return strings.Join(levels, "/")
		case !amore || !bmore:
			return strings.Join(append(levels, "#"), "/")
		}
		a, b = arest, brest
	}
}
