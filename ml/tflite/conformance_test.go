package tflite

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// tinymlDir locates the shared test data (TINYML_DIR, default the shared
// checkout next to the repository); tests skip when it is absent.
func tinymlDir(t testing.TB) string {
	d := tinymlPath()
	if _, err := os.Stat(filepath.Join(d, "MANIFEST.md")); err != nil {
		t.Skipf("TinyML test data not found at %s (set TINYML_DIR): %v", d, err)
	}
	return d
}

// conformanceModels are every int8 model with TFLM golden outputs.
var conformanceModels = []string{
	"tflm/hello_world/hello_world_int8.tflite",
	"tflm/micro_speech/micro_speech_quantized.tflite",
	"tflm/person_detection/person_detect.tflite",
	"tflm/person_detection/person_detect_biasqdim0.tflite",
	"mlperf_tiny/ad/ad01_int8.tflite",
	"mlperf_tiny/ic/pretrainedResnet_quant.tflite",
	"mlperf_tiny/kws/kws_ref_model.tflite",
	"mlperf_tiny/vww/vww_96_int8.tflite",
	"mlperf_tiny/sww/str_ww_ref_model.tflite",
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type golden struct {
	name          string
	input, output []byte
	layers        string // directory of per-layer dumps, "" if none
}

// goldens lists the golden vectors of the model at rel: for each
// golden/X.out_tflm.bin the input X is golden/X or, failing that, ../X.
func goldens(t *testing.T, dir, rel string) []golden {
	mdir := filepath.Join(dir, filepath.Dir(rel))
	outs, err := filepath.Glob(filepath.Join(mdir, "golden", "*.out_tflm.bin"))
	if err != nil || len(outs) == 0 {
		t.Fatalf("no golden outputs in %s", mdir)
	}
	var gs []golden
	for _, o := range outs {
		name := strings.TrimSuffix(filepath.Base(o), ".out_tflm.bin")
		in := filepath.Join(mdir, "golden", name+".bin")
		if _, err := os.Stat(in); err != nil {
			in = filepath.Join(mdir, name+".bin")
		}
		g := golden{name: name, input: readFile(t, in), output: readFile(t, o)}
		if l := filepath.Join(mdir, "golden", name+".layers_tflm"); dirExists(l) {
			g.layers = l
		}
		gs = append(gs, g)
	}
	return gs
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func loadModel(t testing.TB, path string) ([]byte, *Interpreter) {
	t.Helper()
	b := readFile(t, path)
	m, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse(%s): %v", path, err)
	}
	it, err := NewInterpreter(m)
	if err != nil {
		t.Fatalf("NewInterpreter(%s): %v", path, err)
	}
	return b, it
}

// kernelSets runs fn once per kernel set this machine has (vector and
// pure Go), as subtests.
func kernelSets(t *testing.T, fn func(t *testing.T)) {
	for _, simd := range simdModes() {
		name := "go"
		if simd {
			name = "simd"
		}
		t.Run(name, func(t *testing.T) { withSIMD(t, simd, func() { fn(t) }) })
	}
}

func TestConformanceGolden(t *testing.T) {
	kernelSets(t, testConformanceGolden)
}

func testConformanceGolden(t *testing.T) {
	dir := tinymlDir(t)
	for _, rel := range conformanceModels {
		t.Run(filepath.Base(rel), func(t *testing.T) {
			model, it := loadModel(t, filepath.Join(dir, rel))
			for _, g := range goldens(t, dir, rel) {
				out := make([]byte, len(g.output)+3)
				n, err := it.Invoke(model, g.input, out)
				if err != nil {
					t.Fatalf("%s: %v", g.name, err)
				}
				if !bytes.Equal(out[:n], g.output) {
					t.Errorf("%s: output %v, TFLM %v", g.name, int8s(out[:n]), int8s(g.output))
				}
			}
		})
	}
}

var layerFile = regexp.MustCompile(`^op(\d+)_([A-Z0-9_]+)_t(\d+)\.bin$`)

func TestConformanceLayers(t *testing.T) {
	kernelSets(t, testConformanceLayers)
}

func testConformanceLayers(t *testing.T) {
	dir := tinymlDir(t)
	for _, rel := range conformanceModels {
		t.Run(filepath.Base(rel), func(t *testing.T) {
			model, it := loadModel(t, filepath.Join(dir, rel))
			for _, g := range goldens(t, dir, rel) {
				if g.layers == "" {
					continue
				}
				want := map[int]map[int][]byte{} // op -> tensor -> bytes
				ents, err := os.ReadDir(g.layers)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range ents {
					sm := layerFile.FindStringSubmatch(e.Name())
					if sm == nil {
						t.Fatalf("unexpected layer dump %s", e.Name())
					}
					op, _ := strconv.Atoi(sm[1])
					tn, _ := strconv.Atoi(sm[3])
					if got := opName(it.m.ops[op].code); got != sm[2] {
						t.Fatalf("%s: operator %d is %s", e.Name(), op, got)
					}
					if want[op] == nil {
						want[op] = map[int][]byte{}
					}
					want[op][tn] = readFile(t, filepath.Join(g.layers, e.Name()))
				}
				checked := 0
				it.invokeLayers(model, g.input, func(op int, a []int8) {
					for tn, w := range want[op] {
						r := it.ref(tn)
						got := r.get(a, model)
						if !bytes.Equal(bytesOf(got), w) {
							t.Errorf("%s op %d (%s) tensor %d differs from TFLM: first diff at %s", g.name, op, opName(it.m.ops[op].code), tn, firstDiff(bytesOf(got), w))
						}
						checked++
					}
				})
				if checked != len(ents) {
					t.Errorf("%s: compared %d of %d layer dumps", g.name, checked, len(ents))
				}
			}
		})
	}
}

func bytesOf(x []int8) []byte {
	b := make([]byte, len(x))
	for i, v := range x {
		b[i] = byte(v)
	}
	return b
}

func firstDiff(a, b []byte) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("%d (%d vs %d)", i, int8(a[i]), int8(b[i]))
		}
	}
	return fmt.Sprintf("length %d vs %d", len(a), len(b))
}

// TestUnsupportedModels: well-formed models outside the engine's scope are
// refused with ErrUnsupported, not misread.
func TestUnsupportedModels(t *testing.T) {
	dir := tinymlDir(t)
	for _, rel := range []string{
		"tflm/hello_world/hello_world_float.tflite",
		"tflm/micro_speech/audio_preprocessor_int8.tflite",
		"mlperf_tiny/kws/kws_ref_model_float32.tflite",
	} {
		m, err := Parse(readFile(t, filepath.Join(dir, rel)))
		if err == nil {
			_, err = NewInterpreter(m)
		}
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", rel, err)
		}
	}
}
