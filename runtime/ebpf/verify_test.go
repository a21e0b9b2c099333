package ebpf

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/tinycontainer/tinycontainer/runtime"
)

// ri encodes one raw instruction.
func ri(code uint8, dst, src uint8, off int16, imm int32) []byte {
	b := make([]byte, 8)
	b[0], b[1] = code, src<<4|dst
	binary.LittleEndian.PutUint16(b[2:], uint16(off))
	binary.LittleEndian.PutUint32(b[4:], uint32(imm))
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

var (
	exit   = ri(classJMP|jmpEXIT, 0, 0, 0, 0)
	mov0   = ri(classALU64|aluMOV|srcK, 0, 0, 0, 0)
	lddwR1 = cat(ri(rawLDDW, 1, 0, 0, 1), ri(0, 0, 0, 0, 0))
)

func TestVerifierRefuses(t *testing.T) {
	cases := []struct {
		name string
		code []byte
		want string
	}{
		{"empty program", nil, "empty program"},
		{"partial instruction", mov0[:5], "not a multiple of 8"},
		{"too long", bytes.Repeat(mov0, MaxInstructions+1), "65537 instructions"},
		{"unknown ALU op", cat(ri(0xe7, 0, 0, 0, 0), exit), "instruction 0: unknown ALU operation"},
		{"unknown jump op", cat(mov0, ri(0xe5, 0, 0, 0, 0), exit), "instruction 1: unknown jump opcode"},
		{"unknown load", cat(ri(0x99, 0, 1, 0, 0), exit), "instruction 0: unknown load opcode"},
		{"legacy packet load", cat(ri(0x20, 0, 0, 0, 0), exit), "instruction 0: unsupported load opcode 0x20"},
		{"byte-sized atomic", cat(ri(classSTX|modeATOMIC|sizeB, 10, 1, -8, 0), exit), "instruction 0: unknown store opcode"},
		{"unknown atomic", cat(ri(classSTX|modeATOMIC|sizeDW, 10, 1, -8, 0x33), exit), "unknown atomic operation"},
		{"bad byte swap width", cat(ri(classALU|aluEND|srcX, 0, 0, 0, 8), exit), "byte swap of 8 bits"},
		{"jump past the end", cat(ri(classJMP|jmpJA, 0, 0, 5, 0), exit), "instruction 0: jump to 6 is outside the program"},
		{"jump before the start", cat(mov0, ri(classJMP|jmpJEQ|srcK, 0, 0, -3, 0), exit), "instruction 1: jump to -1 is outside"},
		{"jump into lddw", cat(ri(classJMP|jmpJA, 0, 0, 1, 0), lddwR1, exit), "instruction 0: jump to 2 lands in the middle of an lddw"},
		{"lddw cut short", cat(mov0, ri(rawLDDW, 1, 0, 0, 1)), "instruction 1: lddw is missing its second half"},
		{"lddw bad second half", cat(ri(rawLDDW, 1, 0, 0, 1), ri(0x07, 0, 0, 0, 0), exit), "instruction 1: second half of lddw"},
		{"lddw of a map", cat(ri(rawLDDW, 1, 1, 0, 1), ri(0, 0, 0, 0, 0), exit), "pseudo source 1"},
		{"bad destination register", cat(ri(classALU64|aluMOV|srcK, 11, 0, 0, 0), exit), "instruction 0: bad destination register r11"},
		{"bad source register", cat(ri(classALU64|aluADD|srcX, 0, 12, 0, 0), exit), "instruction 0: bad source register r12"},
		{"write to r10", cat(ri(classALU64|aluMOV|srcK, 10, 0, 0, 0), exit), "instruction 0: writes to the read-only frame pointer"},
		{"load into r10", cat(ri(classLDX|modeMEM|sizeW, 10, 1, 0, 0), exit), "read-only frame pointer"},
		{"atomic fetch into r10", cat(ri(classSTX|modeATOMIC|sizeDW, 1, 10, 0, atomicADD|atomicFETCH), exit), "read-only frame pointer"},
		{"unknown helper", cat(ri(classJMP|jmpCALL, 0, 0, 0, 4), exit), "instruction 0: call to unknown helper 4"},
		{"kernel function call", cat(ri(classJMP|jmpCALL, 0, 2, 0, 4), exit), "kernel functions"},
		{"call out of range", cat(ri(classJMP|jmpCALL, 0, callLocal, 0, 10), exit), "instruction 0: call to 11 is outside the program"},
		{"falls off the end", cat(mov0, mov0), "instruction 1: program falls off the end"},
		{"conditional jump at the end", cat(mov0, ri(classJMP|jmpJEQ|srcK, 0, 0, -2, 0)), "instruction 1: program falls off the end"},
		{"function falls into the next", cat(ri(classJMP|jmpCALL, 0, callLocal, 0, 1), mov0, mov0, exit), "instruction 1: program falls off the end of its function"},
		{"jump leaves its function", cat(ri(classJMP|jmpCALL, 0, callLocal, 0, 1), ri(classJMP|jmpJA, 0, 0, 1, 0), exit, exit), "instruction 1: jump to 3 leaves its function"},
		{"reserved field in ALU", cat(ri(classALU64|aluADD|srcK, 0, 3, 0, 1), exit), "non-zero source register"},
		{"ALU offset", cat(ri(classALU64|aluADD|srcK, 0, 0, 4, 1), exit), "unexpected offset 4"},
		{"malformed exit", ri(classJMP|jmpEXIT, 1, 0, 0, 0), "malformed exit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := compile(c.code)
			if !errors.Is(err, runtime.ErrInvalidCode) {
				t.Fatalf("got %v, want ErrInvalidCode", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
}

func TestVerifierDepth(t *testing.T) {
	call := func(to int16) []byte { return ri(classJMP|jmpCALL, 0, callLocal, 0, int32(to)) }
	cases := []struct {
		name string
		code []byte
		want int
	}{
		{"no calls", cat(mov0, exit), 1},
		// main -> f -> g, and main -> g directly.
		{"chain", cat(call(2), call(3), exit, call(1), exit, exit), 3},
		{"recursion", cat(call(1), exit, call(-1), exit), maxCallDepth},
	}
	for _, c := range cases {
		p, err := compile(c.code)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if p.depth != c.want {
			t.Errorf("%s: depth %d, want %d", c.name, p.depth, c.want)
		}
	}
}

// elfObject returns testdata/name.bpf.o.
func elfObject(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name + ".bpf.o")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// patchSection returns a copy of obj with f applied to the copy and the
// offset of section name's header in it.
func patchSection(t *testing.T, obj []byte, name string, f func(b []byte, hdr int)) []byte {
	t.Helper()
	ef, err := elf.NewFile(bytes.NewReader(obj))
	if err != nil {
		t.Fatal(err)
	}
	shoff := int(binary.LittleEndian.Uint64(obj[0x28:]))
	for i, s := range ef.Sections {
		if s.Name == name {
			b := bytes.Clone(obj)
			f(b, shoff+i*64)
			return b
		}
	}
	t.Fatalf("no section %q", name)
	return nil
}

func TestLoaderRefuses(t *testing.T) {
	hello := elfObject(t, "hello")
	globals := elfObject(t, "globals")
	renamed := bytes.Clone(hello)
	copy(renamed[bytes.LastIndex(renamed, []byte("tc_main\x00")):], "tc_mian")
	cases := []struct {
		name  string
		obj   []byte
		limit uint64
		want  error
		says  string
	}{
		{"not ELF", []byte("hello"), 0, runtime.ErrInvalidCode, "not a valid ELF object"},
		{"wrong machine", func() []byte { b := bytes.Clone(hello); b[18] = byte(elf.EM_X86_64); return b }(), 0, runtime.ErrInvalidCode, "BPF object"},
		{"no entry section", renamed, 0, runtime.ErrInvalidCode, `no "tc_main" section`},
		{"over the memory limit", globals, 600, runtime.ErrLimit, ""},
		{"stack alone over the limit", hello, 100, runtime.ErrLimit, ""},
		{"huge bss", patchSection(t, globals, ".bss", func(b []byte, h int) {
			binary.LittleEndian.PutUint64(b[h+32:], 1<<40)
		}), 0, runtime.ErrLimit, ".bss"},
		{"code size not a multiple of 8", patchSection(t, hello, "tc_main", func(b []byte, h int) {
			binary.LittleEndian.PutUint64(b[h+32:], binary.LittleEndian.Uint64(b[h+32:])-4)
		}), 0, runtime.ErrInvalidCode, "not a multiple of 8"},
		{"relocation off an instruction", patchSection(t, hello, ".reltc_main", func(b []byte, h int) {
			off := int(binary.LittleEndian.Uint64(b[h+24:]))
			binary.LittleEndian.PutUint64(b[off:], 3)
		}), 0, runtime.ErrInvalidCode, "not on an instruction"},
		{"maps section", func() []byte { // .bss renamed to maps in the string table
			b := bytes.Clone(globals)
			copy(b[bytes.Index(b, []byte(".bss\x00")):], "maps")
			return b
		}(), 0, runtime.ErrInvalidCode, "maps are not supported"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New().Compile(context.Background(), c.obj, runtime.Config{MemoryLimit: c.limit})
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.says) {
				t.Errorf("error %q does not say %q", err, c.says)
			}
		})
	}
}
