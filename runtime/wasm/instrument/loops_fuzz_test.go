package instrument

import (
	"context"
	"errors"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/tinycontainer/tinycontainer/runtime"
)

// progGen builds a function of random structured control flow from fuzz
// bytes: blocks, loops, if/else, br, br_if and br_table to any label,
// returns, calls of a fuel-spending and a free helper, and locals of
// several types. Every loop header spends one unit of a global budget
// and returns when it is gone, so every program ends.
type progGen struct {
	in  []byte
	out []byte
	// labels: for each open label, whether a branch to it carries an
	// i32 (only the function's own label does).
	labels []bool
}

func (g *progGen) next() byte {
	if len(g.in) == 0 {
		return 0
	}
	b := g.in[0]
	g.in = g.in[1:]
	return b
}

func (g *progGen) op(b ...byte) { g.out = append(g.out, b...) }

// Locals: 0 the parameter, 1..3 i32, 4 i64, 5 f64.
func (g *progGen) i32Local() byte { return g.next() % 4 }

// depth picks a label that takes no value (any but the function's).
func (g *progGen) depth() (byte, bool) {
	if len(g.labels) < 2 {
		return 0, false
	}
	return g.next() % byte(len(g.labels)-1), true
}

func (g *progGen) stmts(nest int) {
	n := int(g.next() % 6)
	for range n {
		if len(g.in) == 0 {
			return
		}
		g.stmt(nest)
	}
}

func (g *progGen) stmt(nest int) {
	switch k := g.next() % 12; {
	case k < 3: // a = x op y
		g.op(0x20, g.i32Local(), 0x20, g.i32Local(), []byte{0x6A, 0x6B, 0x6C, 0x73}[g.next()%4], 0x21, 1+g.next()%3)
	case k == 3 && nest < 6: // block
		g.op(0x02, 0x40)
		g.labels = append(g.labels, false)
		g.stmts(nest + 1)
		g.labels = g.labels[:len(g.labels)-1]
		g.op(0x0B)
	case k == 4 && nest < 6: // loop with its budget guard
		g.op(0x03, 0x40)
		g.labels = append(g.labels, false)
		g.op(0x23, 0, 0x45, 0x04, 0x40, 0x20, 1, 0x0F, 0x0B) // if budget == 0: return a
		g.op(0x23, 0, 0x41, 1, 0x6B, 0x24, 0)                // budget--
		g.stmts(nest + 1)
		g.labels = g.labels[:len(g.labels)-1]
		g.op(0x0B)
	case k == 5 && nest < 6: // if/else on a < K
		g.op(0x20, g.i32Local(), 0x41, g.next()&0x3F, 0x49, 0x04, 0x40)
		g.labels = append(g.labels, false)
		g.stmts(nest + 1)
		if g.next()&1 == 1 {
			g.op(0x05)
			g.stmts(nest + 1)
		}
		g.labels = g.labels[:len(g.labels)-1]
		g.op(0x0B)
	case k == 6: // br_if d (x & 1)
		if d, ok := g.depth(); ok {
			g.op(0x20, g.i32Local(), 0x41, 1, 0x71, 0x0D, d)
		}
	case k == 7: // br_table over labels that take no value
		if len(g.labels) < 2 {
			return
		}
		n := 1 + g.next()%4
		g.op(0x20, g.i32Local(), 0x0E, n)
		for range n + 1 {
			d, _ := g.depth()
			g.op(d)
		}
	case k == 8: // br_if to the function's label with a
		g.op(0x20, 1, 0x20, g.i32Local(), 0x41, 3, 0x71, 0x45, 0x0D, byte(len(g.labels)-1), 0x1A)
	case k == 9: // b = helper(a): the fuel-spending one or the free one
		g.op(0x20, g.i32Local(), 0x10, 1+g.next()%2, 0x21, 1+g.next()%3)
	case k == 10: // the other types
		g.op(0x20, 4, 0x20, g.i32Local(), 0xAD, 0x7C, 0x21, 4)           // d += u64(x)
		g.op(0x20, 5, 0x44, 0, 0, 0, 0, 0, 0, 0xF8, 0x3F, 0xA0, 0x21, 5) // e += 1.5
	case k == 11 && g.next()%8 == 0: // return a
		g.op(0x20, 1, 0x0F)
	}
}

// program is the module: f (exported) is generated, $work spends fuel
// (it loops), $leaf is free.
func (g *progGen) program() []byte {
	g.labels = []bool{true}
	g.op(0x41, 0xAC, 0x02, 0x24, 0) // budget = 300
	g.stmts(0)
	g.stmts(0)
	// a + b + c + u32(d) + trunc_sat(e)
	g.op(0x20, 1, 0x20, 2, 0x6A, 0x20, 3, 0x6A, 0x20, 4, 0xA7, 0x6A, 0x20, 5, 0xFC, 0x02, 0x6A, 0x0B)
	body := append([]byte{3, 3, 0x7F, 1, 0x7E, 1, 0x7C}, g.out...)
	work := []byte{0, 0x03, 0x40, 0x20, 0, 0x41, 1, 0x76, 0x22, 0, 0x41, 0xE8, 0x07, 0x4B, 0x0D, 0, 0x0B, 0x20, 0, 0x0B}
	leaf := []byte{0, 0x20, 0, 0x41, 7, 0x73, 0x0B}
	m := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	m = appendSection(m, secType, []byte{1, 0x60, 1, 0x7F, 1, 0x7F})
	m = appendSection(m, secFunction, []byte{3, 0, 0, 0})
	m = appendSection(m, secGlobal, []byte{1, 0x7F, 1, 0x41, 0, 0x0B})
	m = appendSection(m, secExport, []byte{1, 1, 'f', 0, 0})
	code := []byte{3}
	for _, b := range [][]byte{body, work, leaf} {
		code = appendU32(code, uint32(len(b)))
		code = append(code, b...)
	}
	return appendSection(m, secCode, code)
}

// FuzzLoops: instrumenting a random structured program keeps its result,
// whatever the interval (so wherever the out-of-line checkpoints run).
func FuzzLoops(f *testing.F) {
	f.Add([]byte{4, 0, 5, 4, 2, 0, 1, 2, 6, 1, 7, 3, 0, 1, 2, 9, 1, 0, 10, 4, 4, 3, 7, 2, 1, 1, 1, 0, 8, 2})
	f.Add([]byte{5, 3, 2, 4, 4, 4, 3, 0, 1, 2, 7, 2, 0, 1, 1, 1, 6, 2, 1, 9, 0, 0, 0, 8, 1, 11, 0})
	f.Add([]byte{1, 4, 3, 4, 2, 5, 1, 20, 2, 4, 1, 9, 1, 1, 1, 7, 1, 3, 2, 0, 1, 0, 1, 1})
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().WithCoreFeatures(features))
	defer rt.Close(ctx)
	b := &bare{rt: rt}
	if _, err := rt.NewHostModuleBuilder(CheckpointModule).NewFunctionBuilder().
		WithFunc(func() { b.checkpoints.Add(1) }).Export(CheckpointName).Instantiate(ctx); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, seed []byte) {
		g := &progGen{in: seed}
		code := g.program()
		orig, err := rt.InstantiateWithConfig(ctx, code, wazero.NewModuleConfig().WithName(""))
		if err != nil {
			t.Fatalf("the generator made an invalid module: %v", err)
		}
		defer orig.Close(ctx)
		for _, interval := range []uint32{1, 2, 4096} {
			res, err := Instrument(code, Options{MemoryLimit: 1 << 20, Interval: interval})
			if errors.Is(err, runtime.ErrLimit) && interval < DefaultInterval {
				// A tiny interval cuts straight-line code every few
				// instructions; a long generated body can then pass the
				// install-time block bound.
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			mod, err := rt.InstantiateWithConfig(ctx, res.Code, wazero.NewModuleConfig().WithName(""))
			if err != nil {
				t.Fatalf("interval %d: instrumented module refused: %v", interval, err)
			}
			for _, arg := range []uint64{0, 5, 1000} {
				if w, g := call(orig, "f", arg), call(mod, "f", arg); w != g {
					t.Fatalf("interval %d, f(%d): original %s, instrumented %s", interval, arg, w, g)
				}
			}
			mod.Close(ctx)
		}
	})
}
