//go:build linux && (amd64 || arm64)

package ebpf

import (
	"context"
	"os"
	"testing"

	"github.com/tinycontainer/tinycontainer/internal/adversary"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// TestMachineCodeLimit: the longest program (65,536 slots of memory
// accesses, 5.3 MB of machine code) is not given executable memory
// beyond MaxMachineCode: it runs interpreted; a smaller one is compiled.
func TestMachineCodeLimit(t *testing.T) {
	if os.Getenv(interpretEnv) != "" {
		t.Skip("no machine code in this run")
	}
	for _, c := range []struct {
		slots    int
		compiled bool
	}{{65536, false}, {2000, true}} {
		m, err := New().Compile(context.Background(), adversary.BPFSlots(c.slots), runtime.Config{MemoryLimit: 64 << 10, CodeLimit: runtime.MaxCodeLimit})
		if err != nil {
			t.Fatal(err)
		}
		if got := m.(*Module).Compiled(); got != c.compiled {
			t.Errorf("%d slots: compiled %v, want %v", c.slots, got, c.compiled)
		}
		if j := m.(*Module).jit; j != nil && len(j.mem) > MaxMachineCode+4096 {
			t.Errorf("%d slots: %d bytes of machine code", c.slots, len(j.mem))
		}
	}
}
