package ebpf

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cilium/ebpf/asm"

	"github.com/tinycontainer/tinycontainer/runtime"
)

// wrapELF wraps raw code as a minimal relocatable BPF object: the
// tc_main section, 16 bytes of .rodata and 48 of .data (so the data
// region has a read-only part, DataBase to DataBase+16, and a writable
// one up to DataBase+64).
func wrapELF(code []byte) []byte {
	const ehdr, shdr = 64, 64
	strtab := []byte("\x00tc_main\x00.shstrtab\x00.rodata\x00.data\x00")
	ro := []byte("read-only bytes!")
	data := make([]byte, 48)
	for i := range data {
		data[i] = byte(i*37 + 1)
	}
	le := binary.LittleEndian
	var b bytes.Buffer
	h := make([]byte, ehdr)
	copy(h, "\x7fELF\x02\x01\x01")
	le.PutUint16(h[16:], 1)   // ET_REL
	le.PutUint16(h[18:], 247) // EM_BPF
	le.PutUint32(h[20:], 1)
	body := ehdr + len(code) + len(ro) + len(data) + len(strtab)
	le.PutUint64(h[40:], uint64(body)) // e_shoff
	le.PutUint16(h[52:], ehdr)
	le.PutUint16(h[58:], shdr)
	le.PutUint16(h[60:], 5) // sections: null, tc_main, .shstrtab, .rodata, .data
	le.PutUint16(h[62:], 2)
	b.Write(h)
	for _, part := range [][]byte{code, ro, data, strtab} {
		b.Write(part)
	}
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
	off := uint64(ehdr)
	section(0, 0, 0, 0, 0, 0)
	section(1, 1, 0x6, off, uint64(len(code)), 8) // PROGBITS, ALLOC|EXECINSTR
	off += uint64(len(code))
	section(9, 3, 0, off+uint64(len(ro)+len(data)), uint64(len(strtab)), 1) // STRTAB
	section(19, 1, 0x2, off, uint64(len(ro)), 8)                            // .rodata: ALLOC
	section(27, 1, 0x3, off+uint64(len(ro)), uint64(len(data)), 8)          // .data: ALLOC|WRITE
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
// with an exit code or a *runtime.Fault. In time is CPU time: a run that
// does not end is a hang the test binary's timeout catches, and one that
// ends must not have used its budget many times over (a wall-clock bound
// failed when a busy machine stalled the process).
func checkRun(t *testing.T, in runtime.Instance) (int32, error) {
	const budget = 500 * time.Microsecond
	var b runtime.Budget
	b.Arm(budget)
	code, err := in.Run(context.Background(), &b)
	if o := b.Overrun(); o > time.Second {
		t.Fatalf("ran %v of CPU past a %v budget", o, budget)
	}
	var f *runtime.Fault
	if err != nil && !errors.As(err, &f) {
		t.Fatalf("run error %v is not a *runtime.Fault", err)
	}
	return code, err
}

// shapedOpcodes are the opcodes shape picks from: every class, operation
// and size of the ISA.
var shapedOpcodes = func() []byte {
	var ops []byte
	for _, class := range []byte{classALU, classALU64} {
		for _, op := range []byte{aluADD, aluSUB, aluMUL, aluDIV, aluOR, aluAND, aluLSH, aluRSH, aluMOD, aluXOR, aluMOV, aluARSH} {
			ops = append(ops, class|op|srcK, class|op|srcX)
		}
		ops = append(ops, class|aluNEG)
	}
	ops = append(ops, classALU|aluEND|srcK, classALU|aluEND|srcX, classALU64|aluEND|srcK)
	for _, class := range []byte{classJMP, classJMP32} {
		for _, op := range []byte{jmpJEQ, jmpJGT, jmpJGE, jmpJSET, jmpJNE, jmpJSGT, jmpJSGE, jmpJLT, jmpJLE, jmpJSLT, jmpJSLE} {
			ops = append(ops, class|op|srcK, class|op|srcX)
		}
	}
	ops = append(ops, classJMP|jmpJA, classJMP|jmpCALL, classJMP|jmpEXIT, rawLDDW)
	for _, size := range []byte{sizeB, sizeH, sizeW, sizeDW} {
		ops = append(ops, classLDX|modeMEM|size, classST|modeMEM|size, classSTX|modeMEM|size)
		if size != sizeDW {
			ops = append(ops, classLDX|modeMEMSX|size)
		}
	}
	return append(ops, classSTX|modeATOMIC|sizeW, classSTX|modeATOMIC|sizeDW)
}()

// shape turns fuzz bytes into mostly valid code, so that the fuzzer
// spends its time in the interpreter rather than in the verifier: each 8
// bytes become an instruction of a real opcode with registers, jump
// targets, helper ids and special fields in range, and the program ends
// in exit. Memory offsets stay raw half of the time, to aim outside.
func shape(data []byte) []byte {
	n := len(data)/insnSize + 1
	code := append(make([]byte, 0, n*insnSize+len(edgePointers)), edgePointers...)
	atomics := []int32{atomicADD, atomicOR, atomicAND, atomicXOR, atomicADD | atomicFETCH, atomicOR | atomicFETCH,
		atomicAND | atomicFETCH, atomicXOR | atomicFETCH, atomicXCHG, atomicCMPXCHG}
	for i := 0; i+insnSize <= len(data); i += insnSize {
		d := data[i : i+insnSize]
		opc := shapedOpcodes[int(d[0])%len(shapedOpcodes)]
		dst, src := d[1]&0x0f%numRegs, d[1]>>4%numRegs
		off := int16(binary.LittleEndian.Uint16(d[2:]))
		imm := int32(binary.LittleEndian.Uint32(d[4:]))
		class, aluOp := opc&0x07, opc&0xf0
		switch {
		case class == classALU || class == classALU64:
			dst %= regFP
			off = 0
			if opc&srcX == 0 {
				src = 0
			} else if aluOp != aluEND {
				imm = 0
			}
			switch {
			case aluOp == aluEND:
				src, imm = 0, 16<<(uint32(imm)%3)
			case aluOp == aluNEG:
				src, imm = 0, 0
			case (aluOp == aluDIV || aluOp == aluMOD) && d[2]&1 == 1:
				off = 1
			case aluOp == aluMOV && opc&srcX != 0 && d[2]&1 == 1:
				off = 8 << (uint16(d[3]) % 2)
			}
		case opc == classJMP|jmpCALL:
			dst, src, off, imm = 0, 0, 0, int32(uint32(imm)%3+1)
		case opc == classJMP|jmpEXIT:
			dst, src, off, imm = 0, 0, 0, 0
		case class == classJMP || class == classJMP32:
			if opc&0xf0 == jmpJA {
				dst, src, imm = 0, 0, 0
			} else if opc&srcX == 0 {
				src = 0
			} else {
				imm = 0
			}
			off = int16(int(uint16(off))%n - i/insnSize - 1)
		case opc == rawLDDW:
			dst %= regFP
			v := uint64(uint32(imm)) | uint64(uint16(off))<<32
			switch d[3] % 4 { // aim at the regions' edges as often as not
			case 1:
				v = DataBase + uint64(uint32(imm)%80)
			case 2:
				v = StackTop - uint64(uint32(imm)%1100)
			}
			code = append(code, ri(opc, dst, 0, 0, int32(uint32(v)))...)
			code = append(code, ri(0, 0, 0, 0, int32(uint32(v>>32)))...)
			continue
		case class == classLDX:
			dst %= regFP
			imm = 0
		case class == classST:
			src = 0
		case opc&0xe0 == modeATOMIC:
			imm = atomics[uint32(imm)%uint32(len(atomics))]
		default: // classSTX
			imm = 0
		}
		if class == classLDX || class == classST || class == classSTX {
			switch d[2] & 0xc0 {
			case 0, 0x40:
				off = -int16(d[3]) // near the frame pointer
			case 0x80:
				off = int16(int8(d[3])) // near a pointer into data
			}
		}
		code = append(code, ri(opc, dst, src, off, imm)...)
	}
	return append(code, foldRegs...)
}

// edgePointers starts a shaped program: r1-r9 point at and around the
// edges of the regions wrapELF lays out (read-only data 0-16, writable
// data 16-64, the stack below StackTop) and at null, so that the
// program's loads and stores with small offsets hit the bounds checks.
var edgePointers = func() []byte {
	var code []byte
	for r, v := range []uint64{DataBase, DataBase + 14, DataBase + 61, StackTop - 3, StackTop - frameSize - 2,
		DataBase + 40, DataBase + 64, StackTop - 16, 0} {
		code = append(code, ri(rawLDDW, uint8(r+1), 0, 0, int32(uint32(v)))...)
		code = append(code, ri(0, 0, 0, 0, int32(uint32(v>>32)))...)
	}
	return code
}()

// foldRegs ends a shaped program: r0 ^= r1 ... r9, then its high half
// into its low half, so the exit code depends on every register.
var foldRegs = func() []byte {
	var code []byte
	for r := uint8(1); r < regFP; r++ {
		code = append(code, ri(classALU64|aluXOR|srcX, 0, r, 0, 0)...)
	}
	code = append(code, ri(classALU64|aluMOV|srcX, 1, 0, 0, 0)...)
	code = append(code, ri(classALU64|aluRSH|srcK, 1, 0, 0, 32)...)
	code = append(code, ri(classALU64|aluXOR|srcX, 0, 1, 0, 0)...)
	return append(code, exit...)
}()

// FuzzProgram takes bytes as raw instructions (raw) or shapes them into
// mostly valid code first, and wraps them in an ELF object: compiling
// refuses them with ErrInvalidCode or the program runs to an exit or a
// fault within its budget, and every engine agrees: the machine code,
// the interpreter with fused instructions and without.
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
		f.Add(true, assemble(f, s...))
	}
	f.Add(false, []byte("\x00\x21\x00\x00\x05\x00\x00\x00\x2e\x10\x00\x00\x00\x00\x00\x00"))
	for _, obj := range seedObjects(f) {
		if img, err := loadELF(obj, 1<<20); err == nil {
			f.Add(true, img.code)
		}
	}
	f.Fuzz(checkEngines)
}

// checkEngines is FuzzProgram's check of one input.
func checkEngines(t *testing.T, raw bool, code []byte) {
	if !raw {
		code = shape(code)
	}
	var outcomes, names []string
	var errs []error
	run := func(name string, m runtime.Module) bool {
		h := newFakeHost()
		in, err := m.Instantiate(context.Background(), h)
		if err != nil {
			t.Fatal(err)
		}
		code, err := checkRun(t, in)
		if faultKind(err) == runtime.FaultBudget {
			return false // where a time budget ran out depends on timing
		}
		names, errs = append(names, name), append(errs, err)
		outcomes = append(outcomes, outcome(code, err, h))
		return true
	}
	for _, rt := range []*Runtime{NewInterpreter(), New()} {
		m, err := rt.Compile(context.Background(), wrapELF(code), runtime.Config{MemoryLimit: 64 << 10})
		if err != nil {
			if !errors.Is(err, runtime.ErrInvalidCode) && !errors.Is(err, runtime.ErrLimit) {
				t.Fatalf("compile error %v wraps neither ErrInvalidCode nor ErrLimit", err)
			}
			return
		}
		if !run(fmt.Sprintf("compiled=%v", m.(*Module).Compiled()), m) {
			return
		}
	}
	img, err := loadELF(wrapELF(code), 64<<10-frameSize)
	if err != nil {
		t.Fatalf("compiled, but the loader refuses: %v", err)
	}
	plain, err := verify(img.code)
	if err != nil {
		t.Fatalf("compiled, but verify refuses: %v", err)
	}
	plain.insns = append(plain.insns, insn{op: opHalt})
	if !run("unfused", newModule(plain, img)) {
		return
	}
	for k := 1; k < len(outcomes); k++ {
		if outcomes[k] != outcomes[0] {
			t.Fatalf("%s and %s disagree:\n%s\n%s", names[0], names[k], outcomes[0], outcomes[k])
		}
	}
	// The compiled code names the same instruction and address in
	// its faults as the unfused interpreter.
	if a, b := fmt.Sprint(errs[1]), fmt.Sprint(errs[2]); a != b {
		t.Fatalf("compiled and unfused faults differ:\n%s\n%s", a, b)
	}
}

// randomPrograms is how many shaped random programs TestRandomPrograms
// runs; raise it where the fuzzing engine cannot run (under an emulator).
var randomPrograms = flag.Int("ebpf.random", 300, "random programs for TestRandomPrograms")

// TestRandomPrograms runs FuzzProgram's check on seeded random inputs,
// so that every platform's engines are compared without the fuzzing
// engine (which qemu-user cannot run).
func TestRandomPrograms(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for k := range *randomPrograms {
		data := make([]byte, insnSize*(1+rng.IntN(40)))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		t.Run(fmt.Sprint(k), func(t *testing.T) { checkEngines(t, false, data) })
		if t.Failed() {
			return
		}
	}
}

// FuzzELF mutates real objects: the loader refuses them with a wrapped
// error class or they run to an exit or a fault within their budget, the
// same in the machine code as in the interpreter (data sections
// included: the second run sees the first one's data).
func FuzzELF(f *testing.F) {
	for _, obj := range seedObjects(f) {
		f.Add(obj)
	}
	for _, obj := range hugeIndexObjects(f) {
		f.Add(obj)
	}
	f.Fuzz(func(t *testing.T, obj []byte) {
		var outcomes []string
		for _, rt := range []*Runtime{NewInterpreter(), New()} {
			m, err := rt.Compile(context.Background(), obj, runtime.Config{MemoryLimit: 64 << 10})
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
			var out string
			for range 2 {
				code, err := checkRun(t, in)
				if faultKind(err) == runtime.FaultBudget {
					return // where a time budget ran out depends on timing
				}
				out += fmt.Sprintf("%d %v; ", code, err)
				if err != nil {
					break
				}
			}
			outcomes = append(outcomes, out+outcome(0, nil, h))
		}
		if outcomes[0] != outcomes[1] {
			t.Fatalf("interpreter and machine code disagree:\n%s\n%s", outcomes[0], outcomes[1])
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
