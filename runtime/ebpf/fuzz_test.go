package ebpf

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf/asm"

	"github.com/tinycontainer/tinycontainer/runtime"
)

// wrapELF wraps raw code as a minimal relocatable BPF object whose only
// section is tc_main.
func wrapELF(code []byte) []byte {
	const ehdr, shdr = 64, 64
	strtab := []byte("\x00tc_main\x00.shstrtab\x00")
	le := binary.LittleEndian
	var b bytes.Buffer
	h := make([]byte, ehdr)
	copy(h, "\x7fELF\x02\x01\x01")
	le.PutUint16(h[16:], 1)   // ET_REL
	le.PutUint16(h[18:], 247) // EM_BPF
	le.PutUint32(h[20:], 1)
	le.PutUint64(h[40:], uint64(ehdr+len(code)+len(strtab))) // e_shoff
	le.PutUint16(h[52:], ehdr)
	le.PutUint16(h[58:], shdr)
	le.PutUint16(h[60:], 3) // sections: null, tc_main, .shstrtab
	le.PutUint16(h[62:], 2)
	b.Write(h)
	b.Write(code)
	b.Write(strtab)
	section := func(name, typ uint32, flags, off, size, align uint64) {
		s := make([]byte, shdr)
		le.PutUint32(s[0:], name)
		le.PutUint32(s[4:], typ)
		le.PutUint64(s[8:], flags)
		le.PutUint64(s[24:], off)
		le.PutUint64(s[32:], size)
		le.PutUint64(s[48:], align)
		b.Write(s)
	}
	section(0, 0, 0, 0, 0, 0)
	section(1, 1, 0x6, ehdr, uint64(len(code)), 8)                   // PROGBITS, ALLOC|EXECINSTR
	section(9, 3, 0, uint64(ehdr+len(code)), uint64(len(strtab)), 1) // STRTAB
	return b.Bytes()
}

// outcome is what a run shows from outside: its result or fault kind, and
// what it did through the host.
func outcome(code int32, err error, h *fakeHost) string {
	if err != nil {
		return fmt.Sprintf("fault %s; calls %v; logs %q", faultKind(err), h.args, h.logs)
	}
	return fmt.Sprintf("exit %d; calls %v; logs %q", code, h.args, h.logs)
}

// checkRun runs in under a short budget and checks that it ends in time
// with an exit code or a *runtime.Fault.
func checkRun(t *testing.T, in runtime.Instance) (int32, error) {
	const budget = 2 * time.Millisecond
	var b runtime.Budget
	b.Arm(budget)
	start := time.Now()
	code, err := in.Run(context.Background(), &b)
	// Generous: the poll interval is far shorter, but the machine may be busy.
	if d := time.Since(start); d > budget+time.Second {
		t.Fatalf("ran %v past a %v budget", d, budget)
	}
	var f *runtime.Fault
	if err != nil && !errors.As(err, &f) {
		t.Fatalf("run error %v is not a *runtime.Fault", err)
	}
	return code, err
}

// FuzzProgram takes bytes as raw instructions, wrapped in an ELF object:
// compiling refuses them with ErrInvalidCode or the program runs to an
// exit or a fault within its budget, and fused and unfused code agree.
func FuzzProgram(f *testing.F) {
	seeds := [][]asm.Instruction{
		{asm.Mov.Imm(asm.R0, 1), asm.Return()},
		{asm.Mov.Imm(asm.R0, 0), asm.Mov.Imm(asm.R1, 10), asm.Add.Reg(asm.R0, asm.R1).WithSymbol("l"),
			asm.Sub.Imm(asm.R1, 1), asm.JNE.Imm(asm.R1, 0, "l"), asm.Return()},
		{asm.Mov.Reg(asm.R1, asm.R10), asm.Add.Imm(asm.R1, -8), asm.StoreImm(asm.R1, 0, 0x676f6c, asm.Word),
			asm.Mov.Imm(asm.R2, 3), asm.BuiltinFunc(helperOpen).Call(), asm.Mov.Reg(asm.R1, asm.R0),
			asm.Mov.Imm(asm.R2, 2), asm.Mov.Reg(asm.R3, asm.R10), asm.Add.Imm(asm.R3, -8), asm.Mov.Imm(asm.R4, 3),
			asm.Mov.Imm(asm.R5, 0), asm.BuiltinFunc(helperCall).Call(), asm.Return()},
		{asm.Mov.Imm(asm.R1, 3), asm.Call.Label("f"), asm.Return(),
			asm.Mov.Reg(asm.R2, asm.R1).WithSymbol("f"), asm.LSh.Imm(asm.R2, 32), asm.ArSh.Imm(asm.R2, 32),
			asm.StoreMem(asm.R10, -8, asm.R2, asm.DWord), asm.LoadMem(asm.R0, asm.R10, -8, asm.DWord), asm.Return()},
		{asm.Mov.Imm(asm.R1, 0), asm.LoadMem(asm.R0, asm.R1, 0, asm.Word), asm.Return()},
		{asm.Ja.Label("x").WithSymbol("x")},
	}
	for _, s := range seeds {
		f.Add(assemble(f, s...))
	}
	objs, _ := filepath.Glob("testdata/*.bpf.o")
	for _, o := range objs {
		obj, err := os.ReadFile(o)
		if err != nil {
			f.Fatal(err)
		}
		if img, err := loadELF(obj, 1<<20); err == nil {
			f.Add(img.code)
		}
	}
	f.Fuzz(func(t *testing.T, code []byte) {
		m, err := New().Compile(context.Background(), wrapELF(code), runtime.Config{MemoryLimit: 64 << 10})
		if err != nil {
			if !errors.Is(err, runtime.ErrInvalidCode) && !errors.Is(err, runtime.ErrLimit) {
				t.Fatalf("compile error %v wraps neither ErrInvalidCode nor ErrLimit", err)
			}
			return
		}
		h := newFakeHost()
		in, err := m.Instantiate(context.Background(), h)
		if err != nil {
			t.Fatal(err)
		}
		code1, err1 := checkRun(t, in)

		plain, err := verify(code)
		if err != nil {
			t.Fatalf("compiled, but verify refuses: %v", err)
		}
		plain.insns = append(plain.insns, insn{op: opHalt})
		h2 := newFakeHost()
		in2, _ := newModule(plain, &image{}).Instantiate(context.Background(), h2)
		code2, err2 := checkRun(t, in2)
		if faultKind(err1) == runtime.FaultBudget || faultKind(err2) == runtime.FaultBudget {
			return // where a time budget ran out depends on timing
		}
		if a, b := outcome(code1, err1, h), outcome(code2, err2, h2); a != b {
			t.Fatalf("fused and unfused code disagree:\n%s\n%s", a, b)
		}
	})
}

// FuzzELF mutates real objects: the loader refuses them with a wrapped
// error class or they run to an exit or a fault within their budget.
func FuzzELF(f *testing.F) {
	objs, _ := filepath.Glob("testdata/*.bpf.o")
	for _, o := range objs {
		obj, err := os.ReadFile(o)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(obj)
	}
	f.Fuzz(func(t *testing.T, obj []byte) {
		m, err := New().Compile(context.Background(), obj, runtime.Config{MemoryLimit: 64 << 10})
		if err != nil {
			if !errors.Is(err, runtime.ErrInvalidCode) && !errors.Is(err, runtime.ErrLimit) {
				t.Fatalf("compile error %v wraps neither ErrInvalidCode nor ErrLimit", err)
			}
			return
		}
		in, err := m.Instantiate(context.Background(), newFakeHost())
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second run sees the first one's data
			if _, err := checkRun(t, in); err != nil {
				return
			}
		}
	})
}

func TestWrapELF(t *testing.T) {
	m, err := New().Compile(t.Context(), wrapELF(assemble(t, asm.Mov.Imm(asm.R0, 7), asm.Return())), runtime.Config{})
	if err != nil {
		t.Fatal(err)
	}
	in, _ := m.Instantiate(t.Context(), newFakeHost())
	if code, err := in.Run(t.Context(), nil); code != 7 || err != nil {
		t.Errorf("got %d, %v; want 7", code, err)
	}
}
