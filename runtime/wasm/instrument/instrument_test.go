package instrument

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/tinycontainer/tinycontainer/bench/kernels"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// readGuest is ../testdata/name, or the bench kernel of that file name.
func readGuest(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if errors.Is(err, fs.ErrNotExist) {
		b, err = kernels.FS.ReadFile(name)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var features = api.CoreFeaturesV2 | experimental.CoreFeaturesTailCall

// bare is a plain wazero runtime with stand-ins for the imports the test
// guests use: tc.open returns the sum of its arguments and the checkpoint
// counts its calls (and panics once stopAfter calls were made, if set).
type bare struct {
	rt          wazero.Runtime
	checkpoints atomic.Int64
	stopAfter   int64
	// onCheckpoint, if set, is called at every checkpoint.
	onCheckpoint func()
}

var errStopped = errors.New("stopped by the checkpoint")

func newBare(t testing.TB, interp bool) *bare {
	t.Helper()
	ctx := context.Background()
	cfg := wazero.NewRuntimeConfig() // the compiler where wazero has one
	if interp {
		cfg = wazero.NewRuntimeConfigInterpreter()
	}
	b := &bare{rt: wazero.NewRuntimeWithConfig(ctx, cfg.WithCoreFeatures(features))}
	t.Cleanup(func() { b.rt.Close(ctx) })
	_, err := b.rt.NewHostModuleBuilder("tc").NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, s []uint64) {
			s[0] = uint64(uint32(s[0]) + uint32(s[1]))
		}), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).
		Export("open").Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.rt.NewHostModuleBuilder(CheckpointModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {
			if n := b.checkpoints.Add(1); b.stopAfter > 0 && n >= b.stopAfter {
				panic(errStopped)
			}
			if b.onCheckpoint != nil {
				b.onCheckpoint()
			}
		}), nil, nil).Export(CheckpointName).Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *bare) instantiate(t testing.TB, code []byte) api.Module {
	t.Helper()
	mod, err := b.rt.InstantiateWithConfig(context.Background(), code, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		t.Fatal(err)
	}
	return mod
}

// call runs export name with args and renders the outcome.
func call(mod api.Module, name string, args ...uint64) string {
	res, err := mod.ExportedFunction(name).Call(context.Background(), args...)
	if err != nil {
		// The first line names the trap; the stack trace differs.
		return "error: " + strings.SplitN(err.Error(), "\n", 2)[0]
	}
	return fmt.Sprint(res)
}

type callCase struct {
	name string
	args []uint64
}

func TestPreservesBehaviour(t *testing.T) {
	guests := map[string][]callCase{
		"behave.wasm": {
			{"fib", []uint64{0}}, {"fib", []uint64{1}}, {"fib", []uint64{20}},
			{"sum_to", []uint64{0}}, {"sum_to", []uint64{5000}},
			{"nested", []uint64{0}}, {"nested", []uint64{1}}, {"nested", []uint64{30}}, {"nested", []uint64{300}},
			{"indirect", []uint64{0, 10}}, {"indirect", []uint64{1, 10}}, {"indirect", []uint64{2, 10}},
			{"indirect", []uint64{4, 9}}, {"indirect", []uint64{5, 9}}, {"indirect", []uint64{99, 9}},
			{"indirect2", []uint64{0, 4}}, {"indirect2", []uint64{1, 4}}, {"indirect2", []uint64{3, 4}},
			{"tinit", []uint64{6}}, {"globref", []uint64{21}}, {"reffunc", []uint64{12}},
			{"multi", []uint64{0}}, {"multi", []uint64{7}}, {"counter", nil},
			{"memsum", []uint64{0}}, {"memsum", []uint64{1000}}, {"memsum", []uint64{70000}},
			{"simd", []uint64{3}}, {"misc", []uint64{0x80}}, {"misc", []uint64{0}},
			{"opentest", []uint64{37}}, {"tc_main", nil},
		},
		"tailcall.wasm": {{"even", []uint64{0}}, {"even", []uint64{1}}, {"even", []uint64{100001}}},
		"loops.wasm": {
			{"brtable", []uint64{0}}, {"brtable", []uint64{1}}, {"brtable", []uint64{2}}, {"brtable", []uint64{3}}, {"brtable", []uint64{7}},
			{"types", []uint64{1}}, {"types", []uint64{1000}}, {"params", []uint64{1}}, {"params", []uint64{500}},
			{"fold", []uint64{1}}, {"fold", []uint64{300}}, {"outer", []uint64{1}}, {"outer", []uint64{70}},
			{"wide", []uint64{1}}, {"wide", []uint64{300}},
		},
		"crc32.wasm":    {{"tc_main", nil}, {"tc_main", nil}},
		"matmul.wasm":   {{"tc_main", nil}},
		"coremark.wasm": {{"tc_main", nil}},
		"fib.wasm":      {{"tc_main", nil}},
	}
	for _, interp := range []bool{false, true} {
		for name, cases := range guests {
			orig := readGuest(t, name)
			for _, interval := range []uint32{1, 7, 4096} {
				t.Run(fmt.Sprintf("%s/interp=%v/interval=%d", name, interp, interval), func(t *testing.T) {
					res, err := Instrument(orig, Options{MemoryLimit: 1 << 20, Interval: interval})
					if err != nil {
						t.Fatal(err)
					}
					b := newBare(t, interp)
					want := b.instantiate(t, orig)
					got := b.instantiate(t, res.Code)
					for _, c := range cases {
						w, g := call(want, c.name, c.args...), call(got, c.name, c.args...)
						if w != g {
							t.Errorf("%s%v: original %s, instrumented %s", c.name, c.args, w, g)
						}
					}
					if name != "tailcall.wasm" && b.checkpoints.Load() == 0 && interval == 1 {
						t.Error("the checkpoint was never called")
					}
				})
			}
		}
	}
}

// TestCheckpointAlwaysReached runs guests that never end and expects the
// checkpoint to stop each of them.
func TestCheckpointAlwaysReached(t *testing.T) {
	type runaway struct {
		guest, export string
		args          []uint64
	}
	for _, r := range []runaway{
		{"tailcall.wasm", "tc_main", nil},  // return_call_indirect forever
		{"loops.wasm", "spin_table", nil},  // a wrapped loop, back through br_table
		{"loops.wasm", "spin_result", nil}, // a wrapped loop with a result
		{"loops.wasm", "spin_fold", nil},   // charged through a call
		{"loops.wasm", "spin_params", nil}, // a loop with parameters
		{"loops.wasm", "spin_outer", nil},  // an outer loop
		{"faults.wasm", "tc_main", nil},    // tc.open(0,0) = 0: returns 42, see below
	} {
		for _, interp := range []bool{false, true} {
			b := newBare(t, interp)
			b.stopAfter = 50
			res, err := Instrument(readGuest(t, r.guest), Options{MemoryLimit: 1 << 20, Interval: 100})
			if err != nil {
				t.Fatal(err)
			}
			mod := b.instantiate(t, res.Code)
			_, err = mod.ExportedFunction(r.export).Call(context.Background(), r.args...)
			if r.guest == "faults.wasm" {
				if err != nil {
					t.Fatalf("faults.wasm mode 0: %v", err)
				}
				continue
			}
			if !errors.Is(err, errStopped) {
				t.Fatalf("%s: got %v, want the checkpoint to stop it", r.guest, err)
			}
		}
	}
}

func TestRefusals(t *testing.T) {
	typeV := testSection(secType, 1, 0x60, 0, 0)
	funcs := testSection(secFunction, 1, 0)
	body := func(code ...byte) []byte {
		b := append([]byte{0}, code...)
		return testSection(secCode, append([]byte{1, byte(len(b))}, b...)...)
	}
	cases := []struct {
		name  string
		code  []byte
		opts  Options
		class error
		msg   string
	}{
		{"garbage", []byte("hello"), Options{}, runtime.ErrInvalidCode, "magic"},
		{"atomics", testModule(typeV, funcs, body(0xFE, 0x03, 0x00, 0x0B)), Options{}, runtime.ErrInvalidCode, "threads"},
		{"exceptions", testModule(typeV, funcs, body(0x06, 0x40, 0x0B, 0x0B)), Options{}, runtime.ErrInvalidCode, "exception"},
		{"unknown opcode", testModule(typeV, funcs, body(0xC5, 0x0B)), Options{}, runtime.ErrInvalidCode, "function 0"},
		{"relaxed simd", testModule(typeV, funcs, body(0xFD, 0x80, 0x02, 0x0B)), Options{}, runtime.ErrInvalidCode, "relaxed"},
		{"truncated", testModule(typeV, funcs, body(0x41)), Options{}, runtime.ErrInvalidCode, "offset"},
		{"trailing", testModule(typeV, funcs, body(0x0B, 0x01)), Options{}, runtime.ErrInvalidCode, "after the final end"},
		{"two memories", testModule(testSection(secMemory, 2, 0, 1, 0, 1)), Options{MemoryLimit: 1 << 20}, runtime.ErrInvalidCode, "multiple memories"},
		{"shared memory", testModule(testSection(secMemory, 1, 3, 1, 1)), Options{MemoryLimit: 1 << 20}, runtime.ErrInvalidCode, "shared"},
		{"imported memory", testModule(testSection(secImport, 1, 1, 'a', 1, 'b', 2, 0, 1)), Options{}, runtime.ErrInvalidCode, "imported memories"},
		{"memory over limit", testModule(testSection(secMemory, 1, 0, 5)), Options{MemoryLimit: 4 << 16}, runtime.ErrLimit, "320 KiB"},
		{"limit below a page", testModule(testSection(secMemory, 1, 0, 0)), Options{MemoryLimit: 1000}, runtime.ErrLimit, "below one 64 KiB page"},
		{"table over limit", testModule(testSection(secTable, 1, 0x70, 0, 0x81, 0x80, 0x04)), Options{}, runtime.ErrLimit, "tables"},
		{"tag section", testModule(testSection(secTag, 0)), Options{}, runtime.ErrInvalidCode, "exception"},
		{"reserved export", testModule(typeV, funcs, testSection(secExport, 1, 4, 't', 'c', '_', 'i', 0, 0), body(0x0B)), Options{}, nil, ""},
		{"body count", testModule(typeV, funcs), Options{}, runtime.ErrInvalidCode, "bodies"},
		// Invalid modules that rewriting would make valid: refused first.
		{"export of a missing global", testModule(testSection(secExport, 1, 1, 'g', ExternGlobal, 0)), Options{}, runtime.ErrInvalidCode, "names global 0, the module has 0"},
		{"export of a missing function", testModule(typeV, funcs, testSection(secExport, 1, 1, 'f', ExternFunc, 1), body(0x0B)), Options{}, runtime.ErrInvalidCode, "names function 1"},
		{"export of a missing table", testModule(testSection(secExport, 1, 1, 't', ExternTable, 0)), Options{}, runtime.ErrInvalidCode, "names table 0"},
		{"export of a missing memory", testModule(testSection(secExport, 1, 1, 'm', ExternMemory, 0)), Options{}, runtime.ErrInvalidCode, "names memory 0"},
		{"memory maximum above 65536 pages", testModule(testSection(secMemory, 1, 1, 0, 0x81, 0x80, 0x04)), Options{MemoryLimit: 1 << 20}, runtime.ErrInvalidCode, "maximum of 65537 pages"},
		{"memory minimum above 65536 pages", testModule(testSection(secMemory, 1, 0, 0x81, 0x80, 0x04)), Options{MemoryLimit: 1 << 20}, runtime.ErrInvalidCode, "minimum of 65537 pages"},
		{"memory minimum above maximum", testModule(testSection(secMemory, 1, 1, 2, 1)), Options{MemoryLimit: 1 << 20}, runtime.ErrInvalidCode, "above its maximum"},
		{"table minimum above maximum", testModule(testSection(secTable, 1, 0x70, 1, 2, 1)), Options{}, runtime.ErrInvalidCode, "above its maximum"},
		{"start of the wrong type", testModule(testSection(secType, 1, 0x60, 1, 0x7F, 0), funcs, testSection(secStart, 0), body(0x0B)), Options{}, runtime.ErrInvalidCode, "not () -> ()"},
		{"block type past the types", testModule(typeV, funcs, body(0x02, 0x01, 0x0B, 0x0B)), Options{}, runtime.ErrInvalidCode, "type 1 out of range"},
		{"call_indirect type past the types", testModule(typeV, funcs, testSection(secTable, 1, 0x70, 0, 1), body(0x41, 0, 0x11, 0x01, 0x00, 0x0B)), Options{}, runtime.ErrInvalidCode, "type 1 out of range"},
		{"global.get of a defined global in a constant", testModule(testSection(secGlobal, 2, 0x7F, 0, 0x41, 0, 0x0B, 0x7F, 0, 0x23, 0, 0x0B)), Options{}, runtime.ErrInvalidCode, "not an immutable imported global"},
		{"two instructions in a constant", testModule(testSection(secGlobal, 1, 0x7F, 0, 0x41, 0, 0x41, 0, 0x0B)), Options{}, runtime.ErrInvalidCode, "more than one instruction"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Instrument(c.code, c.opts)
			if c.class == nil {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if !errors.Is(err, c.class) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want %v mentioning %q", err, c.class, c.msg)
			}
		})
	}
	// A guest export with the reserved prefix is refused.
	code := testModule(typeV, funcs, testSection(secExport, append(append([]byte{1, byte(len(FuelExport))}, FuelExport...), 0, 0)...), body(0x0B))
	if _, err := Instrument(code, Options{}); !errors.Is(err, runtime.ErrInvalidCode) {
		t.Fatalf("reserved export name: got %v", err)
	}
}

// segmentModules are modules whose active segments end past their table
// or memory (refused), or exactly at its end (accepted). wazero v1.12 on
// 32-bit platforms computes a segment's end in an int: the first three
// made instantiation panic with "index out of range [4294967295]" (or a
// slice bound) instead of trapping.
func segmentModules() []struct {
	name string
	code []byte
	msg  string // "" when accepted
} {
	typeV := testSection(secType, 1, 0x60, 0, 0)
	funcs := testSection(secFunction, 1, 0)
	body := testSection(secCode, 1, 2, 0, 0x0B)
	table10 := testSection(secTable, 1, 0x70, 0, 10)
	importTable10 := testSection(secImport, 1, 8, 's', 'p', 'e', 'c', 't', 'e', 's', 't', 5, 't', 'a', 'b', 'l', 'e', ExternTable, 0x70, 0, 10)
	mem1 := testSection(secMemory, 1, 0, 1)
	// elem (i32.const off) followed by n references to function 0.
	elem := func(off []byte, n byte) []byte {
		p := append(append([]byte{1, 0, 0x41}, off...), 0x0B, n)
		for range n {
			p = append(p, 0)
		}
		return testSection(secElement, p...)
	}
	data := func(off []byte, n byte) []byte {
		p := append(append([]byte{1, 0, 0x41}, off...), 0x0B, n)
		for range n {
			p = append(p, 0xAA)
		}
		return testSection(secData, p...)
	}
	return []struct {
		name string
		code []byte
		msg  string
	}{
		{"element at 2^32-1", testModule(typeV, funcs, table10, elem([]byte{0x7F}, 1), body), "elements 4294967295 to 4294967296 are past the end of table 0 (10 elements)"},
		{"element at 2^32-10 of an imported table", testModule(typeV, importTable10, funcs, elem([]byte{0x76}, 1), body), "past the end of table 0"},
		{"data ending past 2^31", testModule(mem1, data([]byte{0xFF, 0xFF, 0xFF, 0xFF, 0x07}, 1)), "bytes 2147483647 to 2147483648 are past the end of the memory (65536 bytes)"},
		{"element one past the end", testModule(typeV, funcs, table10, elem([]byte{10}, 1), body), "elements 10 to 11"},
		{"empty element segment past the end", testModule(typeV, funcs, table10, elem([]byte{11}, 0), body), "elements 11 to 11"},
		{"data one past the end", testModule(mem1, data([]byte{0xFF, 0xFF, 0x03}, 2)), "bytes 65535 to 65537"},
		{"element ending at the end", testModule(typeV, funcs, table10, elem([]byte{9}, 1), body), ""},
		{"empty element segment at the end", testModule(typeV, funcs, table10, elem([]byte{10}, 0), body), ""},
		{"data ending at the end", testModule(mem1, data([]byte{0xFF, 0xFF, 0x03}, 1)), ""},
		{"element in an imported table, past its minimum", testModule(typeV, importTable10, funcs, elem([]byte{10}, 1), body), ""},
	}
}

// TestSegmentsPastTheEnd: an active segment that cannot fit its table or
// memory is refused before it reaches wazero, whatever the word size (the
// 32-bit overflow panic of wazero v1.12; on 64-bit, an element segment
// past the end was skipped instead of trapping).
func TestSegmentsPastTheEnd(t *testing.T) {
	for _, c := range segmentModules() {
		t.Run(c.name, func(t *testing.T) {
			_, err := Instrument(c.code, Options{MemoryLimit: 1 << 20})
			if c.msg == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, runtime.ErrInvalidCode) || !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), "would trap") {
				t.Fatalf("got %v, want ErrInvalidCode mentioning %q", err, c.msg)
			}
		})
	}
}

func TestMemoryClamp(t *testing.T) {
	for _, c := range []struct {
		mem      []byte
		limit    uint64
		min, max uint32
	}{
		{[]byte{0, 1}, 4 << 16, 1, 4},        // no maximum: the limit
		{[]byte{1, 1, 2}, 4 << 16, 1, 2},     // a lower maximum stays
		{[]byte{1, 1, 100}, 3<<16 + 5, 1, 3}, // pages round down
		{[]byte{0, 0}, 1 << 40, 0, maxPages}, // at most 4 GiB
		{[]byte{1, 2, 0x80, 0x02}, 2 << 16, 2, 2},
	} {
		code := testModule(testSection(secMemory, append([]byte{1}, c.mem...)...))
		res, err := Instrument(code, Options{MemoryLimit: c.limit})
		if err != nil {
			t.Fatal(err)
		}
		m, err := decodeModule(res.Code)
		if err != nil {
			t.Fatal(err)
		}
		if m.memory == nil || m.memory.min != c.min || !m.memory.hasMax || m.memory.max != c.max {
			t.Errorf("memory %x under %d: got %+v, want min %d max %d", c.mem, c.limit, m.memory, c.min, c.max)
		}
	}
}

// TestImportsAndExports checks what Result reports.
func TestImportsAndExports(t *testing.T) {
	res, err := Instrument(readGuest(t, "behave.wasm"), Options{MemoryLimit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Imports) != 1 || res.Imports[0].Module != "tc" || res.Imports[0].Name != "open" || res.Imports[0].Type.String() != "(i32,i32) -> (i32)" {
		t.Errorf("imports: %+v", res.Imports)
	}
	found := false
	for _, ex := range res.Exports {
		if ex.Name == "multi" {
			found = ex.Type.String() == "(i32) -> (i32,i32)"
		}
		if strings.HasPrefix(ex.Name, ExportPrefix) {
			t.Errorf("internal export %q reported", ex.Name)
		}
	}
	if !found {
		t.Errorf("export multi missing or mistyped: %+v", res.Exports)
	}
	if !res.HasMemory || len(res.Globals) != 3 { // $counter, fuel, depth
		t.Errorf("HasMemory %v, Globals %v", res.HasMemory, res.Globals)
	}
}

// TestLeafFunctionsUntouched checks that a small leaf function keeps its
// body: hot helpers pay nothing.
func TestLeafFunctionsUntouched(t *testing.T) {
	orig := readGuest(t, "behave.wasm")
	res, err := Instrument(orig, Options{MemoryLimit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := decodeModule(orig)
	b, _ := decodeModule(res.Code)
	// $double is defined function 1 (after $init).
	if string(a.codes[1].b) != string(b.codes[1].b) {
		t.Errorf("leaf body changed: %x -> %x", a.codes[1].b, b.codes[1].b)
	}
	if string(a.codes[4].b) == string(b.codes[4].b) {
		t.Error("recursive $fib was not instrumented")
	}
}

// checkpointsInInnermostLoops counts the innermost loops of an
// instrumented module, and those that call the checkpoint themselves.
func checkpointsInInnermostLoops(t *testing.T, code []byte) (loops, calling int) {
	t.Helper()
	m, err := decodeModule(code)
	if err != nil {
		t.Fatal(err)
	}
	cp := m.nImportFuncs - 1 // the checkpoint is the last import
	for i, b := range m.codes {
		var fi fnInfo
		if err := analyze(b, m.nImportFuncs, 0, len(m.types[m.funcTypes[i]].Params), m.nGlobals(), uint32(len(m.types)), costs{}, &fi); err != nil {
			t.Fatal(err)
		}
		r := &reader{b: b.b, base: b.base, off: fi.exprStart}
		type open struct{ loop, inner, calls bool }
		var stack []open
		for !r.eof() {
			in, err := decodeInst(r)
			if err != nil {
				t.Fatal(err)
			}
			switch in.kind {
			case kBlock:
				stack = append(stack, open{})
			case kLoop:
				for i := range stack {
					if stack[i].loop {
						stack[i].inner = true
					}
				}
				stack = append(stack, open{loop: true})
			case kCall:
				if in.idx == cp {
					for i := len(stack) - 1; i >= 0; i-- {
						if stack[i].loop {
							stack[i].calls = true
							break
						}
					}
				}
			case kEnd:
				if len(stack) == 0 {
					continue
				}
				o := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				if o.loop && !o.inner {
					loops++
					if o.calls {
						calling++
					}
				}
			}
		}
	}
	return loops, calling
}

// TestHotLoopsCallNothing: the checkpoint call of an innermost loop is out
// of line, after the loop, so that no value of the loop lives across a
// call (wazero's register allocator would spill such values on every
// iteration). Only loops with parameters or too many locals keep it
// inline.
func TestHotLoopsCallNothing(t *testing.T) {
	for name, inline := range map[string]int{"crc32.wasm": 0, "matmul.wasm": 0, "coremark.wasm": 0, "loops.wasm": 3} {
		res, err := Instrument(readGuest(t, name), Options{MemoryLimit: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		loops, calling := checkpointsInInnermostLoops(t, res.Code)
		if loops == 0 || calling != inline {
			t.Errorf("%s: %d of %d innermost loops call the checkpoint, want %d", name, calling, loops, inline)
		}
	}
}
