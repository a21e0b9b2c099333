// Package kernels holds the compute kernels that TinyContainer's
// benchmarks run: C sources and their committed builds (`make guests`),
// embedded so that tests, benchmarks and `tinycontainer bench` load the
// same bytes without touching the file system.
//
// Each kernel NAME is NAME.c built to NAME.wasm (clang, wasm32, the SDK's
// TC_MAIN entry point, no imports); a kernel that also runs as eBPF has
// NAME.bpf.c built to NAME.bpf.o from the same C code. Every activation
// does the same work and returns the same value:
//
//   - crc32: CRC-32 (IEEE) of 4 KiB of data (byte i is i*7+3); the table
//     is built in the first activation. Also as crc32.bpf.o.
//   - matmul: four rounds of a 40x40 int32 matrix multiply.
//   - coremark: in the spirit of CoreMark: linked-list search, reversal
//     and merge sort, a string-scanning state machine, a 16x16 matrix
//     kernel, CRC-16 of the results.
//   - fib: naive recursive Fibonacci of 25 (call-bound).
//
// The C files begin with `//go:build ignore`: the go tool refuses C files
// in a package built without cgo, and these are make's, not cgo's.
package kernels

import (
	"embed"
	"io/fs"
	"slices"
	"strings"
)

// FS holds NAME.wasm for every kernel, NAME.bpf.o for those that have an
// eBPF build, and the C sources.
//
//go:embed *.wasm *.bpf.o *.c *.h
var FS embed.FS

// List is the names of the kernels, sorted: NAME.wasm is in FS for each.
func List() []string {
	var names []string
	matches, _ := fs.Glob(FS, "*.wasm") // the pattern is valid
	for _, m := range matches {
		names = append(names, strings.TrimSuffix(m, ".wasm"))
	}
	slices.Sort(names)
	return names
}

// Wasm is the WebAssembly build of kernel name.
func Wasm(name string) ([]byte, error) { return FS.ReadFile(name + ".wasm") }

// BPF is the eBPF build of kernel name (an ELF object); an error wrapping
// fs.ErrNotExist when the kernel has none.
func BPF(name string) ([]byte, error) { return FS.ReadFile(name + ".bpf.o") }
