package device

import (
	"fmt"
	"testing"

	"github.com/tinycontainer/tinycontainer/internal/testheap"
)

// TestLogRingsCostPerLine is part of issue 12's soak memory growth: a
// retained line cost a 64-byte mgmt.LogLine (the container's name and a
// time.Time in each) and the rings kept up to 2.5 slots per retained line
// (a slice compacted only once half of it was evicted, then grown again),
// ~160 bytes besides the text, which grew for minutes after every ring
// was full. 100 containers at their floor of 1,000 lines now cost ~35
// bytes a line besides its text, and nothing more as they go on writing;
// every ring has at most twice the slots of its lines.
func TestLogRingsCostPerLine(t *testing.T) {
	const containers, floor = 100, 1000
	b := newLogBook(logLimits{minLines: floor, tenantBytes: 1}) // every ring held at its floor
	names := make([]string, containers)
	for c := range names {
		names[c] = fmt.Sprintf("c-%03d", c)
	}
	const text = "t 00042" // one text for every line: the heap holds the slots
	write := func(rounds int) {
		for range rounds {
			for _, name := range names {
				b.add(name, text)
			}
		}
	}
	base := testheap.InUse()
	write(floor)
	full := testheap.InUse()
	write(3 * floor)
	after := testheap.InUse()
	lines := uint64(containers * floor)
	for name, c := range b.cs {
		if c.len() != floor || len(c.ring) > 2*floor {
			t.Fatalf("%s: %d lines in %d slots", name, c.len(), len(c.ring))
		}
	}
	// Heap figures, with room for the race detector's and other
	// goroutines' noise: the old rings took ~70 bytes a line once full
	// and ~150 after.
	perLine := (max(full, after) - base) / lines
	t.Logf("%d bytes a line full, %d after 3x more lines", (full-base)/lines, (after-base)/lines)
	if perLine > 80 {
		t.Fatalf("%d bytes a retained line (heap %d -> %d -> %d KiB)", perLine, base>>10, full>>10, after>>10)
	}
	if after > full+lines*16 {
		t.Fatalf("rings at their floor grew from %d to %d KiB", full>>10, after>>10)
	}
}
