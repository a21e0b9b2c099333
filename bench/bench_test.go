package bench

import (
	"strings"
	"testing"
)

// TestRunQuick runs every measurement with few iterations: each must
// produce a figure (no timing is asserted; figures on a test machine mean
// nothing). The ML figures may be skipped when the shared models are absent.
func TestRunQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("measurements take a few seconds")
	}
	rs := Run(Options{Quick: true}, nil)
	if len(rs) < 12 {
		t.Fatalf("only %d figures", len(rs))
	}
	for _, r := range rs {
		if strings.HasPrefix(r.Note, "failed") {
			t.Errorf("%s: %s", r.Name, r.Note)
		}
		if r.Unit != "" && r.Value <= 0 {
			t.Errorf("%s: value %v", r.Name, r.Value)
		}
	}
}
