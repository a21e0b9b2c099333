package meta

import (
	"errors"
	"fmt"
	"strings"
)

// MaxTopic is the longest topic name or filter, in bytes.
const MaxTopic = 256

// ValidFilter checks an MQTT topic filter: non-empty, at most MaxTopic
// bytes, UTF-8 without NUL, '+' only as a whole level, '#' only as the whole
// last level. Empty levels ("a//b") are allowed, as in MQTT.
func ValidFilter(s string) error {
	if len(s) > MaxTopic {
		return fmt.Errorf("longer than %d bytes", MaxTopic)
	}
	if err := validUTF8NoNUL(s); err != nil {
		return err
	}
	return filterSyntax(s)
}

// ValidTopic checks a topic name to publish on: non-empty, at most MaxTopic
// bytes, UTF-8 without NUL, no wildcards.
func ValidTopic(s string) error {
	if s == "" {
		return errors.New("empty topic")
	}
	if len(s) > MaxTopic {
		return fmt.Errorf("longer than %d bytes", MaxTopic)
	}
	if err := validUTF8NoNUL(s); err != nil {
		return err
	}
	if strings.ContainsAny(s, "+#") {
		return fmt.Errorf("%q: wildcards are not allowed in a topic name", s)
	}
	return nil
}

// filterSyntax is the wildcard-placement part of ValidFilter, the only part
// Match and Covers depend on.
func filterSyntax(s string) error {
	if s == "" {
		return errors.New("empty filter")
	}
	for rest, more := s, true; more; {
		var level string
		level, rest, more = strings.Cut(rest, "/")
		switch {
		case level == "#":
			if more {
				return fmt.Errorf("%q: '#' must be the last level", s)
			}
		case level == "+":
		case strings.ContainsAny(level, "+#"):
			return fmt.Errorf("%q: a wildcard must be a whole level", s)
		}
	}
	return nil
}

// validTopicSyntax: a name a pattern can match: non-empty and free of
// wildcards, so "msg/acme/#" never matches a name like "msg/acme/#" that
// would publish to a wildcard.
func validTopicSyntax(s string) bool {
	return s != "" && !strings.ContainsAny(s, "+#")
}

// Match reports whether the endpoint or topic name matches pattern, with MQTT
// semantics over '/'-separated levels: '+' matches one level, a last '#'
// matches zero or more trailing levels ("msg/acme/#" matches "msg/acme" and
// "msg/acme/a/b"), and, as in MQTT, a pattern starting with a wildcard does
// not match names starting with '$'. An invalid pattern matches nothing, and
// a name holding '+' or '#' is matched by nothing. Match does not allocate.
func Match(pattern, name string) bool {
	return validTopicSyntax(name) && match(pattern, name)
}

// match is Match for a name known to be valid; it rejects invalid patterns
// as it walks them. It compares bytes in place rather than splitting
// levels, as Lookup runs it against every rule on every endpoint call.
func match(p, n string) bool {
	if p == "" || (n[0] == '$' && (p[0] == '+' || p[0] == '#')) {
		return false
	}
	i, j := 0, 0
	for {
		// Here p[i:] and n[j:] each start a level.
		switch {
		case i < len(p) && p[i] == '#':
			return i+1 == len(p)
		case i < len(p) && p[i] == '+' && (i+1 == len(p) || p[i+1] == '/'):
			for j < len(n) && n[j] != '/' {
				j++
			}
			i++
		default:
			for ; i < len(p) && p[i] != '/'; i, j = i+1, j+1 {
				// A literal wildcard never equals a valid name's byte.
				if j == len(n) || n[j] != p[i] {
					return false
				}
			}
			if j < len(n) && n[j] != '/' {
				return false
			}
		}
		switch {
		case i == len(p):
			return j == len(n)
		case j == len(n):
			// The name ends here; only a final "#" matches zero more levels.
			return p[i+1:] == "#"
		}
		i, j = i+1, j+1
	}
}

// Covers reports whether every name matched by pattern inner is also matched
// by pattern outer (so a ceiling rule outer admits a manifest rule inner).
// It is false when either is not a valid filter.
func Covers(outer, inner string) bool {
	if filterSyntax(outer) != nil || filterSyntax(inner) != nil {
		return false
	}
	for first := true; ; first = false {
		ol, orest, omore := strings.Cut(outer, "/")
		il, irest, imore := strings.Cut(inner, "/")
		// A wildcard first level never matches '$' names, so it cannot
		// cover an inner literal first level starting with '$'.
		dollar := first && il != "" && il[0] == '$'
		switch {
		case ol == "#":
			return !dollar
		case il == "#":
			// inner matches zero or more levels here; only '#' covers that.
			return false
		case ol == "+":
			if dollar {
				return false
			}
		case il == "+" || ol != il:
			return false
		}
		switch {
		case !imore && !omore:
			return true
		case !imore:
			// inner names end here; outer needs a final '#' to match them.
			return orest == "#"
		case !omore:
			return false
		}
		outer, inner = orest, irest
	}
}

// Overlaps reports whether some name is matched by both patterns a and b
// (so a rate ceiling a concerns the calls a manifest rule b grants). It is
// false when either is not a valid filter.
func Overlaps(a, b string) bool {
	if filterSyntax(a) != nil || filterSyntax(b) != nil {
		return false
	}
	for first := true; ; first = false {
		al, arest, amore := strings.Cut(a, "/")
		bl, brest, bmore := strings.Cut(b, "/")
		// A wildcard first level never matches '$' names.
		if first && (isWild(al) && dollar(bl) || isWild(bl) && dollar(al)) {
			return false
		}
		switch {
		case al == "#" || bl == "#":
			return true
		case al != "+" && bl != "+" && al != bl:
			return false
		}
		switch {
		case !amore && !bmore:
			return true
		case !amore:
			// Names of a end here; b must match zero more levels.
			return brest == "#"
		case !bmore:
			return arest == "#"
		}
		a, b = arest, brest
	}
}

func isWild(level string) bool { return level == "+" || level == "#" }

func dollar(level string) bool { return level != "" && level[0] == '$' }
