package container

import "fmt"

// State is where a container is in its lifecycle. The strings are those of
// the SPEC's `state` field (plus "removed", which no listing shows).
type State uint8

const (
	Stopped State = iota // installed, not scheduled (initial state)
	Running              // scheduled; activations happen
	Faulted              // stopped by the fault policy after max_faults
	Removed              // gone; no transition leaves it
)

var stateNames = [...]string{"stopped", "running", "faulted", "removed"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// ParseState is the inverse of String.
func ParseState(s string) (State, error) {
	for i, n := range stateNames {
		if n == s {
			return State(i), nil
		}
	}
	return 0, fmt.Errorf("unknown container state %q", s)
}

// transitions lists every allowed move; anything else is refused.
var transitions = map[State][]State{
	Stopped: {Running, Removed},
	Running: {Stopped, Faulted, Removed},
	Faulted: {Running, Removed},
	Removed: nil,
}

// CanMove reports whether from -> to is a legal transition.
func CanMove(from, to State) bool {
	for _, t := range transitions[from] {
		if t == to {
			return true
		}
	}
	return false
}
