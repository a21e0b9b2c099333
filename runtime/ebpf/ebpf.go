// Package ebpf is the eBPF "femto-container" runtime: it runs clang BPF
// objects (clang -target bpf -O2 -c) under the same guest ABI, rulebook
// and scheduler as WebAssembly (SPEC section 2), as machine code on
// linux/amd64 and linux/arm64 and in an interpreter elsewhere (or when
// asked).
//
// There is no kernel and there are no maps. Compile links the object
// itself (the tc_main section, the functions it calls, .rodata*, .data*,
// .bss*), verifies every instruction, and lays the container out in a
// 32-bit guest address space: stack frames below StackTop, data from
// DataBase. Every memory access is checked against those regions at run
// time, and the only helpers are the three of the guest ABI. Both
// engines behave the same, faults included; the tests and fuzzers run
// every program on both and compare.
package ebpf

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/tinycontainer/tinycontainer/runtime"
)

// Error classes of faults, wrapped in runtime.Fault.Err.
var (
	// ErrMemoryAccess: a load or store outside the container's regions,
	// or a store into its read-only data (a FaultMemory).
	ErrMemoryAccess = errors.New("memory access violation")
	// ErrCallDepth: more than 8 nested bpf-to-bpf calls (a FaultTrap).
	ErrCallDepth = errors.New("call stack overflow")
	// ErrHostPanic: a host function panicked during a helper call (a
	// FaultTrap).
	ErrHostPanic = errors.New("host function panicked")
)

var (
	_ runtime.Runtime  = (*Runtime)(nil)
	_ runtime.Module   = (*Module)(nil)
	_ runtime.Instance = (*Instance)(nil)
	_ runtime.Memory   = (*memory)(nil)
)

// Runtime compiles eBPF objects. It holds no resources; Close only makes
// later Compile calls fail.
type Runtime struct {
	interpret bool
	closed    atomic.Bool
}

// New returns an eBPF runtime that translates programs to machine code
// where it can (linux/amd64, linux/arm64) and interprets them elsewhere.
func New() *Runtime { return &Runtime{interpret: !jitSupported} }

// Engine is how the runtime executes guests: "machine code" (a program
// that cannot be mapped or linked still falls back to the interpreter;
// Module.Compiled tells) or "interpreter".
func (r *Runtime) Engine() string {
	if r.interpret {
		return "interpreter"
	}
	return "machine code"
}

// NewInterpreter returns an eBPF runtime that always interprets.
func NewInterpreter() *Runtime { return &Runtime{interpret: true} }

// Compiled reports whether m runs as machine code rather than in the
// interpreter.
func (m *Module) Compiled() bool { return m.jit != nil }

// Kind is runtime.EBPF.
func (r *Runtime) Kind() runtime.Kind { return runtime.EBPF }

// Compile links, verifies and lays out a BPF ELF object. The container's
// memory is its stack (512 bytes per frame of the longest call chain, 8
// frames when it recurses) plus its data sections; it must fit
// cfg.MemoryLimit (0: no limit below MaxData) or the error wraps
// runtime.ErrLimit. Malformed or hostile code wraps runtime.ErrInvalidCode.
func (r *Runtime) Compile(ctx context.Context, code []byte, cfg runtime.Config) (runtime.Module, error) {
	if r.closed.Load() {
		return nil, fmt.Errorf("ebpf: runtime %w", runtime.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := cfg.CheckCode(code); err != nil {
		return nil, err
	}
	limit := cfg.MemoryLimit
	if limit == 0 {
		limit = MaxData + maxCallDepth*frameSize
	}
	if limit < frameSize {
		return nil, fmt.Errorf("%w: memory limit of %d bytes is below the %d-byte stack", runtime.ErrLimit, limit, frameSize)
	}
	img, err := loadELF(code, limit-frameSize)
	if err != nil {
		return nil, err
	}
	prog, err := verify(img.code)
	if err != nil {
		return nil, err
	}
	m := newModule(prog, img)
	if need := m.memorySize(); need > limit {
		return nil, fmt.Errorf("%w: needs %d bytes (stack %d for %d frames, data %d), the limit is %d",
			runtime.ErrLimit, need, m.stackLen, prog.depth, img.size, limit)
	}
	if !r.interpret {
		// A platform that refuses executable memory still runs the
		// program, interpreted.
		m.jit, _ = jitCompile(prog.insns, m.stackLen, m.dataLen, m.roLen)
	}
	if m.jit == nil {
		m.insns = prepare(prog.insns)
	}
	return m, nil
}

// Close makes later Compile calls fail; modules already compiled live on.
func (r *Runtime) Close(context.Context) error {
	r.closed.Store(true)
	return nil
}

// Module is a verified program with its initial data. It is immutable, so
// any number of goroutines may instantiate it at once.
type Module struct {
	insns    []insn   // as verified when jit is set, else prepared for the interpreter
	jit      *jitCode // machine code, or nil
	init     []byte   // initial contents of the data region's first len(init) bytes
	roLen    uint32
	dataLen  uint32
	stackLen uint32
	closed   atomic.Bool
}

func newModule(p *program, img *image) *Module {
	return &Module{
		insns:    p.insns,
		init:     img.init,
		roLen:    img.roLen,
		dataLen:  img.size,
		stackLen: uint32(p.depth) * frameSize,
	}
}

func (m *Module) memorySize() uint64 { return uint64(m.stackLen) + uint64(m.dataLen) }

// Instantiate makes an instance with a fresh copy of the data sections
// (.bss zeroed). The stack is not part of an idle instance: each
// activation borrows a zeroed one.
func (m *Module) Instantiate(ctx context.Context, host runtime.Host) (runtime.Instance, error) {
	if m.closed.Load() {
		return nil, fmt.Errorf("ebpf: module %w", runtime.ErrClosed)
	}
	if host == nil {
		return nil, errors.New("ebpf: Instantiate needs a host")
	}
	in := &Instance{mod: m, host: host}
	in.bufHost, _ = host.(runtime.BufHost)
	if m.dataLen > 0 {
		in.data = make([]byte, m.dataLen)
		copy(in.data, m.init)
	}
	return in, nil
}

// Close makes later Instantiate calls fail; live instances keep running.
func (m *Module) Close(context.Context) error {
	m.closed.Store(true)
	return nil
}

// Instance states.
const (
	idle int32 = iota
	running
	faulted
	closed
)

// Instance is one container's copy of the program's data. Its data
// persists between activations.
type Instance struct {
	mod     *Module
	host    runtime.Host
	bufHost runtime.BufHost // host's fast path of Call, when it has one
	data    []byte
	state   atomic.Int32
}

// Run runs the entry function once. Budget overruns (polled at back-edges,
// calls and helper calls), memory violations and traps end it with a
// *runtime.Fault, after which the instance refuses to run again. A nil b
// sets no deadline; a done ctx ends the run like an expired budget.
func (in *Instance) Run(ctx context.Context, b *runtime.Budget) (int32, error) {
	if !in.state.CompareAndSwap(idle, running) {
		switch in.state.Load() {
		case running:
			return 0, errors.New("ebpf: instance is already running")
		case faulted:
			return 0, fmt.Errorf("ebpf: instance faulted and is %w to further runs", runtime.ErrClosed)
		default:
			return 0, fmt.Errorf("ebpf: instance %w", runtime.ErrClosed)
		}
	}
	a := activations.Get().(*activation)
	a.reset(ctx, in, b)
	b.Begin()
	code, err := a.exec(in.mod)
	b.End()
	a.release()
	activations.Put(a)
	if err != nil {
		in.state.Store(faulted)
		return 0, err
	}
	in.state.CompareAndSwap(running, idle)
	return code, nil
}

// MemorySize is the container's memory: its stack reserve and its data.
func (in *Instance) MemorySize() uint64 { return in.mod.memorySize() }

// Close releases the instance's data; Run then fails with ErrClosed.
func (in *Instance) Close(context.Context) error {
	for {
		s := in.state.Load()
		if s == running {
			return errors.New("ebpf: cannot close a running instance")
		}
		if s == closed || in.state.CompareAndSwap(s, closed) {
			in.data = nil
			return nil
		}
	}
}

// exec runs m's entry function on whichever engine m has. A host
// function that panics ends the run with a trap, as it does under wazero,
// so a host bug a guest can reach takes down its container, not the
// device. (No machine code is on the stack then: host functions run
// after the code has exited.)
func (a *activation) exec(m *Module) (code int32, err error) {
	defer func() {
		if p := recover(); p != nil {
			code, err = 0, &runtime.Fault{Kind: runtime.FaultTrap, Err: fmt.Errorf("%w: %v", ErrHostPanic, p)}
		}
	}()
	if m.jit != nil {
		return a.runJIT(m.jit, m.insns)
	}
	return a.run(m.insns)
}

// maxStack is the largest stack a program can have.
const maxStack = maxCallDepth * frameSize

// activation is the per-run state that an idle instance does not need:
// the stack and the call frames. They are pooled, so an idle instance
// costs only its data.
type activation struct {
	stack   [maxStack]byte
	frames  [maxCallDepth]frame
	mem     memory
	host    runtime.Host
	bufHost runtime.BufHost
	ctx     context.Context
	budget  *runtime.Budget
	depth   int // frames below the entry function's
	fuel    int // instructions left before the next budget poll
	seg     int // where the current straight run of code began
	halt    int // index of the opHalt instruction ending the program
	pc      int // the interpreter's pc while it calls the host
	err     error
	jit     jitState
}

// frame is a suspended caller: where to return and its callee-saved
// registers r6-r9.
type frame struct {
	ret  int
	regs [4]uint64
}

var activations = sync.Pool{New: func() any { return new(activation) }}

// reset prepares a for a run of in: a zeroed stack (nothing leaks from
// the previous user of this activation) and in's data.
func (a *activation) reset(ctx context.Context, in *Instance, b *runtime.Budget) {
	n := in.mod.stackLen
	s := a.stack[maxStack-n:]
	clear(s)
	a.mem = memory{stack: s, data: in.data, roLen: in.mod.roLen}
	a.host, a.bufHost, a.ctx, a.budget = in.host, in.bufHost, ctx, b
}

// release drops a's references to the instance before a is pooled.
func (a *activation) release() {
	a.mem = memory{}
	a.host, a.bufHost, a.ctx, a.budget, a.err = nil, nil, nil, nil, nil
}

// memory is the container's memory as the host sees it. The host may
// read and write any of it, read-only data included: that data is the
// instance's own copy, and the guest chose to hand the host that pointer.
type memory struct {
	stack []byte // guest addresses StackTop-len(stack) .. StackTop
	data  []byte // guest addresses DataBase .. DataBase+len(data)
	roLen uint32
}

// Read returns the n bytes at guest address ptr, which must lie within
// one region.
func (m *memory) Read(ptr, n uint32) ([]byte, bool) {
	if o := uint64(ptr) - (StackTop - uint64(len(m.stack))); o <= uint64(len(m.stack)) && uint64(n) <= uint64(len(m.stack))-o {
		return m.stack[o : o+uint64(n) : o+uint64(n)], true
	}
	if o := uint64(ptr) - DataBase; o <= uint64(len(m.data)) && uint64(n) <= uint64(len(m.data))-o {
		return m.data[o : o+uint64(n) : o+uint64(n)], true
	}
	return nil, false
}
