package kernels

import (
	"bytes"
	"errors"
	"io/fs"
	"slices"
	"testing"
)

func TestList(t *testing.T) {
	want := []string{"coremark", "crc32", "fib", "matmul"}
	if got := List(); !slices.Equal(got, want) {
		t.Fatalf("List() = %q, want %q", got, want)
	}
	for _, name := range want {
		code, err := Wasm(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(code, []byte("\x00asm\x01\x00\x00\x00")) {
			t.Errorf("%s.wasm is not a WebAssembly 1 module", name)
		}
		if _, err := FS.ReadFile(name + ".c"); err != nil {
			t.Errorf("%s: source missing: %v", name, err)
		}
	}
}

func TestBPF(t *testing.T) {
	obj, err := BPF("crc32")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(obj, []byte("\x7fELF")) {
		t.Error("crc32.bpf.o is not an ELF object")
	}
	if _, err := BPF("fib"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("BPF(fib): %v, want fs.ErrNotExist", err)
	}
	if _, err := Wasm("nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Wasm(nope): %v, want fs.ErrNotExist", err)
	}
}
