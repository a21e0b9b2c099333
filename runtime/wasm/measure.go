package wasm

import (
	"context"
	"errors"
	"fmt"
	goruntime "runtime"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/tinycontainer/tinycontainer/runtime"
)

// This file is the measurement API of `tinycontainer bench`, which must
// not import wazero itself: figures of bare wazero, the baseline the
// runtime's overhead is judged against.

// Measure runs f with the calling goroutine locked to its OS thread and
// returns the CPU time that thread used meanwhile (on Linux; elsewhere
// the wall time). On a machine shared with other work, CPU time leaves
// out the time spent waiting for a processor, which wall time counts.
func Measure(f func() error) (time.Duration, error) {
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	start, ok := runtime.ThreadCPU()
	wall := time.Now()
	err := f()
	if end, ok2 := runtime.ThreadCPU(); ok && ok2 {
		return end - start, err
	}
	return time.Since(wall), err
}

// bareStub is the "tc" module of a bare runtime: every function returns 0.
func bareStub(ctx context.Context, rt wazero.Runtime) error {
	zero := api.GoModuleFunc(func(_ context.Context, _ api.Module, s []uint64) { s[0] = 0 })
	b := rt.NewHostModuleBuilder("tc")
	for _, f := range hostFuncs {
		if f.module == "tc" {
			b.NewFunctionBuilder().WithGoModuleFunction(zero, f.params, f.results).Export(f.name)
		}
	}
	_, err := b.Instantiate(ctx)
	return err
}

// newBare is a plain wazero runtime (its compiler where it has one, as
// the runtime itself; no instrumentation, no watchdog) with a stub "tc"
// module and code instantiated in it.
func newBare(ctx context.Context, code []byte) (wazero.Runtime, api.Module, error) {
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig())
	if err := bareStub(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		return nil, nil, fmt.Errorf("bare wazero: %w", err)
	}
	mod, err := rt.InstantiateWithConfig(ctx, code, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		_ = rt.Close(ctx)
		return nil, nil, fmt.Errorf("bare wazero: %w", err)
	}
	return rt, mod, nil
}

// RunBare is the CPU time (see Measure) of runs calls of code's tc_main
// under bare wazero: the compiler, no instrumentation and no watchdog, tc
// imports that return 0 and no other imports. One untimed call comes
// first, so first-activation work (tables, page faults) is left out. It
// is the baseline of the instrumented runtime's compute overhead.
func RunBare(ctx context.Context, code []byte, runs int) (time.Duration, error) {
	if runs < 1 {
		return 0, errors.New("wasm: RunBare needs runs >= 1")
	}
	rt, mod, err := newBare(ctx, code)
	if err != nil {
		return 0, err
	}
	defer rt.Close(ctx)
	main := mod.ExportedFunction("tc_main")
	if main == nil || len(main.Definition().ParamTypes()) != 0 || len(main.Definition().ResultTypes()) != 1 {
		return 0, errors.New("wasm: RunBare needs an export tc_main of type () -> (i32)")
	}
	stack := make([]uint64, 1)
	if err := main.CallWithStack(ctx, stack); err != nil {
		return 0, fmt.Errorf("bare wazero: tc_main: %w", err)
	}
	return Measure(func() error {
		for range runs {
			if err := main.CallWithStack(ctx, stack); err != nil {
				return fmt.Errorf("bare wazero: tc_main: %w", err)
			}
		}
		return nil
	})
}

// hostLoop is testdata/hostloop.wat: loop(n) calls tc.call n times and
// returns the sum of the results.
var hostLoop = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x0f, 0x02, 0x60, 0x05, 0x7f, 0x7f, 0x7f,
	0x7f, 0x7f, 0x01, 0x7f, 0x60, 0x01, 0x7f, 0x01, 0x7f, 0x02, 0x0b, 0x01, 0x02, 0x74, 0x63, 0x04,
	0x63, 0x61, 0x6c, 0x6c, 0x00, 0x00, 0x03, 0x02, 0x01, 0x01, 0x07, 0x08, 0x01, 0x04, 0x6c, 0x6f,
	0x6f, 0x70, 0x00, 0x01, 0x0a, 0x2d, 0x01, 0x2b, 0x01, 0x01, 0x7f, 0x02, 0x40, 0x20, 0x00, 0x45,
	0x0d, 0x00, 0x03, 0x40, 0x20, 0x01, 0x41, 0x00, 0x41, 0x01, 0x41, 0x00, 0x41, 0x00, 0x41, 0x00,
	0x10, 0x00, 0x6a, 0x21, 0x01, 0x20, 0x00, 0x41, 0x01, 0x6b, 0x22, 0x00, 0x0d, 0x00, 0x0b, 0x0b,
	0x20, 0x01, 0x0b,
}

// BareHostCall is the CPU time (see Measure) of n calls of a no-op Go
// host function (tc.call) from a guest loop under bare wazero (compiler),
// the loop's own instructions included: the baseline of the runtime's
// host call adapter.
func BareHostCall(ctx context.Context, n int) (time.Duration, error) {
	if n < 1 || n > 1<<31-1 {
		return 0, fmt.Errorf("wasm: BareHostCall needs 1 <= n < 2^31, not %d", n)
	}
	rt, mod, err := newBare(ctx, hostLoop)
	if err != nil {
		return 0, err
	}
	defer rt.Close(ctx)
	loop := mod.ExportedFunction("loop")
	stack := []uint64{1}
	if err := loop.CallWithStack(ctx, stack); err != nil {
		return 0, fmt.Errorf("bare wazero: %w", err)
	}
	return Measure(func() error {
		stack[0] = uint64(n)
		if err := loop.CallWithStack(ctx, stack); err != nil {
			return fmt.Errorf("bare wazero: %w", err)
		}
		return nil
	})
}
