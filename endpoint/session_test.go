package endpoint_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/endpoint"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// mem is a guest memory backed by a slice.
type mem []byte

func (m mem) Read(ptr, n uint32) ([]byte, bool) {
	end := uint64(ptr) + uint64(n)
	if end > uint64(len(m)) {
		return nil, false
	}
	return m[ptr:end], true
}

// echo answers read with a fixed i32 and write by remembering the value.
type echo struct{ last int32 }

func (*echo) Ops() abi.OpSet { return abi.OpSetOf(abi.OpRead, abi.OpWrite) }
func (e *echo) Call(_ *endpoint.Call, op abi.Op, in, out []byte) int32 {
	if op == abi.OpWrite {
		if len(in) != 4 {
			return abi.EINVAL.Result()
		}
		e.last = int32(binary.LittleEndian.Uint32(in))
		return 0
	}
	if len(out) < 4 {
		return abi.EMSGSIZE.Result()
	}
	binary.LittleEndian.PutUint32(out, 42)
	return 4
}

type auditRec struct{ got []endpoint.Denial }

func (a *auditRec) Audit(d endpoint.Denial) { a.got = append(a.got, d) }

func manifest(t testing.TB, yaml string) *meta.Manifest {
	t.Helper()
	m, err := meta.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const base = `name: c1
tenant: t1
version: 1
runtime: wasm
schedule: {trigger: periodic, period: 100ms, budget: 5ms}
`

func setup(t testing.TB, endpoints string) (*endpoint.Session, mem, *echo, *auditRec) {
	reg := endpoint.NewRegistry()
	e := &echo{}
	reg.Register("sensor/a", e)
	reg.Register("sensor/b", e)
	a := &auditRec{}
	s := endpoint.NewSession("c1", "t1", reg, endpoint.NewRules(manifest(t, base+endpoints)), a)
	m := make(mem, 1024)
	copy(m[0:], "sensor/a")
	copy(m[16:], "sensor/b")
	copy(m[32:], "sensor/zz")
	return s, m, e, a
}

func TestOpenChecksPermissionBeforeExistence(t *testing.T) {
	s, m, _, a := setup(t, "endpoints:\n  - {name: sensor/a, ops: [read]}\n")
	if h := s.Open(m, 0, 8); h < 0 {
		t.Fatalf("open granted endpoint: %d", h)
	}
	// sensor/b exists but is not granted: EPERM, never ENOENT.
	if got := s.Open(m, 16, 8); got != abi.EPERM.Result() {
		t.Fatalf("open not granted = %d, want EPERM", got)
	}
	// sensor/zz is neither granted nor present: still EPERM.
	if got := s.Open(m, 32, 9); got != abi.EPERM.Result() {
		t.Fatalf("open unknown not granted = %d, want EPERM", got)
	}
	s.Flush()
	if len(a.got) != 2 || a.got[0].Endpoint != "sensor/b" || a.got[0].Op != "open" {
		t.Fatalf("audit = %+v", a.got)
	}
}

func TestOpenGrantedButMissingIsENOENT(t *testing.T) {
	s, m, _, _ := setup(t, "endpoints:\n  - {name: 'sensor/+', ops: [read]}\n")
	if got := s.Open(m, 32, 9); got != abi.ENOENT.Result() {
		t.Fatalf("got %d, want ENOENT", got)
	}
}

func TestCallChecks(t *testing.T) {
	s, m, e, _ := setup(t, "endpoints:\n  - {name: sensor/a, ops: [read, write, get]}\n")
	h := uint32(s.Open(m, 0, 8))
	cases := []struct {
		name                string
		h, op, ptr, in, cap uint32
		want                int32
	}{
		{"read", h, 1, 100, 0, 4, 4},
		{"bad handle", h + 7, 1, 100, 0, 4, abi.EBADF.Result()},
		{"op not granted", h, uint32(abi.OpPut), 100, 0, 4, abi.EPERM.Result()},
		{"unknown op", h, 99, 100, 0, 4, abi.EPERM.Result()},
		{"granted but unsupported", h, uint32(abi.OpGet), 100, 0, 4, abi.ENOSYS.Result()},
		{"buffer past the end", h, 1, 1022, 0, 4, abi.EFAULT.Result()},
		{"huge length", h, 1, 0, 0xFFFFFFFF, 0, abi.EFAULT.Result()},
		{"pointer wraps", h, 1, 0xFFFFFFFE, 0, 4, abi.EFAULT.Result()},
		{"response too small", h, 1, 100, 0, 2, abi.EMSGSIZE.Result()},
	}
	for _, c := range cases {
		if got := s.Call(m, c.h, c.op, c.ptr, c.in, c.cap); got != c.want {
			t.Errorf("%s: got %d, want %d", c.name, got, c.want)
		}
	}
	binary.LittleEndian.PutUint32(m[200:], 7)
	if got := s.Call(m, h, 2, 200, 4, 0); got != 0 || e.last != 7 {
		t.Fatalf("write: %d, last %d", got, e.last)
	}
}

func TestRevocationAppliesAtTheNextCallThroughAnOpenHandle(t *testing.T) {
	s, m, _, a := setup(t, "endpoints:\n  - {name: sensor/a, ops: [read]}\n")
	h := uint32(s.Open(m, 0, 8))
	if got := s.Call(m, h, 1, 100, 0, 4); got != 4 {
		t.Fatalf("before: %d", got)
	}
	next := manifest(t, base+"endpoints:\n  - {name: log, ops: [write]}\n")
	next.Version = 2
	s.SetRules(endpoint.NewRules(next))
	if got := s.Call(m, h, 1, 100, 0, 4); got != abi.EPERM.Result() {
		t.Fatalf("after revoke: %d, want EPERM", got)
	}
	// Granting again revives the same handle.
	s.SetRules(endpoint.NewRules(manifest(t, base+"endpoints:\n  - {name: 'sensor/#', ops: [read]}\n")))
	if got := s.Call(m, h, 1, 100, 0, 4); got != 4 {
		t.Fatalf("after re-grant: %d", got)
	}
	s.Flush()
	if len(a.got) != 1 || a.got[0].Reason == "" || a.got[0].Tenant != "t1" {
		t.Fatalf("audit = %+v", a.got)
	}
}

func TestRepeatedDenialsAreFolded(t *testing.T) {
	s, m, _, a := setup(t, "endpoints:\n  - {name: sensor/a, ops: [write]}\n")
	h := uint32(s.Open(m, 0, 8))
	for range 1000 {
		s.Call(m, h, 1, 100, 0, 4)
	}
	c := s.TakeCounts()
	if c.Denied != 1000 || c.Calls != 1001 {
		t.Fatalf("counts = %+v", c)
	}
	s.Flush()
	if len(a.got) != 1 || a.got[0].Count != 1000 {
		t.Fatalf("audit = %+v", a.got)
	}
}

func TestRateLimit(t *testing.T) {
	s, m, _, _ := setup(t, "endpoints:\n  - {name: sensor/a, ops: [read], rate: 5/h}\n")
	h := uint32(s.Open(m, 0, 8))
	ok, limited := 0, 0
	for range 20 {
		switch s.Call(m, h, 1, 100, 0, 4) {
		case 4:
			ok++
		case abi.EAGAIN.Result():
			limited++
		}
	}
	if ok != 5 || limited != 15 {
		t.Fatalf("ok %d limited %d, want 5 and 15", ok, limited)
	}
	if c := s.TakeCounts(); c.Limited != 15 {
		t.Fatalf("limited count %d", c.Limited)
	}
}

// fakeClock is a monotonic clock that moves only when told.
type fakeClock struct{ ns int64 }

func (c *fakeClock) now() int64          { return c.ns }
func (c *fakeClock) add(d time.Duration) { c.ns += int64(d) }

func TestRateRefills(t *testing.T) {
	s, m, _, _ := setup(t, "endpoints:\n  - {name: sensor/a, ops: [read], rate: 1000/s}\n")
	clk := &fakeClock{ns: 1e12}
	s.UseClock(clk.now)
	h := uint32(s.Open(m, 0, 8))
	for range 1000 {
		if s.Call(m, h, 1, 100, 0, 4) != 4 {
			t.Fatal("a full bucket refused a call")
		}
	}
	if s.Call(m, h, 1, 100, 0, 4) != abi.EAGAIN.Result() {
		t.Fatal("the 1001st call in a second was admitted")
	}
	clk.add(1100 * time.Millisecond)
	if s.Call(m, h, 1, 100, 0, 4) != 4 {
		t.Fatal("rate limiter never refilled")
	}
}

// TestRateCeilings: the tenant's rate ceilings bound every call that no
// manifest rate bounds, per container and pattern (one count for every
// endpoint the pattern matches), on the fast path, the full path and by
// name (WASI fd_write is a call on log); a manifest rate takes their place
// for the endpoints its rule grants.
func TestRateCeilings(t *testing.T) {
	reg := endpoint.NewRegistry()
	for _, n := range []string{"sensor/a", "sensor/b", "sensor/c", "log"} {
		reg.Register(n, &echo{})
	}
	m := manifest(t, base+`endpoints:
  - {name: 'sensor/+', ops: [read]}
  - {name: sensor/c, ops: [read], rate: 2/s}
  - {name: log, ops: [read, write]}
`)
	rules := endpoint.NewRules(m, meta.RateCeiling{Pattern: "sensor/#", N: 3}, meta.RateCeiling{Pattern: "log", N: 2})
	s := endpoint.NewSession("c1", "t1", reg, rules, nil)
	clk := &fakeClock{ns: 5e12}
	s.UseClock(clk.now)
	mm := make(mem, 1024)
	copy(mm[0:], "sensor/a")
	copy(mm[16:], "sensor/b")
	copy(mm[32:], "sensor/c")
	copy(mm[48:], "log")
	ha, hb, hc, hl := uint32(s.Open(mm, 0, 8)), uint32(s.Open(mm, 16, 8)), uint32(s.Open(mm, 32, 8)), uint32(s.Open(mm, 48, 3))
	s.TakeCounts()
	call := func(h uint32) int32 { return s.Call(mm, h, 1, 100, 0, 4) }
	// sensor/a and sensor/b share the ceiling's count of 3.
	got := []int32{call(ha), call(hb), call(ha), call(hb), call(ha)}
	want := []int32{4, 4, 4, abi.EAGAIN.Result(), abi.EAGAIN.Result()}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("calls on sensor/a and sensor/b: %v, want %v", got, want)
		}
	}
	// sensor/c has its manifest rate (2/s) instead: the ceiling's count is
	// spent, its own is not.
	if call(hc) != 4 || call(hc) != 4 || call(hc) != abi.EAGAIN.Result() {
		t.Fatal("sensor/c: its manifest rate must apply")
	}
	// log: the handle and fd_write (by name) share the ceiling of 2.
	buf := make([]byte, 8)
	if call(hl) != 4 || s.CallName("log", abi.OpRead, buf, 0) != 4 || s.CallName("log", abi.OpRead, buf, 0) != abi.EAGAIN.Result() || call(hl) != abi.EAGAIN.Result() {
		t.Fatal("log: handle and name calls must share the ceiling")
	}
	if c := s.TakeCounts(); c.Limited != 5 || c.Calls != 12 {
		t.Fatalf("counts %+v, want 5 limited of 12", c)
	}
	// A second later all is admitted again.
	clk.add(1100 * time.Millisecond)
	if call(ha) != 4 || call(hc) != 4 || call(hl) != 4 {
		t.Fatal("no refill")
	}
}

// TestCallMemoryOnlyDuringTheCall: an endpoint that keeps its call context
// cannot reach the caller's memory after the call returned (with pooled
// instances that memory may be another container's by then).
func TestCallMemoryOnlyDuringTheCall(t *testing.T) {
	reg := endpoint.NewRegistry()
	k := &keeper{}
	reg.Register("ml", k)
	s := endpoint.NewSession("c1", "t1", reg, endpoint.NewRules(manifest(t, base+"endpoints:\n  - {name: ml, ops: [invoke]}\n")), nil)
	m := make(mem, 64)
	copy(m, "ml")
	h := uint32(s.Open(m, 0, 2))
	if got := s.Call(m, h, uint32(abi.OpInvoke), 8, 0, 4); got != 1 {
		t.Fatalf("call: %d (the endpoint did not see the memory)", got)
	}
	if k.kept == nil || k.kept.Memory() != nil {
		t.Fatal("the call context still reaches the guest memory after the call")
	}
	if k.kept.Container() != "c1" || k.kept.Tenant() != "t1" {
		t.Fatalf("call context: %q %q", k.kept.Container(), k.kept.Tenant())
	}
	// A plain endpoint never sees memory.
	reg.Register("log", k)
	s.SetRules(endpoint.NewRules(manifest(t, base+"endpoints:\n  - {name: log, ops: [invoke]}\n")))
	copy(m[16:], "log")
	h = uint32(s.Open(m, 16, 3))
	if got := s.Call(m, h, uint32(abi.OpInvoke), 8, 0, 4); got != 1 {
		t.Fatalf("call: %d", got)
	}
}

// keeper is a MemoryUser that keeps its last call context (which no
// endpoint may do) and says whether it saw memory.
type keeper struct{ kept *endpoint.Call }

func (*keeper) UsesMemory()    {}
func (*keeper) Ops() abi.OpSet { return abi.OpSetOf(abi.OpInvoke) }
func (k *keeper) Call(c *endpoint.Call, _ abi.Op, _, _ []byte) int32 {
	k.kept = c
	if c.Memory() != nil {
		return 1
	}
	return 0
}

func TestHandlesCloseAndReuse(t *testing.T) {
	s, m, _, _ := setup(t, "endpoints:\n  - {name: sensor/a, ops: [read]}\n")
	var hs []int32
	for range endpoint.MaxHandles {
		h := s.Open(m, 0, 8)
		if h < 0 {
			t.Fatalf("open: %d", h)
		}
		hs = append(hs, h)
	}
	if got := s.Open(m, 0, 8); got != abi.ENOSPC.Result() {
		t.Fatalf("open past the limit: %d", got)
	}
	if s.Close(uint32(hs[3])) != 0 {
		t.Fatal("close")
	}
	if got := s.Close(uint32(hs[3])); got != abi.EBADF.Result() {
		t.Fatalf("double close: %d", got)
	}
	if got := s.Call(m, uint32(hs[3]), 1, 100, 0, 4); got != abi.EBADF.Result() {
		t.Fatalf("call on closed: %d", got)
	}
	if got := s.Open(m, 0, 8); got != hs[3] {
		t.Fatalf("slot not reused: %d", got)
	}
	s.Reset()
	if got := s.Call(m, uint32(hs[0]), 1, 100, 0, 4); got != abi.EBADF.Result() {
		t.Fatalf("call after reset: %d", got)
	}
}

func TestOpenBadNames(t *testing.T) {
	s, m, _, _ := setup(t, "endpoints:\n  - {name: '#', ops: [read]}\n")
	if got := s.Open(m, 0, 0); got != abi.EINVAL.Result() {
		t.Fatalf("empty name: %d", got)
	}
	if got := s.Open(m, 1020, 8); got != abi.EFAULT.Result() {
		t.Fatalf("name out of bounds: %d", got)
	}
	if got := s.Open(m, 0, 100000); got != abi.EINVAL.Result() {
		t.Fatalf("huge name: %d", got)
	}
}

func TestCallName(t *testing.T) {
	s, _, _, _ := setup(t, "endpoints:\n  - {name: sensor/a, ops: [read]}\n")
	buf := make([]byte, 8)
	if got := s.CallName("sensor/a", abi.OpRead, buf, 0); got != 4 {
		t.Fatalf("got %d", got)
	}
	if got := s.CallName("sensor/b", abi.OpRead, buf, 0); got != abi.EPERM.Result() {
		t.Fatalf("not granted: %d", got)
	}
	if got := s.CallName("sensor/a", abi.OpRead, buf, 9); got != abi.EINVAL.Result() {
		t.Fatalf("bad length: %d", got)
	}
}

// FuzzSessionABI drives open/call/close with arbitrary arguments over a
// small memory: nothing may panic, and every result is a count that fits
// the buffer or one of the SPEC's errnos.
func FuzzSessionABI(f *testing.F) {
	f.Add([]byte{0, 0, 0, 8, 1, 0, 1, 100, 0, 4, 2, 0})
	f.Add([]byte{0, 16, 0, 8, 1, 9, 2, 250, 255, 255, 2, 3})
	f.Fuzz(func(t *testing.T, prog []byte) {
		s, m, _, _ := setup(t, "endpoints:\n  - {name: 'sensor/#', ops: [read, write, put]}\n  - {name: sensor/b, ops: [read], rate: 3/s}\n")
		valid := map[int32]bool{}
		for _, e := range []abi.Errno{abi.EPERM, abi.ENOENT, abi.EBADF, abi.EAGAIN, abi.EFAULT, abi.EINVAL, abi.ENOSPC, abi.ENOSYS, abi.EMSGSIZE} {
			valid[e.Result()] = true
		}
		arg := func(i int) uint32 {
			if i >= len(prog) {
				return 0
			}
			v := uint32(prog[i])
			if v > 250 { // reach the edges of the u32 range too
				return 0xFFFFFFFF - (255 - v)
			}
			return v * 4
		}
		for i := 0; i+6 <= len(prog); i += 6 {
			var r int32
			switch prog[i] % 3 {
			case 0:
				r = s.Open(m, arg(i+1), arg(i+2))
			case 1:
				r = s.Call(m, uint32(prog[i+1]%8), uint32(prog[i+2]%9), arg(i+3), arg(i+4), arg(i+5))
				if r > 0 && uint32(r) > arg(i+5) {
					t.Fatalf("wrote %d bytes into a %d byte buffer", r, arg(i+5))
				}
			case 2:
				r = s.Close(uint32(prog[i+1] % 8))
			}
			if r < 0 && !valid[r] {
				t.Fatalf("result %d is not a SPEC errno", r)
			}
		}
	})
}

// BenchmarkSessionCall is the host side of one permitted endpoint call
// (everything after the runtime's host-function entry).
func BenchmarkSessionCall(b *testing.B) {
	s, m, _, _ := setup(b, "endpoints:\n  - {name: sensor/a, ops: [read]}\n")
	h := uint32(s.Open(m, 0, 8))
	var rm runtime.Memory = m // as a runtime passes it: no conversion per call
	b.ReportAllocs()
	for b.Loop() {
		s.Call(rm, h, 1, 100, 0, 4)
	}
}

// BenchmarkSessionCallRated is a permitted call under a rate ceiling (as
// log and msg/# are by default): the fast path plus a clock read.
func BenchmarkSessionCallRated(b *testing.B) {
	reg := endpoint.NewRegistry()
	reg.Register("sensor/a", &echo{})
	m := manifest(b, base+"endpoints:\n  - {name: sensor/a, ops: [read]}\n")
	s := endpoint.NewSession("c1", "t1", reg, endpoint.NewRules(m, meta.RateCeiling{Pattern: "sensor/#", N: 1 << 30}), nil)
	mm := make(mem, 1024)
	copy(mm, "sensor/a")
	h := uint32(s.Open(mm, 0, 8))
	var rm runtime.Memory = mm
	b.ReportAllocs()
	for b.Loop() {
		s.Call(rm, h, 1, 100, 0, 4)
	}
}

func BenchmarkSessionCallDenied(b *testing.B) {
	s, m, _, _ := setup(b, "endpoints:\n  - {name: sensor/a, ops: [write]}\n")
	h := uint32(s.Open(m, 0, 8))
	var rm runtime.Memory = m // as a runtime passes it: no conversion per call
	b.ReportAllocs()
	for b.Loop() {
		s.Call(rm, h, 1, 100, 0, 4)
	}
}
