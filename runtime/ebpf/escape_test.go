package ebpf

import (
	"context"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// fillHost serves every call by filling the buffer, at ~20 ns of CPU a
// byte (an endpoint that synthesizes its response, such as a microphone).
type fillHost struct{ sink uint64 }

func (*fillHost) Open(runtime.Memory, uint32, uint32) int32  { return 0 }
func (*fillHost) Close(uint32) int32                         { return 0 }
func (*fillHost) CallName(string, abi.Op, []byte, int) int32 { return 0 }
func (h *fillHost) Call(mem runtime.Memory, _, _, ptr, _, bufCap uint32) int32 {
	b, ok := mem.Read(ptr, bufCap)
	if !ok {
		return abi.EFAULT.Result()
	}
	x := h.sink
	for i := range b {
		for range 16 {
			x = x*6364136223846793005 + 1442695040888963407
		}
		b[i] = byte(x >> 56)
	}
	h.sink = x
	return int32(len(b))
}

// Regression test of issue 10 on eBPF: helper calls are charged by the
// bytes they hand the host, so a loop of large calls reaches a budget poll
// within a call or two (it was 32 calls, ~40 ms of host work here),
// whichever engine runs it. CPU time: a busy machine does not decide it.
func TestEscapeByLargeCalls(t *testing.T) {
	m := loadGuest(t, "flood", 128<<10)
	in, err := m.Instantiate(context.Background(), &fillHost{})
	if err != nil {
		t.Fatal(err)
	}
	var b runtime.Budget
	b.Arm(20 * time.Millisecond)
	if _, err := in.Run(context.Background(), &b); faultKind(err) != runtime.FaultBudget {
		t.Fatalf("got %v, want a budget fault", err)
	}
	if b.Overrun() > 10*time.Millisecond {
		t.Errorf("ran %v of CPU past its 20ms budget", b.Overrun())
	}
	t.Logf("overrun %v", b.Overrun())
}
