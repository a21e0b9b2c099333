// Package wasm is the WebAssembly runtime of TinyContainer, on wazero.
//
// One wazero runtime serves every container. Guest code is instrumented
// (package instrument) so that it reaches a checkpoint every few thousand
// loop iterations or calls; the checkpoint ends the activation when its
// runtime.Budget expires. This costs far less than wazero's
// WithCloseOnContextDone and works in compiled code, where a flag set
// from another goroutine is never seen by a running loop.
//
// Host functions find their instance by asserting the context they are
// given to *activation: each instance passes its own activation object as
// the context of every call into the guest.
package wasm

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	goruntime "runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/tinycontainer/tinycontainer/runtime"
	"github.com/tinycontainer/tinycontainer/runtime/wasm/instrument"
)

// Options configure a Runtime. The zero value is the compiler with
// default limits.
type Options struct {
	// Interpreter selects wazero's interpreter instead of its compiler.
	Interpreter bool
	// CacheDir, when set, keeps compiled machine code in this directory,
	// so a device restart does not compile its containers again.
	CacheDir string
	// CheckInterval is the number of ticks (loop iterations or function
	// entries, more for long straight-line code) between checkpoints;
	// 0 means instrument.DefaultInterval.
	CheckInterval uint32
	// StackLimit bounds the estimated bytes of recursive call frames of
	// one activation; 0 means instrument.DefaultStackLimit.
	StackLimit uint32
	// InitBudget bounds the start function and _initialize of each new
	// instance; 0 means 100ms.
	InitBudget time.Duration
}

// ErrStackOverflow is the Err of a trap Fault when the guest recursed
// past the stack limit.
var ErrStackOverflow = errors.New("call stack exhausted")

// errClosing ends an activation whose instance is being closed.
var errClosing = fmt.Errorf("instance %w during the activation", runtime.ErrClosed)

// Runtime compiles and runs WebAssembly guests.
type Runtime struct {
	rt     wazero.Runtime
	cache  wazero.CompilationCache
	opts   Options
	modCfg wazero.ModuleConfig
	// oobErr is wazero's out-of-bounds trap, found by provoking it once:
	// wazero does not export its trap errors.
	oobErr error
	mem    *memPool

	mu     sync.Mutex
	closed bool

	// Activations in progress (guest code running: Run, start functions),
	// drained by Close before it frees their memories.
	active   atomic.Int64
	closing  atomic.Bool
	idle     chan struct{} // closed when active drops to 0 after closing
	idleOnce sync.Once
}

var _ runtime.Runtime = (*Runtime)(nil)

// oobProbe is (module (memory 1) (func (export "f") i32.const -1 i32.load drop)).
var oobProbe = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00, 0x03, 0x02,
	0x01, 0x00, 0x05, 0x03, 0x01, 0x00, 0x01, 0x07, 0x05, 0x01, 0x01, 0x66, 0x00, 0x00, 0x0a, 0x0a,
	0x01, 0x08, 0x00, 0x41, 0x7f, 0x28, 0x02, 0x00, 0x1a, 0x0b,
}

// Engine is how the runtime executes guests: "compiler" (wazero's) or
// "interpreter". wazero does not say which it chose; this follows its
// platform rule (amd64 or arm64 on the systems it compiles for), which
// leaves out its CPU-feature and executable-memory checks.
func (r *Runtime) Engine() string {
	if r.opts.Interpreter || !wazeroCompiles {
		return "interpreter"
	}
	return "compiler"
}

var wazeroCompiles = (goruntime.GOARCH == "amd64" || goruntime.GOARCH == "arm64") &&
	slices.Contains([]string{"linux", "darwin", "freebsd", "netbsd", "windows"}, goruntime.GOOS)

// New starts a runtime.
func New(ctx context.Context, opts Options) (*Runtime, error) {
	if opts.InitBudget <= 0 {
		opts.InitBudget = 100 * time.Millisecond
	}
	// wazero's compiler exists for amd64 and arm64 only; asking for it
	// elsewhere (32-bit ARM, RISC-V) panics, so "not the interpreter"
	// means wazero's choice: its compiler where it has one.
	cfg := wazero.NewRuntimeConfig()
	if opts.Interpreter {
		cfg = wazero.NewRuntimeConfigInterpreter()
	}
	cache := wazero.NewCompilationCache()
	if opts.CacheDir != "" {
		var err error
		if cache, err = wazero.NewCompilationCacheWithDir(opts.CacheDir); err != nil {
			return nil, fmt.Errorf("compilation cache %s: %w", opts.CacheDir, err)
		}
	}
	cfg = cfg.WithCoreFeatures(api.CoreFeaturesV2 | experimental.CoreFeaturesTailCall).
		WithCompilationCache(cache).
		WithCloseOnContextDone(false).
		WithDebugInfoEnabled(false)
	mem := newMemPool()
	r := &Runtime{
		idle:  make(chan struct{}),
		rt:    wazero.NewRuntimeWithConfig(ctx, cfg),
		cache: cache,
		opts:  opts,
		mem:   mem,
		// An explicit random source: the default seeds a math/rand source
		// per instance, a third of the instantiation time. Guests never
		// see it (the WASI subset is ours).
		modCfg: wazero.NewModuleConfig().WithName("").WithStartFunctions().WithRandSource(rand.Reader),
	}
	if err := instantiateHost(ctx, r.rt); err != nil {
		_ = r.Close(ctx)
		return nil, err
	}
	if err := r.probe(ctx); err != nil {
		_ = r.Close(ctx)
		return nil, err
	}
	return r, nil
}

// probe finds wazero's out-of-bounds memory trap by causing one.
func (r *Runtime) probe(ctx context.Context) error {
	mod, err := r.rt.InstantiateWithConfig(ctx, oobProbe, r.modCfg)
	if err != nil {
		return fmt.Errorf("wasm runtime self-test: %w", err)
	}
	defer mod.Close(ctx)
	err = mod.ExportedFunction("f").CallWithStack(ctx, make([]uint64, 1))
	for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(err) {
		err = u
	}
	if err == nil {
		return errors.New("wasm runtime self-test: an out-of-bounds load did not trap")
	}
	r.oobErr = err
	return nil
}

// Kind is runtime.Wasm.
func (r *Runtime) Kind() runtime.Kind { return runtime.Wasm }

// Compile instruments code for cfg's limits, checks its imports and
// exports against the ABI and compiles it. Identical code with identical
// limits compiles once.
func (r *Runtime) Compile(ctx context.Context, code []byte, cfg runtime.Config) (runtime.Module, error) {
	if err := cfg.CheckCode(code); err != nil {
		return nil, err
	}
	res, err := instrument.Instrument(code, instrument.Options{
		MemoryLimit: cfg.MemoryLimit, Interval: r.opts.CheckInterval, StackLimit: r.opts.StackLimit,
	})
	if err != nil {
		return nil, err
	}
	usesExit, err := checkImports(res.Imports)
	if err != nil {
		return nil, err
	}
	hasInit := false
	hasMain := false
	for _, ex := range res.Exports {
		switch {
		case ex.Name == "tc_main":
			if ex.Kind != instrument.ExternFunc || ex.Type.String() != "() -> (i32)" {
				return nil, fmt.Errorf("%w: export tc_main must be a function of type () -> (i32), not %v", runtime.ErrInvalidCode, describe(ex))
			}
			hasMain = true
		case ex.Name == "_initialize":
			if ex.Kind != instrument.ExternFunc || ex.Type.String() != "() -> ()" {
				return nil, fmt.Errorf("%w: export _initialize must be a function of type () -> (), not %v", runtime.ErrInvalidCode, describe(ex))
			}
			hasInit = true
		}
	}
	if !hasMain {
		return nil, fmt.Errorf("%w: no export tc_main (the entry point, type () -> (i32))", runtime.ErrInvalidCode)
	}
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("wasm runtime %w", runtime.ErrClosed)
	}
	cm, err := r.rt.CompileModule(ctx, res.Code)
	if err != nil {
		var pe *fs.PathError
		var le *os.LinkError
		if errors.As(err, &pe) || errors.As(err, &le) {
			// The compilation cache could not be written (a full disk, a
			// missing directory): the host failed, not the code.
			return nil, fmt.Errorf("compilation cache: %w", err)
		}
		return nil, fmt.Errorf("%w: %v", runtime.ErrInvalidCode, err)
	}
	m := &Module{r: r, cm: cm, hasInit: hasInit, hasMemory: res.HasMemory, stackLimit: res.StackLimit}
	if usesExit {
		m.globals = res.Globals
	}
	return m, nil
}

func describe(ex instrument.Export) string {
	switch ex.Kind {
	case instrument.ExternFunc:
		return "a function of type " + ex.Type.String()
	case instrument.ExternTable:
		return "a table"
	case instrument.ExternMemory:
		return "a memory"
	}
	return "a global"
}

// Close closes the runtime and everything compiled or instantiated in it.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	// Guest memories are unmapped when their instances close, which must
	// not happen under running guest code: activations end at their next
	// checkpoint once closing is set, and Close waits for them (or ctx).
	r.closing.Store(true)
	drained := true
	if r.active.Load() > 0 {
		select {
		case <-r.idle:
		case <-ctx.Done():
			drained = false
		}
	}
	r.mem.close(drained) // before rt.Close: its frees unmap at once, or never
	err := r.rt.Close(ctx)
	if cerr := r.cache.Close(ctx); err == nil {
		err = cerr
	}
	return err
}

// enter counts an activation in; false when the runtime is closing.
func (r *Runtime) enter() bool {
	r.active.Add(1)
	if r.closing.Load() {
		r.leave()
		return false
	}
	return true
}

func (r *Runtime) leave() {
	if r.active.Add(-1) == 0 && r.closing.Load() {
		r.idleOnce.Do(func() { close(r.idle) })
	}
}

// Module is compiled guest code.
type Module struct {
	r          *Runtime
	cm         wazero.CompiledModule
	hasInit    bool
	hasMemory  bool
	stackLimit uint32
	// globals are the exports of every mutable global, saved before each
	// activation and restored after proc_exit; nil when the guest cannot
	// call proc_exit.
	globals []string

	mu     sync.Mutex
	closed bool
}

var _ runtime.Module = (*Module)(nil)

// Close releases the compiled code. Instances made earlier keep working.
func (m *Module) Close(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	return m.cm.Close(ctx)
}
