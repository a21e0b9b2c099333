// Package container is one installed container: its code, its rulebook in
// force, its instance and endpoint session, its lifecycle state and stats.
// It knows how to run one activation; when to run one is the scheduler's
// business (package sched).
package container

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tinycontainer/tinycontainer/endpoint"
	"github.com/tinycontainer/tinycontainer/endpoint/event"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// ErrState is the class of refused lifecycle transitions.
var ErrState = errors.New("invalid state transition")

// Inbox is where an event-triggered container's messages wait.
type Inbox interface {
	Next() (topic string, payload []byte, ok bool)
	Len() int
}

// Stats are a container's counters (SPEC section 6).
type Stats struct {
	Activations       uint64
	Faults            uint64
	LastFault         runtime.FaultKind
	MissedDeadlines   uint64
	EndpointCalls     uint64
	DeniedCalls       uint64
	RateLimited       uint64
	CPUTimeNs         uint64 // thread CPU time of its activations
	ThrottledNs       uint64 // time its activations waited for its tenant's next window
	Preemptions       uint64 // times an activation of it was suspended for other work
	LastExit          int32
	ConsecutiveFaults int
	MemoryBytes       uint64
}

// Container is one installed container.
type Container struct {
	Name   string
	Tenant string
	Kind   runtime.Kind

	mod  runtime.Module
	man  atomic.Pointer[meta.Manifest]
	caps atomic.Pointer[[]meta.RateCeiling] // its tenant's rate ceilings
	sess *endpoint.Session

	// Owned by the activation in progress (the scheduler runs a container
	// at most once at a time).
	inst  runtime.Instance
	inbox Inbox

	mu    sync.Mutex
	state State

	activations, faults, missed, calls, denied, limited, cpuNs atomic.Uint64
	throttledNs, preemptions                                   atomic.Uint64
	lastFault                                                  atomic.Value // runtime.FaultKind
	lastExit                                                   atomic.Int32
	consecutive                                                atomic.Int32
	memBytes                                                   atomic.Uint64
}

// New makes a stopped container from compiled code and its manifest, its
// calls bounded by its tenant's rate ceilings caps.
func New(m *meta.Manifest, kind runtime.Kind, mod runtime.Module, reg *endpoint.Registry, a endpoint.Auditor, caps ...meta.RateCeiling) *Container {
	c := &Container{Name: m.Name, Tenant: m.Tenant, Kind: kind, mod: mod}
	c.man.Store(m)
	c.caps.Store(&caps)
	c.sess = endpoint.NewSession(m.Name, m.Tenant, reg, endpoint.NewRules(m, caps...), a)
	c.lastFault.Store(runtime.FaultKind(""))
	return c
}

// Manifest is the metadata in force.
func (c *Container) Manifest() *meta.Manifest { return c.man.Load() }

// Schedule is the schedule in force (read at every release).
func (c *Container) Schedule() meta.Schedule { return c.man.Load().Schedule }

// SetManifest installs new metadata on the live container: permissions
// apply from the next endpoint call, the schedule from the next release;
// the instance and its memory are kept.
func (c *Container) SetManifest(m *meta.Manifest) {
	c.man.Store(m)
	c.sess.SetRules(endpoint.NewRules(m, *c.caps.Load()...))
}

// SetRateCeilings replaces the rate ceilings (the tenant's grant changed);
// they apply from the next endpoint call. Calls of SetManifest and
// SetRateCeilings must not race each other.
func (c *Container) SetRateCeilings(caps []meta.RateCeiling) {
	c.caps.Store(&caps)
	c.sess.SetRules(endpoint.NewRules(c.man.Load(), caps...))
}

// SetInbox sets where event messages come from (nil for none). Call it
// only while the container is not running an activation.
func (c *Container) SetInbox(in Inbox) { c.inbox = in }

// Ready reports whether an event container has a message waiting.
func (c *Container) Ready() bool { return c.inbox != nil && c.inbox.Len() > 0 }

// State is the lifecycle state now.
func (c *Container) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Move changes the state, refusing illegal transitions.
func (c *Container) Move(to State) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == to {
		return nil
	}
	if !CanMove(c.state, to) {
		return fmt.Errorf("%w: %s: %s -> %s", ErrState, c.Name, c.state, to)
	}
	if to == Running && c.state == Faulted {
		c.consecutive.Store(0)
	}
	c.state = to
	return nil
}

// Missed counts a release that found the previous activation unfinished.
func (c *Container) Missed() { c.missed.Add(1) }

// Owner is the container's tenant (whose CPU share it draws on).
func (c *Container) Owner() string { return c.Tenant }

// Preempted counts an activation suspended for other work.
func (c *Container) Preempted() { c.preemptions.Add(1) }

// Throttled adds time an activation waited for its tenant's next window.
func (c *Container) Throttled(d time.Duration) { c.throttledNs.Add(uint64(max(d, 0))) }

// Activate runs one activation under budget b: it makes a fresh instance
// when there is none (first run, or after a fault), hands the next event
// message to the guest, runs the entry point and records the outcome. The
// returned error is a *runtime.Fault for guest faults. An activation cut
// short by b.Stop (the container is being stopped or removed, the device
// shuts down) is not a fault: its instance is dropped, nothing is counted
// against it.
func (c *Container) Activate(ctx context.Context, b *runtime.Budget) error {
	if c.inst == nil {
		// A start function runs under the activation's budget, nested
		// (preemptible and stoppable like the activation; its own CPU
		// limit), and its endpoint calls see that budget.
		ictx := ctx
		if b != nil {
			ictx = runtime.WithBudget(ctx, b)
		}
		c.sess.Reset()
		c.sess.Begin(b)
		inst, err := c.mod.Instantiate(ictx, c.sess)
		c.sess.Begin(nil)
		if err != nil {
			c.sess.Reset()
			if b != nil {
				c.cpuNs.Add(uint64(b.CPU()))
				if b.Stopped() { // cut short (stop, removal, shutdown): not a fault
					c.dropInstance()
					return &runtime.Fault{Kind: runtime.FaultBudget, Err: fmt.Errorf("instantiate: %w", err)}
				}
			}
			return c.fault(&runtime.Fault{Kind: runtime.FaultTrap, Err: fmt.Errorf("instantiate: %w", err)})
		}
		c.inst = inst
	}
	var ev []byte
	if c.inbox != nil {
		if topic, payload, ok := c.inbox.Next(); ok {
			ev = event.Encode(topic, payload)
		}
	}
	c.sess.SetEvent(ev)
	var start int64
	if b == nil {
		start = runtime.Now()
	}
	c.sess.Begin(b)
	code, err := c.inst.Run(ctx, b)
	c.sess.Begin(nil)
	if b != nil {
		c.cpuNs.Add(uint64(b.CPU())) // the runtime ended the stretch
	} else {
		c.cpuNs.Add(uint64(runtime.Now() - start))
	}
	n := c.sess.TakeCounts()
	c.calls.Add(n.Calls)
	c.denied.Add(n.Denied)
	c.limited.Add(n.Limited)
	c.sess.Flush()
	// The activation count moves last, so a reader that sees it sees the
	// rest of this activation's record too.
	defer c.activations.Add(1)
	if err != nil {
		var f *runtime.Fault
		if !errors.As(err, &f) {
			f = &runtime.Fault{Kind: runtime.FaultTrap, Err: err}
		}
		if f.Kind == runtime.FaultBudget && b != nil && b.Stopped() {
			c.dropInstance() // cut mid-way: the next start begins fresh
			return f
		}
		return c.fault(f)
	}
	c.memBytes.Store(c.inst.MemorySize())
	c.lastExit.Store(code)
	c.consecutive.Store(0)
	return nil
}

// fault records f and drops the instance, so the next activation starts
// fresh (kv data lives in the store and stays).
func (c *Container) fault(f *runtime.Fault) error {
	// last_fault first: a reader that sees the new count sees its kind
	// (regression: a status read between the two showed faults 1 with no
	// last_fault).
	c.lastFault.Store(f.Kind)
	c.dropInstance()
	c.consecutive.Add(1)
	c.faults.Add(1)
	return f
}

func (c *Container) dropInstance() {
	if c.inst != nil {
		_ = c.inst.Close(context.Background())
		c.inst = nil
	}
	c.memBytes.Store(0)
}

// ConsecutiveFaults is the number of faults since the last clean activation.
func (c *Container) ConsecutiveFaults() int { return int(c.consecutive.Load()) }

// Reset drops the instance; the next activation starts fresh. Call it only
// while no activation runs (for example when the container is stopped).
func (c *Container) Reset() { c.dropInstance() }

// Close releases the instance and the compiled code.
func (c *Container) Close(ctx context.Context) error {
	c.dropInstance()
	return c.mod.Close(ctx)
}

// Stats returns a snapshot of the counters.
func (c *Container) Stats() Stats {
	return Stats{
		Activations:       c.activations.Load(),
		Faults:            c.faults.Load(),
		LastFault:         c.lastFault.Load().(runtime.FaultKind),
		MissedDeadlines:   c.missed.Load(),
		EndpointCalls:     c.calls.Load(),
		DeniedCalls:       c.denied.Load(),
		RateLimited:       c.limited.Load(),
		CPUTimeNs:         c.cpuNs.Load(),
		ThrottledNs:       c.throttledNs.Load(),
		Preemptions:       c.preemptions.Load(),
		LastExit:          c.lastExit.Load(),
		ConsecutiveFaults: int(c.consecutive.Load()),
		MemoryBytes:       c.memBytes.Load(),
	}
}
