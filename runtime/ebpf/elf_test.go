package ebpf

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"github.com/tinycontainer/tinycontainer/runtime"
)

// hugeIndexObjects are testdata/hello.bpf.o with one index of its
// relocation section set to 2^31: the section it applies to (as a REL
// and as a RELA section) and the symbol of its first relocation. On
// 32-bit platforms the loader compared them as ints, negative there:
// the RELA one and the symbol indexed past a slice (a panic at install),
// the REL one was let through.
func hugeIndexObjects(t testing.TB) map[string][]byte {
	obj, err := os.ReadFile("testdata/hello.bpf.o")
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(obj))
	if err != nil {
		t.Fatal(err)
	}
	rel := -1
	for i, s := range f.Sections {
		if s.Type == elf.SHT_REL && s.Size > 0 {
			rel = i
			break
		}
	}
	if rel < 0 {
		t.Fatal("hello.bpf.o has no relocations")
	}
	le := binary.LittleEndian
	shdr := int(le.Uint64(obj[0x28:])) + rel*int(le.Uint16(obj[0x3A:])) // e_shoff, e_shentsize
	patch := func(f func(b []byte)) []byte {
		b := bytes.Clone(obj)
		f(b)
		return b
	}
	return map[string][]byte{
		"REL section for section 2^31": patch(func(b []byte) { le.PutUint32(b[shdr+44:], 1<<31) }), // sh_info
		"RELA section for section 2^31": patch(func(b []byte) {
			le.PutUint32(b[shdr+4:], uint32(elf.SHT_RELA))
			le.PutUint32(b[shdr+44:], 1<<31)
		}),
		"relocation against symbol 2^31": patch(func(b []byte) {
			le.PutUint32(b[f.Sections[rel].Offset+12:], 1<<31) // the symbol: r_info's high half
		}),
	}
}

// TestELFIndicesPast2To31: such an object is refused as invalid code on
// every platform, but for the RELA section for no section, ignored as
// on 64-bit platforms (only RELA relocations of loaded sections are
// refused).
func TestELFIndicesPast2To31(t *testing.T) {
	for name, obj := range hugeIndexObjects(t) {
		t.Run(name, func(t *testing.T) {
			_, err := testRuntime().Compile(context.Background(), obj, runtime.Config{MemoryLimit: 64 << 10})
			if name == "RELA section for section 2^31" && err == nil {
				return
			}
			if !errors.Is(err, runtime.ErrInvalidCode) {
				t.Fatalf("got %v, want ErrInvalidCode", err)
			}
		})
	}
}
