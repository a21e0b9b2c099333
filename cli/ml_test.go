package cli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// `ml run` gives TFLite Micro's reference output bit for bit, on stdout or
// into -o; a corrupt model is a usage error (exit 2).
func TestMLRun(t *testing.T) {
	dir := filepath.Join("..", "..", "shared", "tinyml", "tflm", "hello_world")
	model := filepath.Join(dir, "hello_world_int8.tflite")
	if _, err := os.Stat(model); err != nil {
		t.Skipf("shared TinyML models not found: %v", err)
	}
	for _, x := range []string{"0", "-34", "-63", "-96"} {
		in := filepath.Join(dir, "golden", "in_x"+x+".int8.bin")
		want, err := os.ReadFile(filepath.Join(dir, "golden", "in_x"+x+".int8.out_tflm.bin"))
		if err != nil {
			t.Fatal(err)
		}
		r := must(t, 0, "ml", "run", model, in)
		if !bytes.Equal([]byte(r.stdout), want) {
			t.Fatalf("x=%s: stdout %x, TFLM %x", x, r.stdout, want)
		}
		out := filepath.Join(t.TempDir(), "out.bin")
		must(t, 0, "ml", "run", model, in, "-o", out)
		if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
			t.Fatalf("x=%s: -o wrote %x, TFLM %x", x, got, want)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.tflite")
	os.WriteFile(bad, []byte("TFL3 not really a model"), 0o644)
	must(t, 2, "ml", "run", bad, filepath.Join(dir, "golden", "in_x0.int8.bin"))
	must(t, 2, "ml", "run", model)
}
