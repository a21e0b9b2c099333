package container

import "testing"

// TestEveryTransition checks the whole table: each pair of states is either
// a listed transition or refused.
func TestEveryTransition(t *testing.T) {
	allowed := map[[2]State]bool{
		{Stopped, Running}: true, {Stopped, Removed}: true,
		{Running, Stopped}: true, {Running, Faulted}: true, {Running, Removed}: true,
		{Faulted, Running}: true, {Faulted, Removed}: true,
	}
	all := []State{Stopped, Running, Faulted, Removed}
	for _, from := range all {
		for _, to := range all {
			if from == to {
				continue
			}
			if got := CanMove(from, to); got != allowed[[2]State{from, to}] {
				t.Errorf("%s -> %s: allowed=%v", from, to, got)
			}
			c := &Container{Name: "x", state: from}
			err := c.Move(to)
			if (err == nil) != allowed[[2]State{from, to}] {
				t.Errorf("Move %s -> %s: err=%v", from, to, err)
			}
			if err == nil && c.State() != to {
				t.Errorf("Move %s -> %s left state %s", from, to, c.State())
			}
			if err != nil && c.State() != from {
				t.Errorf("refused Move %s -> %s changed state to %s", from, to, c.State())
			}
		}
	}
}

func TestStateNames(t *testing.T) {
	for _, s := range []State{Stopped, Running, Faulted, Removed} {
		got, err := ParseState(s.String())
		if err != nil || got != s {
			t.Errorf("%s: %v %v", s, got, err)
		}
	}
	if _, err := ParseState("zombie"); err == nil {
		t.Error("unknown state parsed")
	}
}

func TestRestartFromFaultedClearsConsecutiveFaults(t *testing.T) {
	c := &Container{Name: "x", state: Faulted}
	c.consecutive.Store(3)
	if err := c.Move(Running); err != nil {
		t.Fatal(err)
	}
	if c.ConsecutiveFaults() != 0 {
		t.Fatal("consecutive faults kept")
	}
}
