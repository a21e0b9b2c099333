package msg

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxTopicLen bounds topic names and filters in bytes. MQTT allows 65535;
// a device keeps them short so per-message memory stays predictable.
const MaxTopicLen = 256

// ValidTopic reports whether topic may be published. Besides the MQTT rules
// (non-empty UTF-8, no NUL, no wildcards) it refuses a leading '$': those
// topics belong to the broker ($SYS, $share, ...) and a tenant must not be
// able to spoof them.
func ValidTopic(topic string) error {
	if err := validName(topic); err != nil {
		return err
	}
	if strings.ContainsAny(topic, "+#") {
		return fmt.Errorf("%w: %q contains a wildcard", ErrInvalidTopic, topic)
	}
	if topic[0] == '$' {
		return fmt.Errorf("%w: %q starts with '$' (reserved for the broker)", ErrInvalidTopic, topic)
	}
	return nil
}

// validInbound is ValidTopic without the '$' rule: the broker may legitimately
// deliver $SYS topics to a subscription that asked for them.
func validInbound(topic string) error {
	if err := validName(topic); err != nil {
		return err
	}
	if strings.ContainsAny(topic, "+#") {
		return fmt.Errorf("%w: %q contains a wildcard", ErrInvalidTopic, topic)
	}
	return nil
}

// ValidFilter reports whether filter is a well-formed MQTT topic filter:
// '+' occupies a whole level, '#' a whole level and only the last one.
// Shared subscriptions ($share/...) are refused because their meaning is
// broker-side load balancing, which the local bus cannot reproduce.
func ValidFilter(filter string) error {
	if err := validName(filter); err != nil {
		return err
	}
	if strings.HasPrefix(filter, "$share/") {
		return fmt.Errorf("%w: %q is a shared subscription", ErrInvalidTopic, filter)
	}
	rest := filter
	for {
		level, tail, more := strings.Cut(rest, "/")
		if strings.ContainsAny(level, "+#") && len(level) != 1 {
			return fmt.Errorf("%w: %q: a wildcard must occupy a whole level", ErrInvalidTopic, filter)
		}
		if level == "#" && more {
			return fmt.Errorf("%w: %q: '#' must be the last level", ErrInvalidTopic, filter)
		}
		if !more {
			return nil
		}
		rest = tail
	}
}

func validName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty", ErrInvalidTopic)
	case len(s) > MaxTopicLen:
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidTopic, len(s), MaxTopicLen)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%w: contains NUL", ErrInvalidTopic)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidTopic)
	}
	return nil
}

// Match reports whether topic matches filter under MQTT rules, including
// "a/#" matching "a" and wildcard-first filters never matching '$' topics.
// Both arguments are assumed valid; Match does not allocate.
func Match(filter, topic string) bool {
	if topic != "" && topic[0] == '$' && filter != "" && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		switch {
		case !fmore && !tmore:
			return true
		case !tmore:
			// The topic ended: only a trailing "#" (matching the parent level) remains acceptable.
			return frest == "#"
		case !fmore:
			return false
		}
		filter, topic = frest, trest
	}
}
