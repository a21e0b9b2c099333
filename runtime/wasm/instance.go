package wasm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/tinycontainer/tinycontainer/runtime"
	"github.com/tinycontainer/tinycontainer/runtime/wasm/instrument"
)

// activation is an instance's context object: wazero hands it to every
// host function, which finds its instance with a type assertion. It is
// reused by every activation of the instance, so Run allocates nothing.
type activation struct {
	context.Context // the caller's context during a call into the guest

	inst   *Instance
	host   runtime.Host
	budget *runtime.Budget
	done   <-chan struct{} // Context.Done(), nil when it cannot be canceled
	mem    runtime.Memory  // bound on first use
	// bufHost is host's buffer fast path, nil when it has none.
	bufHost runtime.BufHost
	stack   [1]uint64
	exit    exitSignal
	// work is what host functions did since the last budget check, in
	// rough nanoseconds (see spend).
	work  int
	clock [8]byte
	line  []byte // partial log line
	// making carries the instance's memory allocator while wazero makes
	// the instance, nil after.
	making context.Context
}

// Value gives wazero the runtime's memory allocator while the instance is
// made, and the caller's values otherwise.
func (a *activation) Value(key any) any {
	if a.making != nil {
		if v := a.making.Value(key); v != nil {
			return v
		}
	}
	return a.Context.Value(key)
}

// memory is the guest memory for the Host, bound on first use.
// Read implements runtime.Memory over the instance's memory (bound by the
// host call that passes a), so the activation can stand for the memory
// without an interface conversion on every call.
func (a *activation) Read(ptr, n uint32) ([]byte, bool) { return a.mem.Read(ptr, n) }

func (a *activation) memory(mod api.Module) runtime.Memory {
	if a.mem == nil {
		if a.inst.m.hasMemory {
			a.mem = mod.Memory()
		} else {
			a.mem = noMemory{}
		}
	}
	return a.mem
}

// Instance states.
const (
	stateIdle = iota
	stateRunning
	stateFaulted
	stateClosed
)

// Instance is a live guest.
type Instance struct {
	m    *Module
	mod  api.Module
	main api.Function
	act  activation
	// globals and saved hold the guest's mutable globals and their values
	// at the start of the running activation (only for guests that may
	// call proc_exit).
	globals []api.MutableGlobal
	saved   []uint64
	memSize atomic.Uint64
	alloc   instAlloc

	mu      sync.Mutex
	state   int
	closing atomic.Bool // Close was called during an activation
}

var _ runtime.Instance = (*Instance)(nil)

// Instantiate makes a fresh instance: memory and globals initialized, the
// start function and _initialize (if exported) run under the runtime's
// InitBudget of CPU time. When ctx carries the budget of the activation
// that needs the instance (runtime.WithBudget), they run under it, nested
// (runtime.Budget.Nest): preemptible and stoppable like the activation,
// their CPU time their own. A guest fault during them returns a
// *runtime.Fault.
func (m *Module) Instantiate(ctx context.Context, host runtime.Host) (runtime.Instance, error) {
	if host == nil {
		return nil, errors.New("wasm: Instantiate needs a Host")
	}
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("wasm module %w", runtime.ErrClosed)
	}
	if !m.r.enter() {
		return nil, fmt.Errorf("wasm runtime %w", runtime.ErrClosed)
	}
	defer m.r.leave()
	inst := &Instance{m: m}
	a := &inst.act
	a.inst = inst
	a.host = host
	a.bufHost, _ = host.(runtime.BufHost)
	// guest runs the guest code of making the instance under the budget.
	var guest func(f func())
	if b := runtime.BudgetFrom(ctx); b != nil {
		a.enter(ctx, b)
		guest = func(f func()) {
			b.Nest(m.r.opts.InitBudget, func() {
				b.Begin()
				f()
			})
		}
	} else {
		b := new(runtime.Budget)
		b.Arm(m.r.opts.InitBudget)
		a.enter(ctx, b)
		guest = func(f func()) {
			b.Begin()
			defer b.End()
			f()
		}
	}
	defer a.leave()

	inst.alloc.pool = m.r.mem
	a.making = experimental.WithMemoryAllocator(context.Background(), &inst.alloc)
	var mod api.Module
	var err, initErr error
	guest(func() {
		mod, err = m.r.rt.InstantiateModule(a, m.cm, m.r.modCfg)
		a.making = nil
		if err == nil && m.hasInit {
			initErr = mod.ExportedFunction("_initialize").CallWithStack(a, nil)
		}
	})
	a.making = nil
	if err != nil {
		inst.alloc.release()
		if errors.Is(err, errClosing) {
			return nil, fmt.Errorf("wasm runtime %w during the start function", runtime.ErrClosed)
		}
		if f := inst.classify(err); f != nil {
			return nil, fmt.Errorf("wasm start function: %w", f)
		}
		return nil, fmt.Errorf("%w: %v", runtime.ErrInvalidCode, err)
	}
	inst.mod = mod
	if m.hasInit {
		if err := initErr; err != nil {
			_ = mod.Close(ctx)
			if errors.Is(err, errClosing) {
				return nil, fmt.Errorf("wasm runtime %w during _initialize", runtime.ErrClosed)
			}
			if f := inst.classify(err); f != nil {
				return nil, fmt.Errorf("wasm _initialize: %w", f)
			}
			return nil, fmt.Errorf("wasm _initialize: %w", err)
		}
	}
	inst.main = mod.ExportedFunction("tc_main")
	for _, name := range m.globals {
		g, ok := mod.ExportedGlobal(name).(api.MutableGlobal)
		if !ok {
			_ = mod.Close(ctx)
			return nil, fmt.Errorf("wasm: instrumented global %s missing", name)
		}
		inst.globals = append(inst.globals, g)
	}
	inst.saved = make([]uint64, len(inst.globals))
	inst.updateMemSize()
	return inst, nil
}

func (a *activation) enter(ctx context.Context, b *runtime.Budget) {
	a.Context = ctx
	a.done = ctx.Done()
	a.budget = b
	a.work = 0
}

// leave drops the references to the caller's context and budget.
func (a *activation) leave() {
	a.Context = context.Background()
	a.done = nil
	a.budget = nil
}

// Run runs tc_main once under b (nil: no deadline) and ctx (cancelling it
// ends the activation like an expired budget). It returns the guest's
// exit code, or a *runtime.Fault. proc_exit(code) ends the activation
// with code: the instance stays usable, its memory as the guest left it
// and its globals (the C stack pointer among them) as they were when the
// activation began. Run must not be called concurrently on one instance.
func (i *Instance) Run(ctx context.Context, b *runtime.Budget) (int32, error) {
	i.mu.Lock()
	switch i.state {
	case stateRunning:
		i.mu.Unlock()
		return 0, errors.New("wasm: instance is already running")
	case stateFaulted:
		i.mu.Unlock()
		return 0, errors.New("wasm: instance faulted earlier and cannot run again")
	case stateClosed:
		i.mu.Unlock()
		return 0, fmt.Errorf("wasm instance %w", runtime.ErrClosed)
	}
	if !i.m.r.enter() {
		i.mu.Unlock()
		return 0, fmt.Errorf("wasm runtime %w", runtime.ErrClosed)
	}
	i.state = stateRunning
	i.mu.Unlock()

	a := &i.act
	a.enter(ctx, b)
	for k, g := range i.globals {
		i.saved[k] = g.Get()
	}
	a.stack[0] = 0
	b.Begin()
	err := i.main.CallWithStack(a, a.stack[:])
	b.End()
	i.m.r.leave() // no guest code runs past here: Runtime.Close may free the memory
	if len(a.line) > 0 {
		_ = a.flushLine() // what the activation wrote is logged with it
	}
	code := int32(uint32(a.stack[0]))
	next := stateIdle
	if err != nil {
		var exit *exitSignal
		code = 0
		switch f := i.classify(err); {
		case errors.As(err, &exit):
			code = exit.code
			for k, g := range i.globals {
				g.Set(i.saved[k])
			}
			err = nil
		case errors.Is(err, errClosing):
			next = stateClosed
			err = fmt.Errorf("wasm instance %w during the activation", runtime.ErrClosed)
		default:
			next = stateFaulted
			err = f
		}
	}
	a.leave()
	i.updateMemSize()

	i.mu.Lock()
	if i.closing.Load() {
		next = stateClosed
	}
	i.state = next
	i.mu.Unlock()
	if next == stateClosed {
		_ = i.mod.Close(context.Background())
	}
	return code, err
}

// classify turns a failed call into a Fault. It returns nil for the ends
// that are not faults: proc_exit and closing.
func (i *Instance) classify(err error) *runtime.Fault {
	var exit *exitSignal
	switch {
	case errors.As(err, &exit), errors.Is(err, errClosing):
		return nil
	case errors.Is(err, runtime.ErrBudget):
		return &runtime.Fault{Kind: runtime.FaultBudget, Err: runtime.ErrBudget}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &runtime.Fault{Kind: runtime.FaultBudget, Err: fmt.Errorf("%w: %w", runtime.ErrBudget, context.Cause(i.act.Context))}
	case errors.Is(err, i.m.r.oobErr):
		return &runtime.Fault{Kind: runtime.FaultMemory, Err: err}
	}
	if i.mod != nil {
		// The depth counter is not unwound by a trap: above the limit it
		// says the trap was the stack limit's.
		if g := i.mod.ExportedGlobal(instrument.DepthExport); g != nil && api.DecodeU32(g.Get()) > i.m.stackLimit {
			return &runtime.Fault{Kind: runtime.FaultTrap, Err: ErrStackOverflow}
		}
	}
	return &runtime.Fault{Kind: runtime.FaultTrap, Err: err}
}

func (i *Instance) updateMemSize() {
	if i.m.hasMemory && i.mod != nil {
		i.memSize.Store(uint64(i.mod.Memory().Size()))
	}
}

// MemorySize is the guest memory's size in bytes as of the end of the
// last activation (or instantiation), so it is safe to call at any time.
func (i *Instance) MemorySize() uint64 { return i.memSize.Load() }

// Close frees the instance. During an activation it makes the activation
// end at its next checkpoint, and Run frees the instance on its way out.
func (i *Instance) Close(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	switch i.state {
	case stateClosed:
		return nil
	case stateRunning:
		i.closing.Store(true)
		return nil
	}
	i.state = stateClosed
	return i.mod.Close(ctx)
}
