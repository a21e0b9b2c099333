package endpoint

import (
	"sync/atomic"
	"time"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// MaxHandles is how many endpoints one instance may hold open at once.
const MaxHandles = 64

// maxNameLen bounds endpoint names passed to open.
const maxNameLen = 256

// Rules is a manifest compiled for the permission check, with the rate
// ceilings of its tenant. A live metadata update installs a new Rules;
// handles notice the new generation on their next call and recompute their
// grant.
type Rules struct {
	Manifest *meta.Manifest
	gen      uint64
	limiters []*limiter // by endpoint rule index; nil when the rule has no rate
	caps     []rateCap
}

// rateCap is a rate ceiling and its count of this container's calls (one
// count for all the endpoints its pattern matches).
type rateCap struct {
	pattern string
	lim     *limiter
}

var rulesGen atomic.Uint64

// NewRules compiles m under the rate ceilings caps (SPEC section 5): a
// call on an endpoint that a rule with a rate grants is bounded by that
// rate; any other call by every ceiling whose pattern matches the
// endpoint's name. Rate limits start full.
func NewRules(m *meta.Manifest, caps ...meta.RateCeiling) *Rules {
	r := &Rules{Manifest: m, gen: rulesGen.Add(1), limiters: make([]*limiter, len(m.Endpoints))}
	for i, e := range m.Endpoints {
		if e.Rate != nil {
			r.limiters[i] = newLimiter(e.Rate.N, e.Rate.Per)
		}
	}
	for _, c := range caps {
		r.caps = append(r.caps, rateCap{pattern: c.Pattern, lim: newLimiter(c.N, time.Second)})
	}
	return r
}

// limitersFor lists the limiters of calls on name, granted by the rules
// with rateRule the first matching rule with a rate (or -1); nil when the
// calls are not limited.
func (r *Rules) limitersFor(name string, rateRule int) []*limiter {
	if rateRule >= 0 {
		return []*limiter{r.limiters[rateRule]}
	}
	var out []*limiter
	for _, c := range r.caps {
		if meta.Match(c.pattern, name) {
			out = append(out, c.lim)
		}
	}
	return out
}

// admit counts a call at now against every limiter of lims, or none when
// one of them is full.
func admit(lims []*limiter, now int64) bool {
	for _, l := range lims {
		if !l.ok(now) {
			return false
		}
	}
	for _, l := range lims {
		l.take()
	}
	return true
}

// Denial is one audited denied call. Consecutive identical denials within
// an activation are folded into one Denial with Count > 1, so a guest that
// hammers a forbidden endpoint cannot flood the audit log or slow down.
type Denial struct {
	Time      time.Time
	Container string
	Tenant    string
	Endpoint  string
	Op        string // "open" for a refused open
	Reason    string
	Count     int
}

// Auditor receives denied calls when a session is flushed.
type Auditor interface {
	Audit(d Denial)
}

// Counts are a session's call counters since the last TakeCounts.
type Counts struct {
	Calls, Denied, Limited uint64
}

type handle struct {
	open bool
	name string
	ep   Endpoint
	gen  uint64     // Rules generation that ops and lim were computed for
	ops  abi.OpSet  // granted by the rules of generation gen
	sup  abi.OpSet  // supported by ep (fixed)
	lims []*limiter // rate limits of calls on it; nil when none
	// fast are the ops a call may take the fast path for: granted and
	// supported (0 for a closed handle).
	fast abi.OpSet
	// mem says the endpoint reads further guest pointers (Call.Memory).
	mem bool
}

// MemoryUser is implemented by endpoints whose requests hold further guest
// pointers; only their calls see the guest memory (Call.Memory).
type MemoryUser interface {
	UsesMemory()
}

func (h *handle) refast() {
	h.fast = 0
	if h.open {
		h.fast = h.ops & h.sup
	}
}

// Call is one endpoint call in progress, as the endpoint serving it sees
// it: which container calls, the metadata in force and, for a MemoryUser,
// the caller's memory. It is valid only until the endpoint's Call
// returns: from then on Memory returns nil, so guest memory (which a pooled
// instance may later hand to another container) cannot be reached outside
// a call. Endpoints must not keep it.
type Call struct {
	s   *Session
	mem runtime.Memory
}

// Container is the calling container's name.
func (c *Call) Container() string { return c.s.container }

// Tenant is the calling container's tenant.
func (c *Call) Tenant() string { return c.s.tenant }

// Rules are the rules in force.
func (c *Call) Rules() *Rules { return c.s.rules.Load() }

// Memory is the caller's memory during the call of an endpoint that is a
// MemoryUser; nil otherwise and after the call.
func (c *Call) Memory() runtime.Memory { return c.mem }

// Event is the encoded event of the current activation (SPEC section 3,
// endpoint `event`); nil when the activation was not caused by a message.
func (c *Call) Event() []byte { return c.s.event }

// Session is one container instance's side of the guest ABI: it implements
// runtime.Host. A session is used by one activation at a time (the
// scheduler never runs a container twice at once), so its hot path takes
// no locks; Rules may be replaced from any goroutine.
type Session struct {
	container, tenant string

	reg     *Registry
	auditor Auditor
	rules   atomic.Pointer[Rules]
	// gen mirrors rules' generation, stored after rules, so the fast path
	// compares a handle's grant against one word of the session (a handle
	// computed under newer rules only looks stale and takes the full path).
	gen     atomic.Uint64
	handles []handle

	// callCtx is the context of the call in progress, handed to endpoints;
	// its memory is set only during a call.
	callCtx Call
	// event is the encoded event of the current activation (SetEvent).
	event []byte
	// now is the monotonic clock of rate limits (ns).
	now func() int64

	counts  Counts
	pending []Denial
	// lastDenied is the handle and op of the newest pending denial, so a
	// guest repeating a denied call costs one comparison per call.
	lastDenied    *handle
	lastDeniedOp  abi.Op
	lastDeniedGen uint64

	// budget is the running activation's, for Wait (nil between
	// activations).
	budget *runtime.Budget
}

// Begin tells the session which activation's budget is in force (nil when
// the activation ends).
func (s *Session) Begin(b *runtime.Budget) { s.budget = b }

// Wait runs f, part of an endpoint call that waits for something other
// than the CPU (storage being made durable, a network), with the
// activation's worker given to other ready work meanwhile; the wait is
// not charged to the activation's budget. Endpoints call it around the
// waiting part only.
func (c *Call) Wait(f func()) { c.s.budget.Wait(f) }

// Checkpoint is a suspension point inside a long endpoint call (one that
// can take more than ~100 µs of CPU, such as an inference): the
// activation may be suspended here while higher-priority work runs (the
// call goes on where it was afterwards), and Checkpoint reports true when
// the activation must end (its budget is used up, or it is being
// stopped): the endpoint should then give the call up at once. Endpoints
// call it every few tens of microseconds of work. Outside an activation
// it never suspends and reports false.
func (c *Call) Checkpoint() bool { return c.s.budget.Checkpoint() }

var (
	_ runtime.Host    = (*Session)(nil)
	_ runtime.BufHost = (*Session)(nil)
)

// NewSession returns a session for container under rules.
func NewSession(container, tenant string, reg *Registry, rules *Rules, a Auditor) *Session {
	s := &Session{container: container, tenant: tenant, reg: reg, auditor: a, now: runtime.Now}
	s.callCtx.s = s
	s.SetRules(rules)
	return s
}

// UseClock replaces the monotonic clock (ns) the session's rate limits
// read, for tests and simulations; call it before any call.
func (s *Session) UseClock(now func() int64) { s.now = now }

// SetEvent sets the encoded event of the activation about to run (nil for
// none); call it only between activations.
func (s *Session) SetEvent(ev []byte) { s.event = ev }

// SetRules installs new rules; they apply from the next call on.
func (s *Session) SetRules(r *Rules) {
	s.rules.Store(r)
	s.gen.Store(r.gen)
}

// Rules returns the rules in force.
func (s *Session) Rules() *Rules { return s.rules.Load() }

// Reset closes every handle (a fresh instance starts with none).
func (s *Session) Reset() {
	clear(s.handles)
	s.handles = s.handles[:0]
	s.event = nil
}

// TakeCounts returns the counters since the last call and zeroes them.
func (s *Session) TakeCounts() Counts {
	c := s.counts
	s.counts = Counts{}
	return c
}

// Flush hands the pending denials to the auditor.
func (s *Session) Flush() {
	if s.auditor != nil {
		for _, d := range s.pending {
			s.auditor.Audit(d)
		}
	}
	clear(s.pending)
	s.pending = s.pending[:0]
	s.lastDenied = nil
}

const maxPending = 32

func (s *Session) deny(name, op, reason string) {
	s.counts.Denied++
	s.lastDenied = nil
	if n := len(s.pending); n > 0 {
		last := &s.pending[n-1]
		if last.Endpoint == name && last.Op == op && last.Reason == reason {
			last.Count++
			return
		}
		if n == maxPending {
			last.Count++ // over the cap the last record absorbs the rest
			return
		}
	}
	s.pending = append(s.pending, Denial{
		Time: time.Now(), Container: s.container, Tenant: s.tenant,
		Endpoint: name, Op: op, Reason: reason, Count: 1,
	})
}

// Open implements runtime.Host: permission first (so a container learns
// nothing of endpoints it may not use), then existence.
func (s *Session) Open(mem runtime.Memory, namePtr, nameLen uint32) int32 {
	s.counts.Calls++
	if nameLen == 0 || nameLen > maxNameLen {
		return abi.EINVAL.Result()
	}
	b, ok := mem.Read(namePtr, nameLen)
	if !ok {
		return abi.EFAULT.Result()
	}
	name := string(b)
	r := s.rules.Load()
	ops, rateRule := r.Manifest.Lookup(name)
	if ops == 0 {
		s.deny(name, "open", "not granted")
		return abi.EPERM.Result()
	}
	ep, ok := s.reg.Lookup(name)
	if !ok {
		return abi.ENOENT.Result()
	}
	h := handle{open: true, name: name, ep: ep, gen: r.gen, ops: ops, sup: ep.Ops(), lims: r.limitersFor(name, rateRule)}
	_, h.mem = ep.(MemoryUser)
	h.refast()
	for i := range s.handles {
		if !s.handles[i].open {
			s.handles[i] = h
			return int32(i)
		}
	}
	if len(s.handles) >= MaxHandles {
		return abi.ENOSPC.Result()
	}
	s.handles = append(s.handles, h)
	return int32(len(s.handles) - 1)
}

// Close implements runtime.Host.
func (s *Session) Close(h uint32) int32 {
	s.counts.Calls++
	if h >= uint32(len(s.handles)) || !s.handles[h].open {
		return abi.EBADF.Result()
	}
	s.handles[h] = handle{}
	return 0
}

// Call implements runtime.Host. The order of checks: handle, permission
// (against the rules in force now), rate, bounds, op support.
func (s *Session) Call(mem runtime.Memory, h, op, bufPtr, inLen, bufCap uint32) int32 {
	if buf, ok := mem.Read(bufPtr, max(inLen, bufCap)); ok {
		return s.CallBuf(mem, h, op, bufPtr, buf, inLen, bufCap)
	}
	s.counts.Calls++
	return s.call(mem, h, op, bufPtr, inLen, bufCap)
}

// CallBuf implements runtime.BufHost: Call with the buffer already
// bounds-checked by the runtime. A call on a handle whose grant is
// current, for an op granted and supported, takes a fast path with the
// same outcome as the full one (a rate-limited one reads the clock); so
// does a repeat of the last denied call.
func (s *Session) CallBuf(mem runtime.Memory, h, op, bufPtr uint32, buf []byte, inLen, bufCap uint32) int32 {
	s.counts.Calls++
	if h < uint32(len(s.handles)) {
		hd := &s.handles[h]
		gen := s.gen.Load()
		if hd.fast&(1<<op) != 0 && hd.gen == gen { // ops past 15 shift out to 0
			if hd.lims != nil && !admit(hd.lims, s.now()) {
				s.counts.Limited++
				return abi.EAGAIN.Result()
			}
			if hd.mem {
				return s.callMem(hd.ep, mem, abi.Op(op), buf[:inLen], buf[:bufCap])
			}
			return hd.ep.Call(&s.callCtx, abi.Op(op), buf[:inLen], buf[:bufCap])
		}
		if hd == s.lastDenied && abi.Op(op) == s.lastDeniedOp && gen == s.lastDeniedGen {
			s.counts.Denied++ // the same denial again: one more in its audit record
			s.pending[len(s.pending)-1].Count++
			return abi.EPERM.Result()
		}
	}
	return s.call(mem, h, op, bufPtr, inLen, bufCap)
}

// call is Call's full path: every check in order.
func (s *Session) call(mem runtime.Memory, h, op, bufPtr, inLen, bufCap uint32) int32 {
	if h >= uint32(len(s.handles)) || !s.handles[h].open {
		return abi.EBADF.Result()
	}
	hd := &s.handles[h]
	if r := s.rules.Load(); hd.gen != r.gen {
		s.regrant(hd, r)
	}
	o := abi.Op(op)
	if !hd.ops.Has(o) {
		s.deny(hd.name, o.String(), "op not granted")
		s.lastDenied, s.lastDeniedOp, s.lastDeniedGen = hd, o, hd.gen
		return abi.EPERM.Result()
	}
	if hd.lims != nil && !admit(hd.lims, s.now()) {
		s.counts.Limited++
		return abi.EAGAIN.Result()
	}
	n := max(inLen, bufCap)
	buf, ok := mem.Read(bufPtr, n)
	if !ok {
		return abi.EFAULT.Result()
	}
	if !hd.sup.Has(o) {
		return abi.ENOSYS.Result()
	}
	if hd.mem {
		return s.callMem(hd.ep, mem, o, buf[:inLen], buf[:bufCap])
	}
	return hd.ep.Call(&s.callCtx, o, buf[:inLen], buf[:bufCap])
}

// callMem calls an endpoint that reads further guest pointers: the guest
// memory is in the call's context for the length of the call only.
func (s *Session) callMem(ep Endpoint, mem runtime.Memory, op abi.Op, in, out []byte) int32 {
	s.callCtx.mem = mem
	defer func() { s.callCtx.mem = nil }() // also when the endpoint panics
	return ep.Call(&s.callCtx, op, in, out)
}

func (s *Session) regrant(hd *handle, r *Rules) {
	ops, rateRule := r.Manifest.Lookup(hd.name)
	hd.ops, hd.gen, hd.lims = ops, r.gen, r.limitersFor(hd.name, rateRule)
	hd.refast()
}

// CallName implements runtime.Host: one call by name, with the same checks
// as Call, for runtime shims (WASI fd_write, clock_time_get).
func (s *Session) CallName(name string, op abi.Op, buf []byte, inLen int) int32 {
	s.counts.Calls++
	r := s.rules.Load()
	ops, rateRule := r.Manifest.Lookup(name)
	if !ops.Has(op) {
		s.deny(name, op.String(), "op not granted")
		return abi.EPERM.Result()
	}
	if !s.admitName(r, name, rateRule) {
		s.counts.Limited++
		return abi.EAGAIN.Result()
	}
	ep, ok := s.reg.Lookup(name)
	if !ok {
		return abi.ENOENT.Result()
	}
	if !ep.Ops().Has(op) {
		return abi.ENOSYS.Result()
	}
	if inLen < 0 || inLen > len(buf) {
		return abi.EINVAL.Result()
	}
	return ep.Call(&s.callCtx, op, buf[:inLen], buf)
}

// admitName is admit for a call by name (no handle, no allocation).
func (s *Session) admitName(r *Rules, name string, rateRule int) bool {
	if rateRule >= 0 {
		return r.limiters[rateRule].allow(s.now())
	}
	var now int64
	n := 0
	for _, c := range r.caps {
		if meta.Match(c.pattern, name) {
			if n == 0 {
				now = s.now()
			}
			n++
			if !c.lim.ok(now) {
				return false
			}
		}
	}
	for _, c := range r.caps {
		if n > 0 && meta.Match(c.pattern, name) {
			c.lim.take()
		}
	}
	return true
}
