// Package runtime is the runtime abstraction layer: what the rest of
// TinyContainer needs from any kind of guest code (WebAssembly, eBPF).
//
// It imports no implementation. A Runtime compiles guest code into a Module,
// a Module makes Instances, an Instance runs activations. Every instance
// reaches the host only through the Host it was given: the three functions
// of the guest ABI (SPEC section 2).
package runtime

import (
	"context"
	"errors"
	"fmt"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/meta"
)

// Kind names a kind of guest code, as in the manifest's runtime field.
type Kind string

const (
	Wasm Kind = "wasm"
	EBPF Kind = "ebpf"
)

// Error classes. Implementations wrap them with %w and a message saying what
// is wrong, so callers test with errors.Is and people read the message.
var (
	// ErrInvalidCode: the guest code is malformed, hostile or uses what the
	// ABI does not offer (refused before it ever runs).
	ErrInvalidCode = errors.New("invalid guest code")
	// ErrLimit: the code cannot run within the container's limits.
	ErrLimit = errors.New("over the container's limits")
	// ErrClosed: the instance or module was closed.
	ErrClosed = errors.New("closed")
)

// Memory is a guest's memory as the host sees it during a host call.
// wazero's api.Memory satisfies it as is.
type Memory interface {
	// Read returns a view of the n bytes at guest address ptr, or false
	// when any of them is outside the guest's memory. Writes to the view
	// reach the guest.
	Read(ptr, n uint32) ([]byte, bool)
}

// Host serves the guest ABI for one container instance. Results are a
// value >= 0 or a negated abi.Errno.
type Host interface {
	Open(mem Memory, namePtr, nameLen uint32) int32
	Call(mem Memory, handle, op, bufPtr, inLen, bufCap uint32) int32
	Close(handle uint32) int32
	// CallName is one call to a named endpoint without a handle, with the
	// same permission check; runtimes use it for shims such as WASI's
	// fd_write (the log) and clock_time_get (the clock).
	CallName(name string, op abi.Op, buf []byte, inLen int) int32
}

// BufHost is an optional fast path of Host.Call for runtimes that can
// bounds-check the call's buffer themselves without an interface call: buf
// is the guest's bytes [bufPtr, bufPtr+max(inLen, bufCap)). A runtime whose
// own check fails calls Host.Call instead, which reports the errors in the
// order the ABI defines.
type BufHost interface {
	CallBuf(mem Memory, handle, op, bufPtr uint32, buf []byte, inLen, bufCap uint32) int32
}

// Code size limits (SPEC section 5): a tenant's code is at most
// DefaultCodeLimit bytes unless its grant says otherwise, and never more
// than MaxCodeLimit. The numbers are the rulebook's.
const (
	DefaultCodeLimit = meta.DefaultMaxCode
	MaxCodeLimit     = meta.MaxCodeCeiling
)

// Config is what a Runtime needs to know of the container's metadata to
// compile its code.
type Config struct {
	// MemoryLimit is the guest memory ceiling in bytes.
	MemoryLimit uint64
	// CodeLimit is the tenant's max code size in bytes: longer code is
	// refused before anything is compiled. 0 means DefaultCodeLimit;
	// above MaxCodeLimit counts as MaxCodeLimit.
	CodeLimit uint64
}

// MaxCode is the code limit c stands for.
func (c Config) MaxCode() uint64 {
	switch {
	case c.CodeLimit == 0:
		return DefaultCodeLimit
	case c.CodeLimit > MaxCodeLimit:
		return MaxCodeLimit
	}
	return c.CodeLimit
}

// CheckCode refuses code longer than the code limit, with an error that
// wraps ErrLimit and names the limit. Every Runtime calls it first in
// Compile; callers that cache compiled code call it before the cache.
func (c Config) CheckCode(code []byte) error {
	if limit := c.MaxCode(); uint64(len(code)) > limit {
		return fmt.Errorf("%w: code of %d bytes is over the max code size of %d bytes (the tenant's max code)", ErrLimit, len(code), limit)
	}
	return nil
}

// Runtime compiles one kind of guest code.
type Runtime interface {
	Kind() Kind
	// Compile checks code and prepares it to run. Errors wrap
	// ErrInvalidCode or ErrLimit.
	Compile(ctx context.Context, code []byte, cfg Config) (Module, error)
	Close(ctx context.Context) error
}

// Module is compiled guest code, ready to be instantiated many times.
type Module interface {
	// Instantiate makes a fresh instance whose host calls go to host.
	Instantiate(ctx context.Context, host Host) (Instance, error)
	Close(ctx context.Context) error
}

// Instance is one live copy of a guest: its memory persists between
// activations until it is closed.
type Instance interface {
	// Run runs one activation of the entry point. It returns the guest's
	// exit code, or an error that is a *Fault when the guest trapped,
	// violated memory or overran b. After a Fault the instance must not
	// be run again.
	Run(ctx context.Context, b *Budget) (int32, error)
	// MemorySize is the size of the guest's memory in bytes now.
	MemorySize() uint64
	Close(ctx context.Context) error
}

// FaultKind says why an activation faulted; the values are the strings of
// the last_fault stats field (SPEC section 6).
type FaultKind string

const (
	FaultTrap   FaultKind = "trap"
	FaultMemory FaultKind = "memory"
	FaultBudget FaultKind = "budget"
)

// Fault is an activation that ended abnormally.
type Fault struct {
	Kind FaultKind
	Err  error
}

func (f *Fault) Error() string { return fmt.Sprintf("%s fault: %v", f.Kind, f.Err) }
func (f *Fault) Unwrap() error { return f.Err }

// budgetKey carries an activation's budget in a context.
type budgetKey struct{}

// WithBudget returns ctx carrying b, the budget of the activation for
// which an instance is made: a runtime that runs guest code while making
// it (a WebAssembly start function) runs that code under b with
// Budget.Nest, so the scheduler can suspend and stop it like the
// activation itself.
func WithBudget(ctx context.Context, b *Budget) context.Context {
	return context.WithValue(ctx, budgetKey{}, b)
}

// BudgetFrom is the budget WithBudget put in ctx, or nil.
func BudgetFrom(ctx context.Context) *Budget {
	b, _ := ctx.Value(budgetKey{}).(*Budget)
	return b
}

// ErrBudget is the Err of a budget Fault.
var ErrBudget = errors.New("activation budget exceeded")
