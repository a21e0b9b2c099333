package device

import (
	"context"
	"errors"
	"strings"
	"testing"

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
