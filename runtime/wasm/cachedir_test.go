package wasm

import (
	"context"
	"os"
	"testing"

	"github.com/tinycontainer/tinycontainer/runtime"
)

// With CacheDir, compiled code outlives the runtime: a second runtime on
// the same directory (a restarted device) finds it there and runs it.
func TestCacheDirKeepsCompiledCode(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	code := guest(t, "counter.wasm")
	for round := range 2 {
		r, err := New(ctx, Options{CacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		mod, err := r.Compile(ctx, code, runtime.Config{MemoryLimit: 64 << 10})
		if err != nil {
			t.Fatal(err)
		}
		inst, err := mod.Instantiate(ctx, &fakeHost{})
		if err != nil {
			t.Fatal(err)
		}
		var b runtime.Budget
		b.Arm(1e9)
		if _, err := inst.Run(ctx, &b); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		r.Close(ctx)
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) == 0 {
			t.Fatalf("round %d: nothing cached in %s (%v)", round, dir, err)
		}
	}
}
