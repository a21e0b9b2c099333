package runtime

import (
	"math"
	goruntime "runtime"
	"sync/atomic"
	"time"
)

// epoch anchors Now; monotonic readings are relative to it.
var epoch = time.Now()

// Now is the monotonic time in nanoseconds since the process started.
func Now() int64 { return int64(time.Since(epoch)) }

// hasCPUClock says whether this platform has a per-thread CPU clock.
var hasCPUClock = func() bool { _, ok := ThreadCPU(); return ok }()

const (
	// calibrate is how long (wall time) an activation runs before its
	// thread's CPU clock is started: shorter activations never pay the
	// clock's system calls and are charged their wall time.
	calibrate = int64(200 * time.Microsecond)
	// prefixCap bounds what the stretch before the clock started is
	// charged: it ran for at most calibrate plus one checkpoint distance,
	// so a longer wall time there was time the thread spent off the CPU.
	prefixCap = int64(400 * time.Microsecond)
)

// Budget flags, set from any goroutine.
const (
	flagStop  = 1 << iota // end the activation at its next checkpoint
	flagYield             // the scheduler wants to hear from the activation
)

// Gate is the scheduler's side of a running activation: the suspension
// mechanism calls it from the activation's own goroutine, at a checkpoint
// (or around a host call that waits). The policy behind it decides; the
// Budget only does what the answer says.
type Gate interface {
	// Checkpoint is called when the scheduler asked to hear from the
	// activation (RequestYield) or when its slice is used up; ran is the
	// CPU time it used since the previous call. It returns the CPU time
	// the activation may use before the next call (<= 0: no limit) and,
	// when the activation must wait first (suspended, throttled), a
	// channel that receives when it may go on.
	Checkpoint(b *Budget, ran time.Duration) (slice time.Duration, wait <-chan struct{})
	// Block is called before a host call that waits (storage, a
	// network): the activation gives up its worker meanwhile.
	Block(b *Budget, ran time.Duration)
	// Unblock is called after it: it returns nil when the activation may
	// go on at once, or a channel that receives when it has a worker.
	Unblock(b *Budget) <-chan struct{}
}

// Budget bounds one activation by the CPU time it uses, and is where a
// running activation meets the scheduler. Runtimes call Checkpoint at
// points the guest itself reaches (loop back-edges, function entries,
// every few thousand instructions, host calls charged by the work they
// do), so a runaway guest stops soon after its budget without a
// per-instruction tax, and a lower-priority guest is suspended there when
// the scheduler asks.
//
// CPU time is the thread's CPU clock, read only on the slow path: the fast
// path of a checkpoint is one atomic load and one monotonic clock read, the
// same as a wall-clock deadline. Wall time bounds CPU time from above, so
// the slow path runs when the wall clock says the budget (or the slice
// the scheduler granted) could be used up, and reads the CPU clock then.
// An activation that ends within its first ~200 µs never reads the CPU
// clock (a system call) and is charged its wall time.
//
// A Budget is used by one activation at a time: Arm, then Begin, any
// number of Checkpoint and Wait, then End, all on the goroutine running
// the activation. Stop and RequestYield may be called from anywhere.
type Budget struct {
	flags atomic.Uint32

	limit     int64 // CPU ns this arming may use; 0: no limit
	used      int64 // CPU ns charged since Arm
	wall0     int64 // Now() at the start of the current stretch
	cpu0      int64 // the thread's CPU clock at wall0, when measured
	measured  bool  // cpu0 is valid: the clock runs and the thread is locked
	locked    bool  // this Budget locked the goroutine to its thread
	long      bool  // the previous run started the clock: start it at Begin
	next      int64 // Now() from which a checkpoint takes the slow path
	slice     int64 // CPU ns the gate granted; <= 0: no slice
	sliceUsed int64 // CPU ns since the gate last heard
	suspended int64 // wall ns spent suspended or waiting since Arm
	nested    int64 // CPU ns charged by Nest since Arm (not in used)
	inRun     bool  // between Arm or Begin and End
	gate      Gate
}

// SetGate connects the budget to a scheduler (nil: no suspension). Call
// it only while no activation runs under b.
func (b *Budget) SetGate(g Gate) { b.gate = g }

// Arm gives the next activation a budget of d CPU time (0: no limit) and
// clears any stop.
func (b *Budget) Arm(d time.Duration) {
	b.limit = int64(d)
	b.used, b.sliceUsed, b.slice, b.suspended, b.nested = 0, 0, 0, 0, 0
	// A yield asked for since the scheduler handed this activation its
	// worker stands (the scheduler clears it when an activation ends).
	b.flags.And(flagYield)
	b.unlock()
	b.inRun, b.measured, b.next = false, false, 0 // the first checkpoint or Begin starts the stretch
}

// Grant sets the CPU time the activation may use before the gate wants to
// hear from it (a time slice; <= 0: none). Call it after Arm.
func (b *Budget) Grant(slice time.Duration) { b.slice, b.sliceUsed = int64(slice), 0 }

// Stop makes the activation end at its next checkpoint (stop, removal,
// shutdown); a suspended activation ends when its scheduler wakes it.
func (b *Budget) Stop() { b.flags.Or(flagStop) }

// Stopped reports whether Stop was called since Arm: an activation that
// ended for it was cut short, it did not overrun.
func (b *Budget) Stopped() bool { return b.flags.Load()&flagStop != 0 }

// RequestYield makes the activation call its gate at its next checkpoint.
func (b *Budget) RequestYield() { b.flags.Or(flagYield) }

// ClearYield withdraws RequestYield (the gate calls it when it answers).
func (b *Budget) ClearYield() { b.flags.And(^uint32(flagYield)) }

// Limit is the CPU time the armed activation may use (0: no limit).
func (b *Budget) Limit() time.Duration { return time.Duration(b.limit) }

// Used is the CPU time charged since Arm (complete after End).
func (b *Budget) Used() time.Duration { return time.Duration(b.used) }

// CPU is all the CPU time charged since Arm: Used plus what Nest ran.
func (b *Budget) CPU() time.Duration { return time.Duration(b.used + b.nested) }

// Nest runs f, guest code that runs for the activation but outside its
// entry point (a WebAssembly start function while the activation's
// instance is made), under a CPU limit of its own, d (0: none), instead
// of the armed one. Everything else of b holds for it: the scheduler's
// gate (f is suspended at its checkpoints when higher-priority work is
// ready, and its time slice counts), Stop, and the CPU clock. Its CPU time
// is not charged to the armed budget (Used is what it was before), only
// to CPU. f's runtime calls Begin/Checkpoint/End on b as for an
// activation.
func (b *Budget) Nest(d time.Duration, f func()) {
	b.End() // a stretch in progress is the activation's
	limit, used := b.limit, b.used
	b.limit, b.used = int64(d), 0
	defer func() {
		b.End()
		b.nested += b.used
		b.limit, b.used = limit, used
	}()
	f()
}

// Overrun is how far Used went past the limit (0 when within it).
func (b *Budget) Overrun() time.Duration {
	if b.limit == 0 || b.used <= b.limit {
		return 0
	}
	return time.Duration(b.used - b.limit)
}

// Suspended is the wall time the activation spent suspended, throttled or
// waiting in host calls since Arm.
func (b *Budget) Suspended() time.Duration { return time.Duration(b.suspended) }

// Begin starts a stretch of guest execution under b (the runtime calls it
// when it enters the guest). A nil b is no limit.
func (b *Budget) Begin() {
	if b == nil {
		return
	}
	now := Now()
	if b.inRun { // a stretch in progress is charged first
		if b.measured {
			b.account(now)
		} else {
			b.charge(min(now-b.wall0, b.unclocked()))
		}
	}
	b.start(now, b.long)
}

// start begins a stretch at now; with clock, on the CPU clock at once
// (the previous run was long enough to start it).
func (b *Budget) start(now int64, clock bool) {
	b.inRun = true
	b.wall0 = now
	b.measured = false
	if clock {
		b.startClock()
	}
	b.schedule(now)
}

// End ends the stretch begun by Begin (or Arm), charging its CPU time. It
// does nothing outside a stretch.
func (b *Budget) End() {
	if b == nil || !b.inRun {
		return
	}
	b.inRun = false
	now := Now()
	if b.measured {
		b.account(now)
	} else {
		// Short: its wall time, bounded like the stretch before the
		// clock starts (more was time off the CPU).
		b.charge(min(now-b.wall0, b.unclocked()))
	}
	b.long = b.measured
	b.measured = false
	b.unlock()
}

// Checkpoint is called by runtimes at every checkpoint: it charges CPU
// time, suspends the activation when its scheduler says so (blocking until
// it may go on; the guest's memory and stack stay as they are), and
// reports whether the activation must end now (budget used up, or
// stopped). A nil b never ends.
func (b *Budget) Checkpoint() bool {
	if b == nil {
		return false
	}
	if b.flags.Load() == 0 && Now() < b.next {
		return false
	}
	return b.slow()
}

func (b *Budget) slow() bool {
	if !b.inRun { // armed, no Begin: the stretch starts now
		b.start(Now(), false)
	}
	b.account(Now())
	for {
		f := b.flags.Load()
		if f&flagStop != 0 || (b.limit > 0 && b.used >= b.limit) {
			return true
		}
		if b.gate == nil {
			b.ClearYield()
			break
		}
		if f&flagYield == 0 && (b.slice <= 0 || b.sliceUsed < b.slice) {
			break
		}
		ran := b.sliceUsed
		b.sliceUsed = 0
		slice, wait := b.gate.Checkpoint(b, time.Duration(ran))
		b.slice = int64(slice)
		if wait == nil {
			break
		}
		b.park(wait)
	}
	b.schedule(Now())
	return false
}

// Wait runs f, a host call that waits for something other than the CPU
// (storage being made durable, say), with the activation's worker given
// to other ready work meanwhile. The wait is not charged to the budget.
func (b *Budget) Wait(f func()) {
	if b == nil || b.gate == nil {
		f()
		return
	}
	now := Now()
	if b.measured {
		b.account(now)
	} else { // no system call for a short activation: its wall time so far
		b.charge(min(now-b.wall0, b.unclocked()))
	}
	ran := b.sliceUsed
	b.sliceUsed = 0
	b.gate.Block(b, time.Duration(ran))
	measured := b.measured
	b.unlock()
	b.measured = false
	f()
	if wait := b.gate.Unblock(b); wait != nil {
		<-wait
	}
	t1 := Now()
	b.suspended += t1 - now
	b.wall0 = t1
	if measured {
		b.startClock()
	}
	b.schedule(t1)
}

// park blocks the activation until wait receives. The thread is let go
// meanwhile (a suspended activation holds no OS thread); the clock is
// read again on whichever thread the activation resumes on.
func (b *Budget) park(wait <-chan struct{}) {
	t0 := Now()
	measured := b.measured
	b.unlock()
	b.measured = false
	<-wait
	now := Now()
	b.suspended += now - t0
	b.wall0 = now
	if measured {
		b.startClock()
	}
}

// account charges the stretch since wall0 and starts the next one at now.
func (b *Budget) account(now int64) {
	if b.measured {
		c, _ := ThreadCPU()
		b.charge(int64(c) - b.cpu0)
		b.cpu0 = int64(c)
	} else if hasCPUClock {
		// The clock starts now; the stretch before it ran for at most
		// calibrate plus one checkpoint distance.
		b.charge(min(now-b.wall0, prefixCap))
		b.startClock()
	} else {
		b.charge(now - b.wall0)
	}
	b.wall0 = now
}

// unclocked bounds what a stretch off the CPU clock is charged: on a
// platform without the clock, its wall time; else prefixCap.
func (b *Budget) unclocked() int64 {
	if hasCPUClock {
		return prefixCap
	}
	return math.MaxInt64
}

func (b *Budget) charge(ns int64) {
	ns = max(ns, 0)
	b.used += ns
	b.sliceUsed += ns
}

// startClock locks the goroutine to its thread and reads the thread's
// CPU clock.
func (b *Budget) startClock() {
	if !hasCPUClock {
		return
	}
	if !b.locked {
		goruntime.LockOSThread()
		b.locked = true
	}
	c, _ := ThreadCPU()
	b.cpu0 = int64(c)
	b.measured = true
}

func (b *Budget) unlock() {
	if b.locked {
		goruntime.UnlockOSThread()
		b.locked = false
	}
}

// schedule sets when the next checkpoint takes the slow path: the
// earliest wall time at which the budget or the slice could be used up
// (CPU time never runs faster than wall time), or the end of the
// calibration stretch while the clock has not started.
func (b *Budget) schedule(now int64) {
	d := int64(math.MaxInt64 / 4)
	if b.limit > 0 {
		d = b.limit - b.used
	}
	if b.gate != nil && b.slice > 0 {
		d = min(d, b.slice-b.sliceUsed)
	}
	if !b.measured && hasCPUClock {
		d = min(d, calibrate)
	}
	b.next = now + max(d, 0)
}
