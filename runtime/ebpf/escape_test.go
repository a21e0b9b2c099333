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

// TestCallFuelOfHugeLengths: a tc.call's cost is never negative and never
// more than a poll at once, whatever lengths the guest passes (a length of
// 2^31 or more gave the guest fuel on 32-bit platforms; on 64-bit its
// cost was past what a 32-bit int holds).
func TestCallFuelOfHugeLengths(t *testing.T) {
	for _, n := range []uint32{0, 1, checkpointFuel, 1 << 31, 1<<32 - 1} {
		for _, c := range [][2]uint32{{n, 0}, {0, n}, {n, n}} {
			got := callFuel(c[0], c[1])
			if got < helperFuel || got > checkpointFuel+1 {
				t.Errorf("callFuel(%d, %d) = %d, want %d to %d", c[0], c[1], got, helperFuel, checkpointFuel+1)
			}
			if n >= checkpointFuel && got != checkpointFuel+1 {
				t.Errorf("callFuel(%d, %d) = %d, want a poll at once (%d)", c[0], c[1], got, checkpointFuel+1)
			}
		}
	}
}
