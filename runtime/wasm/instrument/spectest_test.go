package instrument

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// The official WebAssembly spec suite, as wast2json output, comes with
// wazero's module (internal/integration_test/spectest): every module of
// it is run twice, by plain wazero and instrumented by Instrument under
// the runtime's default limits, and every command must behave the same
// (results bit for bit, traps with the same message). Invalid and
// malformed binary modules must be refused (by Instrument or, after it,
// by wazero's validation). Valid modules the instrumenter refuses are
// compared with testdata/spec_refusals.txt, the list docs/notes/wasm.md
// points to. Nothing of the suite is committed: it is read from the
// module cache, and the test skips when it is not there.
//
// By default every module and every validity command runs but only every
// 16th assert_return/assert_trap (about 20 s of CPU under -race); with
// TC_SPEC_FULL=1 (`make spectest`) every command runs (about 30 s of CPU
// without -race). Where wazero has no compiler (32-bit ARM under
// qemu-user in CI) every 16th file is run.

// specRoot is wazero's spectest directory in the module cache.
func specRoot(t *testing.T) string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/tetratelabs/wazero").Output()
	if err != nil {
		t.Skipf("spec suite: cannot locate wazero's module (%v)", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "internal", "integration_test", "spectest")
	if _, err := os.Stat(filepath.Join(dir, "testdata", "spectest.wasm")); err != nil {
		t.Skipf("spec suite: not in the module cache (%v); run go mod download", err)
	}
	return dir
}

type specFile struct {
	Commands []specCommand `json:"commands"`
}

type specCommand struct {
	Type       string      `json:"type"`
	Line       int         `json:"line"`
	Name       string      `json:"name"`
	Filename   string      `json:"filename"`
	As         string      `json:"as"`
	ModuleType string      `json:"module_type"`
	Text       string      `json:"text"`
	Action     specAction  `json:"action"`
	Expected   []specValue `json:"expected"`
}

type specAction struct {
	Type   string      `json:"type"`
	Module string      `json:"module"`
	Field  string      `json:"field"`
	Args   []specValue `json:"args"`
}

type specValue struct {
	Type     string          `json:"type"`
	LaneType string          `json:"lane_type"`
	Value    json.RawMessage `json:"value"`
}

// words is v as wazero's stack words.
func (v specValue) words() ([]uint64, error) {
	if v.Type == "v128" {
		var lanes []string
		if err := json.Unmarshal(v.Value, &lanes); err != nil {
			return nil, err
		}
		var b [16]byte
		width := map[string]int{"i8": 1, "i16": 2, "i32": 4, "f32": 4, "i64": 8, "f64": 8}[v.LaneType]
		if width == 0 || len(lanes)*width != 16 {
			return nil, fmt.Errorf("v128 of %d %s lanes", len(lanes), v.LaneType)
		}
		for i, l := range lanes {
			x, err := strconv.ParseUint(l, 10, 64)
			if err != nil {
				return nil, err
			}
			for j := range width {
				b[i*width+j] = byte(x >> (8 * j))
			}
		}
		lo, hi := uint64(0), uint64(0)
		for j := 7; j >= 0; j-- {
			lo = lo<<8 | uint64(b[j])
			hi = hi<<8 | uint64(b[8+j])
		}
		return []uint64{lo, hi}, nil
	}
	var s string
	if err := json.Unmarshal(v.Value, &s); err != nil {
		return nil, err
	}
	if s == "null" {
		return []uint64{0}, nil
	}
	x, err := strconv.ParseUint(s, 10, 64)
	if v.Type == "externref" {
		x++ // externref 0 is not null
	}
	return []uint64{x}, err
}

// specEnv is one runtime with the suite's "spectest" module.
type specEnv struct {
	rt      wazero.Runtime
	named   map[string]api.Module
	current api.Module
}

func newSpecEnv(t *testing.T, dir string, instrumented bool) *specEnv {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCoreFeatures(features))
	t.Cleanup(func() { rt.Close(ctx) })
	st, err := os.ReadFile(filepath.Join(dir, "testdata", "spectest.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.InstantiateWithConfig(ctx, st, wazero.NewModuleConfig().WithName("spectest")); err != nil {
		t.Fatal(err)
	}
	if instrumented {
		_, err := rt.NewHostModuleBuilder(CheckpointModule).NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {}), nil, nil).
			Export(CheckpointName).Instantiate(ctx)
		if err != nil {
			t.Fatal(err)
		}
	}
	return &specEnv{rt: rt, named: map[string]api.Module{}}
}

func (e *specEnv) instantiate(code []byte, name, register string) error {
	ctx := context.Background()
	mod, err := e.rt.InstantiateWithConfig(ctx, code, wazero.NewModuleConfig().WithName(register))
	if err != nil {
		return err
	}
	e.current = mod
	if name != "" {
		e.named[name] = mod
	}
	return nil
}

// compiles reports whether wazero accepts code (no instantiation).
func (e *specEnv) compiles(code []byte) error {
	cm, err := e.rt.CompileModule(context.Background(), code)
	if err == nil {
		cm.Close(context.Background())
	}
	return err
}

// outcome is the result of an action: its words, or its error's first line.
type outcome struct {
	words []uint64
	types []api.ValueType
	err   string
}

func (e *specEnv) do(a specAction) (outcome, error) {
	mod := e.current
	if a.Module != "" {
		mod = e.named[a.Module]
	}
	if mod == nil {
		return outcome{}, errors.New("no module")
	}
	if a.Type == "get" {
		g := mod.ExportedGlobal(a.Field)
		if g == nil {
			return outcome{}, fmt.Errorf("no global %q", a.Field)
		}
		return outcome{words: []uint64{g.Get()}, types: []api.ValueType{g.Type()}}, nil
	}
	f := mod.ExportedFunction(a.Field)
	if f == nil {
		return outcome{}, fmt.Errorf("no function %q", a.Field)
	}
	var stack []uint64
	for _, v := range a.Args {
		w, err := v.words()
		if err != nil {
			return outcome{}, err
		}
		stack = append(stack, w...)
	}
	def := f.Definition()
	n := 0
	for _, t := range def.ResultTypes() {
		n++
		if t == valueTypeV128 {
			n++
		}
	}
	if len(stack) < n {
		stack = append(stack, make([]uint64, n-len(stack))...)
	}
	if err := f.CallWithStack(context.Background(), stack); err != nil {
		// A trap leaves the depth counter where it was (the engine
		// drops an instance after a fault; the suite goes on with it).
		if d, ok := mod.ExportedGlobal(DepthExport).(api.MutableGlobal); ok {
			d.Set(0)
		}
		msg, _, _ := strings.Cut(err.Error(), "\n")
		return outcome{err: msg}, nil
	}
	return outcome{words: stack[:n], types: def.ResultTypes()}, nil
}

// same compares two outcomes: bit for bit, except NaNs (whose payload
// the spec leaves open) and the trap of exhausted recursion, which the
// instrumenter's depth limit reports as unreachable.
func same(c specCommand, plain, inst outcome) bool {
	if plain.err != "" || inst.err != "" {
		if c.Type == "assert_exhaustion" {
			return plain.err != "" && inst.err != ""
		}
		return plain.err == inst.err
	}
	if slices.Equal(plain.words, inst.words) {
		return true
	}
	if len(plain.words) != len(inst.words) {
		return false
	}
	w := 0
	for i, t := range plain.types {
		switch t {
		case api.ValueTypeF32:
			a, b := math.Float32frombits(uint32(plain.words[w])), math.Float32frombits(uint32(inst.words[w]))
			if a != b && !(a != a && b != b) {
				return false
			}
		case api.ValueTypeF64:
			a, b := math.Float64frombits(plain.words[w]), math.Float64frombits(inst.words[w])
			if a != b && !(a != a && b != b) {
				return false
			}
		case valueTypeV128:
			lane := ""
			if i < len(c.Expected) {
				lane = c.Expected[i].LaneType
			}
			if !sameV128(lane, plain.words[w:w+2], inst.words[w:w+2]) {
				return false
			}
			w++
		default:
			if plain.words[w] != inst.words[w] {
				return false
			}
		}
		w++
	}
	return true
}

func sameV128(lane string, a, b []uint64) bool {
	for k := range 2 {
		switch lane {
		case "f32":
			for s := 0; s < 64; s += 32 {
				x, y := math.Float32frombits(uint32(a[k]>>s)), math.Float32frombits(uint32(b[k]>>s))
				if x != y && !(x != x && y != y) {
					return false
				}
			}
		case "f64":
			x, y := math.Float64frombits(a[k]), math.Float64frombits(b[k])
			if x != y && !(x != x && y != y) {
				return false
			}
		default:
			if a[k] != b[k] {
				return false
			}
		}
	}
	return true
}

// specStats counts what one file did.
type specStats struct {
	compared, invalid int
	refusals          []string // "file:line: reason"
	wazeroGaps        []string // invalid modules plain wazero accepts too
}

func runSpecFile(t *testing.T, dir, file string, short bool) specStats {
	var st specStats
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var sf specFile
	if err := json.Unmarshal(raw, &sf); err != nil {
		t.Fatal(err)
	}
	base := filepath.Base(file)
	plain, inst := newSpecEnv(t, dir, false), newSpecEnv(t, dir, true)
	opts := Options{MemoryLimit: maxPages * PageSize}
	skip := false // the current module was refused or failed plainly
	skipNamed := map[string]bool{}
	sample := 0
	for i := 0; i < len(sf.Commands); i++ {
		c := sf.Commands[i]
		where := fmt.Sprintf("%s:%d", base, c.Line)
		read := func() []byte {
			b, err := os.ReadFile(filepath.Join(filepath.Dir(file), c.Filename))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		switch c.Type {
		case "module":
			register := ""
			if i+1 < len(sf.Commands) && sf.Commands[i+1].Type == "register" && sf.Commands[i+1].Name == c.Name {
				register = sf.Commands[i+1].As
				i++
			}
			code := read()
			// A refused module is not run plainly either: it could
			// change a module it imports from (linking.wast does).
			res, err := Instrument(code, opts)
			if err != nil {
				st.refusals = append(st.refusals, fmt.Sprintf("%s: %v", where, err))
			} else if err = plain.instantiate(code, c.Name, register); err != nil {
				t.Logf("%s: plain wazero fails the module: %v", where, err)
			} else if err = inst.instantiate(res.Code, c.Name, register); err != nil {
				t.Errorf("%s: the instrumented module fails in wazero: %v", where, err)
			}
			skip = err != nil
			skipNamed[c.Name] = skip
			if skip {
				// Its exports must not be found in the previous module.
				inst.current = nil
			}
		case "register":
			t.Logf("%s: register of a module not just defined: not run", where)
		case "action", "assert_return", "assert_trap", "assert_exhaustion":
			if (c.Action.Module == "" && skip) || skipNamed[c.Action.Module] {
				continue
			}
			if sample++; short && c.Type != "action" && sample%16 != 0 {
				continue
			}
			p, err := plain.do(c.Action)
			if err != nil {
				t.Fatalf("%s: plain: %v", where, err)
			}
			q, err := inst.do(c.Action)
			if err != nil {
				t.Fatalf("%s: instrumented: %v", where, err)
			}
			if !same(c, p, q) {
				t.Errorf("%s: %s %s: plain %+v, instrumented %+v", where, c.Type, c.Action.Field, p, q)
			}
			st.compared++
		case "assert_invalid", "assert_malformed", "assert_unlinkable", "assert_uninstantiable":
			if c.ModuleType != "binary" {
				continue
			}
			st.invalid++
			code := read()
			res, err := Instrument(code, opts)
			if c.Type == "assert_invalid" || c.Type == "assert_malformed" {
				if err == nil {
					err = inst.compiles(res.Code)
				}
				if err == nil {
					if plain.compiles(code) == nil {
						st.wazeroGaps = append(st.wazeroGaps, fmt.Sprintf("%s: %s", where, c.Text))
					} else {
						t.Errorf("%s: %s module (%s) accepted after instrumentation", where, c.Type, c.Text)
					}
				}
				continue
			}
			if err == nil {
				// Unlinkable or uninstantiable: must fail in both.
				e1 := plain.instantiate(code, "", "")
				e2 := inst.instantiate(res.Code, "", "")
				if (e1 == nil) != (e2 == nil) {
					t.Errorf("%s: %s (%s): plain %v, instrumented %v", where, c.Type, c.Text, e1, e2)
				}
			}
		default:
			t.Fatalf("%s: unknown command %q", where, c.Type)
		}
	}
	return st
}

func TestSpecSuite(t *testing.T) {
	root := specRoot(t)
	var files []string
	for _, sub := range []string{"v2", "tail-call"} {
		fs, err := filepath.Glob(filepath.Join(root, sub, "testdata", "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, fs...)
	}
	if len(files) == 0 {
		t.Skip("spec suite: no .json files in " + root)
	}
	full := os.Getenv("TC_SPEC_FULL") != ""
	if !full && !compilerPlatform {
		var some []string
		for i, f := range files {
			if i%16 == 0 {
				some = append(some, f)
			}
		}
		files = some
	}
	var mu sync.Mutex
	var total specStats
	t.Run("files", func(t *testing.T) {
		for _, f := range files {
			t.Run(strings.TrimSuffix(filepath.Base(f), ".json"), func(t *testing.T) {
				t.Parallel()
				st := runSpecFile(t, root, f, !full)
				mu.Lock()
				defer mu.Unlock()
				total.compared += st.compared
				total.invalid += st.invalid
				total.refusals = append(total.refusals, st.refusals...)
				total.wazeroGaps = append(total.wazeroGaps, st.wazeroGaps...)
			})
		}
	})
	slices.Sort(total.refusals)
	t.Logf("%d files, %d commands compared, %d invalid/malformed/unlinkable modules checked, %d valid modules refused, %d invalid modules wazero accepts too",
		len(files), total.compared, total.invalid, len(total.refusals), len(total.wazeroGaps))
	for _, g := range total.wazeroGaps {
		t.Logf("wazero accepts too: %s", g)
	}
	if !full && !compilerPlatform {
		return // a sample of the files: the list cannot be compared
	}
	if os.Getenv("TC_SPEC_REFUSALS_UPDATE") != "" {
		if err := os.WriteFile(filepath.Join("testdata", "spec_refusals.txt"), []byte(strings.Join(total.refusals, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	f, err := os.Open(filepath.Join("testdata", "spec_refusals.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var want []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); l != "" {
			want = append(want, l)
		}
	}
	if !slices.Equal(total.refusals, want) {
		for _, r := range total.refusals {
			if !slices.Contains(want, r) {
				t.Errorf("new refusal of a valid module: %s", r)
			}
		}
		for _, r := range want {
			if !slices.Contains(total.refusals, r) {
				t.Errorf("listed refusal no longer happens: %s", r)
			}
		}
		t.Log("after a deliberate change: TC_SPEC_REFUSALS_UPDATE=1 go test -run TestSpecSuite ./runtime/wasm/instrument, and update docs/notes/wasm.md")
	}
}

// valueTypeV128 is wazero's code for v128 (not in its public api), which
// takes two stack words.
const valueTypeV128 api.ValueType = 0x7b

// compilerPlatform: wazero has its compiler here (as runtime/wasm decides).
var compilerPlatform = (goruntime.GOARCH == "amd64" || goruntime.GOARCH == "arm64") &&
	slices.Contains([]string{"linux", "darwin", "freebsd", "netbsd", "windows"}, goruntime.GOOS)
