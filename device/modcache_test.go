package device

import (
	"context"
	"crypto/sha256"
	"errors"
	goruntime "runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tinycontainer/tinycontainer/internal/testwait"
	"github.com/tinycontainer/tinycontainer/runtime"
)

type countingRuntime struct{ compiles, closes int }

type countingModule struct{ rt *countingRuntime }

func (r *countingRuntime) Kind() runtime.Kind          { return runtime.Wasm }
func (r *countingRuntime) Close(context.Context) error { return nil }
func (m countingModule) Close(context.Context) error   { m.rt.closes++; return nil }
func (countingModule) Instantiate(context.Context, runtime.Host) (runtime.Instance, error) {
	return nil, nil
}
func (r *countingRuntime) Compile(context.Context, []byte, runtime.Config) (runtime.Module, error) {
	r.compiles++
	return countingModule{r}, nil
}

func TestModCacheSharesAndReleases(t *testing.T) {
	ctx := context.Background()
	rt := &countingRuntime{}
	c := newModCache()
	cfg := runtime.Config{MemoryLimit: 64 << 10}
	a, _ := c.compile(ctx, rt, []byte("code"), cfg)
	b, _ := c.compile(ctx, rt, []byte("code"), cfg)
	other, _ := c.compile(ctx, rt, []byte("code"), runtime.Config{MemoryLimit: 128 << 10})
	if rt.compiles != 2 {
		t.Fatalf("%d compiles, want 2 (same code and limit shared; another limit compiled apart)", rt.compiles)
	}
	a.Close(ctx)
	a.Close(ctx) // a second Close of one reference must not drop another's
	if rt.closes != 0 {
		t.Fatal("module closed while a container still holds it")
	}
	b.Close(ctx)
	if rt.closes != 1 {
		t.Fatalf("closes = %d after the last reference, want 1", rt.closes)
	}
	other.Close(ctx)
	if _, err := c.compile(ctx, rt, []byte("code"), cfg); err != nil || rt.compiles != 3 {
		t.Fatal("a released module was reused")
	}
}

// TestModCacheChecksCodeLimitBeforeSharing: code one tenant installed
// under a larger max code is not handed to another whose max code it
// exceeds.
func TestModCacheChecksCodeLimitBeforeSharing(t *testing.T) {
	ctx := context.Background()
	rt := &countingRuntime{}
	c := newModCache()
	code := make([]byte, runtime.DefaultCodeLimit+1)
	big, err := c.compile(ctx, rt, code, runtime.Config{MemoryLimit: 64 << 10, CodeLimit: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close(ctx)
	_, err = c.compile(ctx, rt, code, runtime.Config{MemoryLimit: 64 << 10})
	if !errors.Is(err, runtime.ErrLimit) || !strings.Contains(err.Error(), "max code") {
		t.Fatalf("got %v, want ErrLimit naming the max code", err)
	}
}

// blockingRuntime compiles "slow" only once release is closed, and fails
// "bad".
type blockingRuntime struct {
	entered, release chan struct{}
	compiles         atomic.Int32
}

func (r *blockingRuntime) Kind() runtime.Kind          { return runtime.Wasm }
func (r *blockingRuntime) Close(context.Context) error { return nil }
func (r *blockingRuntime) Compile(_ context.Context, code []byte, _ runtime.Config) (runtime.Module, error) {
	r.compiles.Add(1)
	switch string(code) {
	case "slow":
		close(r.entered)
		<-r.release
	case "bad":
		<-r.release
		return nil, runtime.ErrInvalidCode
	}
	return countingModule{&countingRuntime{}}, nil
}

// TestModCacheCompilesOutsideItsLock: while one compile is under way,
// another code compiles and is returned; the same code waits for the
// compile under way and shares its module; a failed compile is given to
// its waiters and not kept.
func TestModCacheCompilesOutsideItsLock(t *testing.T) {
	ctx := context.Background()
	rt := &blockingRuntime{entered: make(chan struct{}), release: make(chan struct{})}
	c := newModCache()
	cfg := runtime.Config{MemoryLimit: 64 << 10}
	slow := make(chan runtime.Module, 2)
	go func() { m, _ := c.compile(ctx, rt, []byte("slow"), cfg); slow <- m }()
	<-rt.entered
	if _, err := c.compile(ctx, rt, []byte("fast"), cfg); err != nil {
		t.Fatal(err)
	}
	go func() { m, _ := c.compile(ctx, rt, []byte("slow"), cfg); slow <- m }()
	bad := make(chan error, 2)
	for range 2 {
		go func() { _, err := c.compile(ctx, rt, []byte("bad"), cfg); bad <- err }()
	}
	devicetestWaitFor(t, "the second slow compile and the bad ones to wait", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.mods[modKey{runtime.Wasm, sha256.Sum256([]byte("slow")), cfg.MemoryLimit}].refs == 2 &&
			c.mods[modKey{runtime.Wasm, sha256.Sum256([]byte("bad")), cfg.MemoryLimit}] != nil &&
			c.mods[modKey{runtime.Wasm, sha256.Sum256([]byte("bad")), cfg.MemoryLimit}].refs == 2
	})
	close(rt.release)
	a, b := <-slow, <-slow
	if a == nil || b == nil || a.(*ref).sharedMod != b.(*ref).sharedMod {
		t.Fatalf("the two slow compiles got %v and %v, want one shared module", a, b)
	}
	for range 2 {
		if err := <-bad; !errors.Is(err, runtime.ErrInvalidCode) {
			t.Fatalf("bad: got %v", err)
		}
	}
	if n := rt.compiles.Load(); n != 3 {
		t.Fatalf("%d compiles, want 3 (slow, fast, bad once)", n)
	}
	if _, err := c.compile(ctx, rt, []byte("bad"), cfg); !errors.Is(err, runtime.ErrInvalidCode) || rt.compiles.Load() != 4 {
		t.Fatalf("a failed compile was kept: %v, %d compiles", err, rt.compiles.Load())
	}
}

// devicetestWaitFor polls cond (this package cannot import devicetest).
// It waited 15,000 sleeps of a millisecond (15-30 s of wall time, a
// verdict on a busy machine); now the suite's hang guard.
func devicetestWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, what, cond)
}

// TestSpareProcDuringCompile: a compile that runs past spareAfter gives
// the process one more P (one per such compile in flight), and GOMAXPROCS
// is back where it was after the last one; a short one changes nothing.
func TestSpareProcDuringCompile(t *testing.T) {
	base := goruntime.GOMAXPROCS(0)
	procs := func(want int) func() bool {
		return func() bool { return goruntime.GOMAXPROCS(0) == want }
	}
	withSpareProc(func() {})
	if n := goruntime.GOMAXPROCS(0); n != base {
		t.Fatalf("after a short compile: GOMAXPROCS %d, want %d", n, base)
	}
	withSpareProc(func() {
		devicetestWaitFor(t, "a P for a long compile", procs(base+1))
		withSpareProc(func() {
			devicetestWaitFor(t, "a P for each of two long compiles", procs(base+2))
		})
		if n := goruntime.GOMAXPROCS(0); n != base+1 {
			t.Errorf("after one of two compiles: GOMAXPROCS %d, want %d", n, base+1)
		}
	})
	if n := goruntime.GOMAXPROCS(0); n != base {
		t.Errorf("after the compiles: GOMAXPROCS %d, want %d", n, base)
	}
}
