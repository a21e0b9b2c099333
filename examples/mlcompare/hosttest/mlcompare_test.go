// Package hosttest runs the mlcompare guest against a minimal host.
package hosttest

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/tinycontainer/tinycontainer/ml/tflite"
)

// guest runs mlcompare.wasm against a minimal host with the endpoints it
// uses: log, sensor/accel (random readings) and ml (tflite.Cache), the way
// the device's ml endpoint is meant to call the engine.
type guest struct {
	mod   api.Module
	cache *tflite.Cache
	rng   *rand.Rand
	log   []string
}

const (
	hLog = iota + 1
	hAccel
	hML
)

func newGuest(t testing.TB) *guest {
	ctx := context.Background()
	wasm, err := os.ReadFile("../mlcompare.wasm")
	if err != nil {
		t.Fatal(err)
	}
	g := &guest{cache: tflite.NewCache(4), rng: rand.New(rand.NewPCG(1, 2))}
	r := wazero.NewRuntime(ctx)
	t.Cleanup(func() { r.Close(ctx) })
	_, err = r.NewHostModuleBuilder("tc").
		NewFunctionBuilder().WithFunc(func(_ context.Context, m api.Module, p, n uint32) int32 {
		name, _ := m.Memory().Read(p, n)
		switch string(name) {
		case "log":
			return hLog
		case "sensor/accel":
			return hAccel
		case "ml":
			return hML
		}
		return -2
	}).Export("open").
		NewFunctionBuilder().WithFunc(g.call).Export("call").
		NewFunctionBuilder().WithFunc(func(uint32) int32 { return 0 }).Export("close").
		Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if g.mod, err = r.Instantiate(ctx, wasm); err != nil {
		t.Fatal(err)
	}
	return g
}

func (g *guest) call(_ context.Context, m api.Module, h, op, buf, inLen, capacity uint32) int32 {
	mem := m.Memory()
	b, ok := mem.Read(buf, max(inLen, capacity))
	if !ok {
		return -14
	}
	switch h {
	case hLog:
		g.log = append(g.log, string(b[:inLen]))
		return 0
	case hAccel:
		for i := range 3 {
			binary.LittleEndian.PutUint32(b[4*i:], uint32(int32(g.rng.IntN(8000)-4000)))
		}
		return 12
	case hML:
		if op != 7 || inLen != 24 || capacity < 4 {
			return -22
		}
		var f [6]uint32
		for i := range f {
			f[i] = binary.LittleEndian.Uint32(b[4*i:])
		}
		model, ok1 := mem.Read(f[0], f[1])
		input, ok2 := mem.Read(f[2], f[3])
		output, ok3 := mem.Read(f[4], f[5])
		if !ok1 || !ok2 || !ok3 {
			return -14
		}
		n, err := g.cache.Invoke("mlcompare", model, input, output)
		switch {
		case errors.Is(err, tflite.ErrUnsupported):
			return -38
		case errors.Is(err, tflite.ErrOutputTooSmall):
			return -90
		case err != nil:
			return -22
		}
		binary.LittleEndian.PutUint32(b, uint32(n))
		return 4
	}
	return -9
}

func TestWasmKernelsMatchEngine(t *testing.T) {
	g := newGuest(t)
	ctx := context.Background()
	for i := range 50 {
		res, err := g.mod.ExportedFunction("tc_main").Call(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if int32(res[0]) != 0 {
			t.Fatalf("run %d: exit %d: %v", i, int32(res[0]), g.log)
		}
	}
	if len(g.log) != 50 || !strings.HasSuffix(g.log[0], " match") {
		t.Fatalf("log: %q", g.log)
	}
	t.Log(g.log[0])
}

// BenchmarkDemo compares the demo inference in WebAssembly (C kernels
// under wazero) with the host engine reached through the ml endpoint.
func BenchmarkDemo(b *testing.B) {
	g := newGuest(b)
	ctx := context.Background()
	if _, err := g.mod.ExportedFunction("tc_main").Call(ctx); err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"mlc_wasm", "mlc_host"} {
		b.Run(name, func(b *testing.B) {
			f := g.mod.ExportedFunction(name)
			for b.Loop() {
				if res, err := f.Call(ctx, 100); err != nil || int32(res[0]) < -128 {
					b.Fatal(res, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/inference")
		})
	}
}
