package wasm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/bench/kernels"
	"github.com/tinycontainer/tinycontainer/internal/guests"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// fakeHost serves the ABI for tests: Open returns mode, Call counts, the
// log collects lines and the clock counts microseconds up from 1000.
type fakeHost struct {
	mode    int32
	opens   atomic.Int64
	calls   atomic.Int64
	denyLog bool

	mu    sync.Mutex
	lines []string
	clock uint64
}

var _ runtime.Host = (*fakeHost)(nil)

func (h *fakeHost) Open(mem runtime.Memory, ptr, n uint32) int32 {
	h.opens.Add(1)
	if _, ok := mem.Read(ptr, n); !ok {
		return abi.EFAULT.Result()
	}
	return h.mode
}

func (h *fakeHost) Call(_ runtime.Memory, _, _, _, _, _ uint32) int32 {
	h.calls.Add(1)
	return 1
}

func (h *fakeHost) Close(uint32) int32 { return 0 }

func (h *fakeHost) CallName(name string, op abi.Op, buf []byte, inLen int) int32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case name == "log" && op == abi.OpWrite:
		if h.denyLog {
			return abi.EPERM.Result()
		}
		h.lines = append(h.lines, string(buf[:inLen]))
		return 0
	case name == "clock" && op == abi.OpRead:
		if len(buf) < 8 {
			return abi.EMSGSIZE.Result()
		}
		h.clock += 1000
		binary.LittleEndian.PutUint64(buf, h.clock)
		return 8
	}
	return abi.ENOENT.Result()
}

func (h *fakeHost) log() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.lines...)
}

// guest is testdata/name, or the bench kernel of that file name.
func guest(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if errors.Is(err, fs.ErrNotExist) {
		b, err = kernels.FS.ReadFile(name)
	}
	if errors.Is(err, fs.ErrNotExist) {
		b, err = fs.ReadFile(guests.FS(), name)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// engines runs f on a compiler and an interpreter runtime.
func engines(t *testing.T, f func(t *testing.T, r *Runtime)) {
	for _, interp := range []bool{false, true} {
		t.Run(fmt.Sprintf("interpreter=%v", interp), func(t *testing.T) {
			ctx := context.Background()
			r, err := New(ctx, Options{Interpreter: interp})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close(ctx) })
			f(t, r)
		})
	}
}

func compile(t testing.TB, r *Runtime, name string, limit uint64) runtime.Module {
	t.Helper()
	m, err := r.Compile(context.Background(), guest(t, name), runtime.Config{MemoryLimit: limit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

func instantiate(t testing.TB, m runtime.Module, h runtime.Host) runtime.Instance {
	t.Helper()
	inst, err := m.Instantiate(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Close(context.Background()) })
	return inst
}

func budget(d time.Duration) *runtime.Budget {
	var b runtime.Budget
	b.Arm(d)
	return &b
}

func TestFaults(t *testing.T) {
	engines(t, func(t *testing.T, r *Runtime) {
		const limit = 4 * 65536
		m := compile(t, r, "faults.wasm", limit)
		cases := []struct {
			mode int32
			kind runtime.FaultKind
			err  error
		}{
			{1, runtime.FaultBudget, runtime.ErrBudget},  // infinite loop
			{2, runtime.FaultTrap, nil},                  // deep recursion
			{3, runtime.FaultTrap, nil},                  // infinite mutual recursion
			{4, runtime.FaultBudget, runtime.ErrBudget},  // fib(100)
			{5, runtime.FaultMemory, nil},                // memory.grow bomb
			{6, runtime.FaultMemory, nil},                // out-of-bounds load
			{7, runtime.FaultTrap, nil},                  // unreachable
			{8, runtime.FaultTrap, nil},                  // division by zero
			{9, runtime.FaultTrap, nil},                  // null table entry
			{10, runtime.FaultTrap, nil},                 // indirect call type mismatch
			{12, runtime.FaultBudget, runtime.ErrBudget}, // loop of host calls
		}
		for _, c := range cases {
			h := &fakeHost{mode: c.mode}
			inst := instantiate(t, m, h)
			// Budgets are CPU time, so a busy machine cannot turn a trap
			// into a budget fault (regression, issue 13: a 50 ms wall-clock
			// budget did, under load); the traps get a budget they cannot
			// reach anyway.
			d := time.Minute
			if c.kind == runtime.FaultBudget {
				d = 50 * time.Millisecond
			}
			_, err := inst.Run(context.Background(), budget(d))
			var f *runtime.Fault
			if !errors.As(err, &f) || f.Kind != c.kind || (c.err != nil && !errors.Is(err, c.err)) {
				t.Errorf("mode %d: got %v, want a %s fault", c.mode, err, c.kind)
				continue
			}
			if c.mode == 2 && r.Engine() == "compiler" && !errors.Is(err, ErrStackOverflow) {
				t.Errorf("deep recursion: got %v, want ErrStackOverflow", err)
			}
			if c.mode == 5 && inst.MemorySize() != limit {
				t.Errorf("memory grew to %d bytes, limit %d", inst.MemorySize(), limit)
			}
			// A faulted instance does not run again.
			opens := h.opens.Load()
			if _, err := inst.Run(context.Background(), budget(time.Second)); err == nil || errors.As(err, &f) || h.opens.Load() != opens {
				t.Errorf("mode %d: Run after a fault: %v", c.mode, err)
			}
			// Other instances keep working.
			ok := instantiate(t, m, &fakeHost{mode: 13})
			if code, err := ok.Run(context.Background(), budget(time.Second)); err != nil || code != 6765 {
				t.Errorf("after mode %d: fib(20) = %d, %v", c.mode, code, err)
			}
		}
	})
}

func TestMemoryPersists(t *testing.T) {
	engines(t, func(t *testing.T, r *Runtime) {
		m := compile(t, r, "counter.wasm", 65536)
		h := &fakeHost{mode: 3}
		inst := instantiate(t, m, h)
		for want := int32(1); want <= 3; want++ {
			code, err := inst.Run(context.Background(), budget(time.Second))
			if err != nil || code != want {
				t.Fatalf("activation %d: %d, %v", want, code, err)
			}
		}
		if got := h.calls.Load(); got != 3 {
			t.Errorf("tc.call made %d calls, want 3", got)
		}
		if inst.MemorySize() != 65536 {
			t.Errorf("MemorySize %d", inst.MemorySize())
		}
		// A second instance has its own memory.
		if code, err := instantiate(t, m, h).Run(context.Background(), nil); err != nil || code != 1 {
			t.Errorf("fresh instance: %d, %v", code, err)
		}
		fm := compile(t, r, "faults.wasm", 65536)
		fi := instantiate(t, fm, &fakeHost{mode: 11})
		for want := int32(1); want <= 3; want++ {
			if code, err := fi.Run(context.Background(), nil); err != nil || code != want {
				t.Fatalf("faults mode 11, activation %d: %d, %v", want, code, err)
			}
		}
	})
}

func TestCompileRefusals(t *testing.T) {
	ctx := context.Background()
	r, err := New(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	for _, c := range []struct {
		file  string
		class error
		msg   string
	}{
		{"bad_import_unknown.wasm", runtime.ErrInvalidCode, "env.foo is not offered"},
		{"bad_import_sig.wasm", runtime.ErrInvalidCode, "tc.open has type (i32) -> (i32), want (i32,i32) -> (i32)"},
		{"bad_import_mem.wasm", runtime.ErrInvalidCode, "imported memories"},
		{"bad_import_global.wasm", runtime.ErrInvalidCode, "env.g: only functions"},
		{"bad_import_internal.wasm", runtime.ErrInvalidCode, "tc_internal.checkpoint is not offered"},
		{"bad_import_wasi.wasm", runtime.ErrInvalidCode, "wasi_snapshot_preview1.path_open is not offered"},
		{"bad_nomain.wasm", runtime.ErrInvalidCode, "no export tc_main"},
		{"bad_maintype.wasm", runtime.ErrInvalidCode, "tc_main must be a function of type () -> (i32), not a function of type (i32) -> (i32)"},
		{"bad_bigmem.wasm", runtime.ErrLimit, "256 KiB"},
	} {
		_, err := r.Compile(ctx, guest(t, c.file), runtime.Config{MemoryLimit: 65536})
		if !errors.Is(err, c.class) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: got %v, want %v mentioning %q", c.file, err, c.class, c.msg)
		}
	}
	if _, err := r.Compile(ctx, []byte("\x00asm\x01\x00\x00\x00\x01\x01"), runtime.Config{}); !errors.Is(err, runtime.ErrInvalidCode) {
		t.Errorf("truncated module: %v", err)
	}
}

// TestCodeLimit: code over the tenant's max code is refused before it is
// decoded (1 MiB by default); a larger limit admits it.
func TestCodeLimit(t *testing.T) {
	ctx := context.Background()
	r, err := New(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	// counter.wasm with a custom section padding it past 1 MiB.
	code := guest(t, "counter.wasm")
	pad := make([]byte, runtime.DefaultCodeLimit)
	pad = append([]byte{1, 'x'}, pad...)
	code = append(append(append([]byte{}, code...), 0), appendLEB(nil, uint32(len(pad)))...)
	code = append(code, pad...)
	_, err = r.Compile(ctx, code, runtime.Config{MemoryLimit: 65536})
	if !errors.Is(err, runtime.ErrLimit) || !strings.Contains(err.Error(), "max code") {
		t.Fatalf("%d bytes under the default limit: got %v, want ErrLimit naming the max code", len(code), err)
	}
	m, err := r.Compile(ctx, code, runtime.Config{MemoryLimit: 65536, CodeLimit: 2 << 20})
	if err != nil {
		t.Fatalf("under a 2 MiB limit: %v", err)
	}
	m.Close(ctx)
}

func appendLEB(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func TestWASI(t *testing.T) {
	engines(t, func(t *testing.T, r *Runtime) {
		m := compile(t, r, "wasi.wasm", 65536)
		h := &fakeHost{}
		inst := instantiate(t, m, h)
		code, err := inst.Run(context.Background(), budget(time.Second))
		if err != nil || code != 1000 { // the first clock reading, 1000 us, in us
			t.Fatalf("first activation: %d, %v", code, err)
		}
		if got := strings.Join(h.log(), "|"); got != "hello world|second" {
			t.Errorf("log lines %q", got)
		}
		// proc_exit from a deep frame, many times: the C stack pointer is
		// restored each time, or the stack would run into the data.
		for i := 0; i < 200; i++ {
			code, err := inst.Run(context.Background(), budget(time.Second))
			if err != nil || code != 7 {
				t.Fatalf("activation %d: %d, %v", i+2, code, err)
			}
		}
		// A denied log makes fd_write fail with EPERM (63).
		h2 := &fakeHost{denyLog: true}
		if code, err := instantiate(t, m, h2).Run(context.Background(), nil); err != nil || code != -1 {
			t.Errorf("denied log: %d, %v", code, err)
		}
	})
}

func TestLongLinesAreSplit(t *testing.T) {
	a := &activation{host: &fakeHost{}}
	long := strings.Repeat("x", maxLine+10)
	if e := a.logWrite([]byte(long + "\nab")); e != wasiSuccess {
		t.Fatal(e)
	}
	lines := a.host.(*fakeHost).log()
	if len(lines) != 2 || len(lines[0]) != maxLine || lines[1] != "xxxxxxxxxx" || string(a.line) != "ab" {
		t.Errorf("lines %d %q, partial %q", len(lines), lines, a.line)
	}
}

func TestStopAndCancel(t *testing.T) {
	engines(t, func(t *testing.T, r *Runtime) {
		m := compile(t, r, "faults.wasm", 65536)
		// Budget.Stop from another goroutine.
		b := budget(time.Hour)
		inst := instantiate(t, m, &fakeHost{mode: 1})
		go func() {
			time.Sleep(5 * time.Millisecond) // let the guest start spinning
			b.Stop()
		}()
		if _, err := inst.Run(context.Background(), b); !errors.Is(err, runtime.ErrBudget) {
			t.Errorf("Stop: %v", err)
		}
		// Cancelling the context.
		ctx, cancel := context.WithCancel(context.Background())
		inst = instantiate(t, m, &fakeHost{mode: 1})
		go func() {
			time.Sleep(5 * time.Millisecond)
			cancel()
		}()
		_, err := inst.Run(ctx, nil)
		var f *runtime.Fault
		if !errors.As(err, &f) || f.Kind != runtime.FaultBudget || !errors.Is(err, context.Canceled) {
			t.Errorf("cancel: %v", err)
		}
		// Close during an activation ends it.
		inst = instantiate(t, m, &fakeHost{mode: 1})
		done := make(chan error)
		go func() {
			_, err := inst.Run(context.Background(), nil)
			done <- err
		}()
		time.Sleep(5 * time.Millisecond)
		if err := inst.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, runtime.ErrClosed) {
			t.Errorf("close during run: %v", err)
		}
		if _, err := inst.Run(context.Background(), nil); !errors.Is(err, runtime.ErrClosed) {
			t.Errorf("run after close: %v", err)
		}
	})
}

func TestTailCallRunaway(t *testing.T) {
	engines(t, func(t *testing.T, r *Runtime) {
		inst := instantiate(t, compile(t, r, "tailcall.wasm", 0), &fakeHost{})
		if _, err := inst.Run(context.Background(), budget(20*time.Millisecond)); !errors.Is(err, runtime.ErrBudget) {
			t.Errorf("return_call_indirect loop: %v", err)
		}
	})
}

func TestConcurrentInstances(t *testing.T) {
	ctx := context.Background()
	r, err := New(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	m := compile(t, r, "counter.wasm", 65536)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst, err := m.Instantiate(ctx, &fakeHost{})
			if err != nil {
				errs <- err
				return
			}
			defer inst.Close(ctx)
			for want := int32(1); want <= 50; want++ {
				if code, err := inst.Run(ctx, budget(time.Second)); err != nil || code != want {
					errs <- fmt.Errorf("got %d, %v, want %d", code, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestStartFunctionBudget(t *testing.T) {
	// (module (func $s (loop (br 0))) (start $s) (func (export "tc_main") (result i32) i32.const 0))
	code := []byte{0, 'a', 's', 'm', 1, 0, 0, 0,
		1, 8, 2, 0x60, 0, 0, 0x60, 0, 1, 0x7F, // types
		3, 3, 2, 0, 1, // functions
		7, 11, 1, 7, 't', 'c', '_', 'm', 'a', 'i', 'n', 0, 1, // export
		8, 1, 0, // start
		10, 14, 2, 7, 0, 0x03, 0x40, 0x0C, 0, 0x0B, 0x0B, 4, 0, 0x41, 0, 0x0B}
	ctx := context.Background()
	r, err := New(ctx, Options{InitBudget: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	m, err := r.Compile(ctx, code, runtime.Config{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Instantiate(ctx, &fakeHost{})
	var f *runtime.Fault
	if !errors.As(err, &f) || f.Kind != runtime.FaultBudget {
		t.Fatalf("runaway start function: %v", err)
	}
}

// TestEngine: the compiler where wazero has one (amd64 and arm64), the
// interpreter when asked or elsewhere.
func TestEngine(t *testing.T) {
	want := "interpreter"
	if goruntime.GOARCH == "amd64" || goruntime.GOARCH == "arm64" {
		want = "compiler"
	}
	for interp, w := range map[bool]string{false: want, true: "interpreter"} {
		r, err := New(t.Context(), Options{Interpreter: interp})
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Engine(); got != w {
			t.Errorf("Interpreter %v: engine %q, want %q", interp, got, w)
		}
		r.Close(t.Context())
	}
}
