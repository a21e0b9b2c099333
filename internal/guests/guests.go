// Package guests holds the guest programs that more than one package runs:
// one source and one committed binary each under testdata/, built by `make
// guests` and checked by `make check-guests`.
//
//   - crunch.c (crunch.wasm, and crunch.bpf.o through crunch.bpf.c): an
//     event container that computes for as many iterations as its message
//     says and checks its own memory; preemption tests (device) and
//     measurements (bench).
//   - escape_*.wat, flood.bpf.c: loops of host calls that must still be
//     stopped by the budget; the runtimes' regression tests of issue 10
//     and bench's "no escape" figures.
package guests

import (
	"embed"
	"fmt"
	"io/fs"
)

//go:embed testdata/*.wasm testdata/*.bpf.o
var files embed.FS

// FS holds the built guests by file name (crunch.wasm, crunch.bpf.o, ...).
func FS() fs.FS {
	sub, _ := fs.Sub(files, "testdata") // a valid name
	return sub
}

// File returns the built guest name; a name not here is a programming
// error and panics.
func File(name string) []byte {
	b, err := fs.ReadFile(files, "testdata/"+name)
	if err != nil {
		panic(fmt.Sprintf("guests: %s: %v", name, err))
	}
	return b
}
