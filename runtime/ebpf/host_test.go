package ebpf

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/internal/guests"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// fakeHost serves a few endpoints the way the real host does (bounds
// checks through Memory, -errno results) and records what it saw.
type fakeHost struct {
	allowed map[string]bool // endpoints the metadata grants
	open    []string        // handle -> endpoint name
	logs    []string
	temp    int32
	args    [][]uint32 // arguments of each Call
}

var _ runtime.Host = (*fakeHost)(nil)

func newFakeHost() *fakeHost {
	return &fakeHost{allowed: map[string]bool{"log": true, "sensor/temperature": true, "echo": true}, temp: 21500}
}

func (h *fakeHost) Open(mem runtime.Memory, namePtr, nameLen uint32) int32 {
	b, ok := mem.Read(namePtr, nameLen)
	if !ok {
		return abi.EFAULT.Result()
	}
	name := string(b)
	if !h.allowed[name] {
		return abi.EPERM.Result()
	}
	h.open = append(h.open, name)
	return int32(len(h.open) - 1)
}

// maxRecorded bounds what fakeHost keeps, for guests that call in a loop.
const maxRecorded = 64

func (h *fakeHost) Call(mem runtime.Memory, handle, op, bufPtr, inLen, bufCap uint32) int32 {
	if len(h.args) < maxRecorded {
		h.args = append(h.args, []uint32{handle, op, bufPtr, inLen, bufCap})
	}
	if int(handle) >= len(h.open) || h.open[handle] == "" {
		return abi.EBADF.Result()
	}
	buf, ok := mem.Read(bufPtr, max(inLen, bufCap))
	if !ok {
		return abi.EFAULT.Result()
	}
	switch name := h.open[handle]; {
	case name == "log" && abi.Op(op) == abi.OpWrite:
		if len(h.logs) < maxRecorded {
			h.logs = append(h.logs, string(buf[:min(inLen, 256)]))
		}
		return 0
	case name == "sensor/temperature" && abi.Op(op) == abi.OpRead:
		if bufCap < 4 {
			return abi.EMSGSIZE.Result()
		}
		binary.LittleEndian.PutUint32(buf, uint32(h.temp))
		return 4
	case name == "echo": // reverses the request in place
		in := buf[:inLen]
		for i, j := 0, len(in)-1; i < j; i, j = i+1, j-1 {
			in[i], in[j] = in[j], in[i]
		}
		return int32(inLen)
	}
	return abi.ENOSYS.Result()
}

func (h *fakeHost) Close(handle uint32) int32 {
	if int(handle) >= len(h.open) || h.open[handle] == "" {
		return abi.EBADF.Result()
	}
	h.open[handle] = ""
	return 0
}

func (h *fakeHost) CallName(string, abi.Op, []byte, int) int32 { return abi.ENOSYS.Result() }

// assemble encodes insns (labels resolved) as raw eBPF code.
func assemble(t testing.TB, insns ...asm.Instruction) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := asm.Instructions(insns).Marshal(&buf, binary.LittleEndian); err != nil {
		t.Fatalf("assemble: %v", err)
	}
	return buf.Bytes()
}

// rawModule verifies raw code into a module without data sections, as
// New's runtime would run it (machine code where the platform has a
// compiler).
func rawModule(code []byte) (*Module, error) { return rawModuleOn(code, testRuntime().interpret) }

// rawModuleOn is rawModule in the interpreter (interpret) or compiled.
func rawModuleOn(code []byte, interpret bool) (*Module, error) {
	p, err := verify(code)
	if err != nil {
		return nil, err
	}
	m := newModule(p, &image{code: code})
	if !interpret {
		if m.jit, err = jitCompile(p.insns, m.stackLen, m.dataLen, m.roLen); err != nil {
			return nil, err
		}
		return m, nil
	}
	m.insns = prepare(p.insns)
	return m, nil
}

// runRaw runs raw code once against host. Where the platform compiles,
// it also runs the code in the interpreter against a copy of host and
// fails the test unless both give the same result, error and logs.
func runRaw(t testing.TB, code []byte, host *fakeHost) (int32, error) {
	t.Helper()
	twin := &fakeHost{allowed: host.allowed, temp: host.temp, open: slices.Clone(host.open), logs: slices.Clone(host.logs)}
	got, err := runOn(t, code, host, !jitSupported)
	if jitSupported {
		want, werr := runOn(t, code, twin, true)
		if got != want || fmt.Sprint(err) != fmt.Sprint(werr) || !slices.Equal(host.logs, twin.logs) {
			t.Errorf("compiled code gave %d, %v, logs %q; the interpreter %d, %v, logs %q",
				got, err, host.logs, want, werr, twin.logs)
		}
	}
	return got, err
}

// engines lists the ways this platform runs code: interpreted, and
// compiled where there is a compiler.
func engines() []bool {
	if jitSupported {
		return []bool{true, false}
	}
	return []bool{true}
}

func runOn(t testing.TB, code []byte, host runtime.Host, interpret bool) (int32, error) {
	t.Helper()
	m, err := rawModuleOn(code, interpret)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	in, err := m.Instantiate(context.Background(), host)
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	var b runtime.Budget
	b.Arm(10e9)
	return in.Run(context.Background(), &b)
}

// loadGuest compiles testdata/name.bpf.o.
func loadGuest(t testing.TB, name string, limit uint64) runtime.Module {
	t.Helper()
	obj, err := os.ReadFile("testdata/" + name + ".bpf.o")
	if errors.Is(err, fs.ErrNotExist) {
		obj, err = fs.ReadFile(guests.FS(), name+".bpf.o")
	}
	if err != nil {
		t.Fatal(err)
	}
	m, err := testRuntime().Compile(context.Background(), obj, runtime.Config{MemoryLimit: limit})
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	return m
}

// faultKind is the kind of a *runtime.Fault, or "" for other errors.
func faultKind(err error) runtime.FaultKind {
	var f *runtime.Fault
	if errors.As(err, &f) {
		return f.Kind
	}
	return ""
}

// bufHost has the runtime.BufHost fast path and records which path each
// helper 2 call took.
type bufHost struct {
	nopHost
	t     *testing.T
	paths []string
}

var _ runtime.BufHost = (*bufHost)(nil)

func (h *bufHost) Call(mem runtime.Memory, handle, op, bufPtr, inLen, bufCap uint32) int32 {
	h.paths = append(h.paths, "call")
	if _, ok := mem.Read(bufPtr, max(inLen, bufCap)); !ok {
		return abi.EFAULT.Result()
	}
	return 0
}

// CallBuf checks that buf is the guest's memory at bufPtr (the same
// bytes, not a copy) and overwrites its first word.
func (h *bufHost) CallBuf(mem runtime.Memory, handle, op, bufPtr uint32, buf []byte, inLen, bufCap uint32) int32 {
	h.paths = append(h.paths, "buf")
	want, ok := mem.Read(bufPtr, max(inLen, bufCap))
	if !ok || len(buf) != len(want) || &buf[0] != &want[0] {
		h.t.Errorf("CallBuf got %d bytes at %#x, not the guest's %d (ok %v)", len(buf), bufPtr, len(want), ok)
		return abi.EINVAL.Result()
	}
	binary.LittleEndian.PutUint32(buf, 0xdeadbeef)
	return 7
}

// TestBufHostFastPath: helper 2 with a buffer inside one region goes to
// CallBuf with that region's bytes; a buffer the runtime cannot vouch
// for goes to Call, which reports the ABI's error.
func TestBufHostFastPath(t *testing.T) {
	prog := func(ptr func() asm.Instruction, inLen, bufCap int32) []byte {
		return assemble(t,
			asm.StoreImm(asm.R10, -8, 0x11223344, asm.Word),
			asm.Mov.Imm(asm.R1, 0),
			asm.Mov.Imm(asm.R2, int32(abi.OpRead)),
			asm.Mov.Reg(asm.R3, asm.R10),
			ptr(),
			asm.Mov.Imm(asm.R4, inLen),
			asm.Mov.Imm(asm.R5, bufCap),
			asm.BuiltinFunc(helperCall).Call(),
			asm.Mov.Reg(asm.R6, asm.R0),
			asm.LoadMem(asm.R0, asm.R10, -8, asm.Word),
			asm.Add.Reg(asm.R0, asm.R6),
			asm.Return())
	}
	cases := []struct {
		name   string
		code   []byte
		path   string
		result int32
	}{
		{"stack buffer", prog(func() asm.Instruction { return asm.Add.Imm(asm.R3, -8) }, 4, 8), "buf", -0x21524111 + 7}, // int32(0xdeadbeef) + 7
		{"whole frame", prog(func() asm.Instruction { return asm.Add.Imm(asm.R3, -512) }, 4, 512), "buf", 0x11223344 + 7},
		{"past the stack top", prog(func() asm.Instruction { return asm.Add.Imm(asm.R3, -4) }, 4, 8), "call", 0x11223344 + abi.EFAULT.Result()},
		{"wild pointer", prog(func() asm.Instruction { return asm.Mov.Imm(asm.R3, 16) }, 4, 8), "call", 0x11223344 + abi.EFAULT.Result()},
		{"zero-length at the top", prog(func() asm.Instruction { return asm.Add.Imm(asm.R3, 0) }, 0, 0), "call", 0x11223344},
	}
	for _, c := range cases {
		for _, interpret := range engines() {
			t.Run(fmt.Sprintf("%s/interpreted=%v", c.name, interpret), func(t *testing.T) {
				h := &bufHost{t: t}
				got, err := runOn(t, c.code, h, interpret)
				if err != nil {
					t.Fatal(err)
				}
				if len(h.paths) != 1 || h.paths[0] != c.path {
					t.Errorf("paths %v, want [%s]", h.paths, c.path)
				}
				if got != c.result {
					t.Errorf("result %#x, want %#x", got, c.result)
				}
			})
		}
	}
}

// panicHost panics in every call, like a host function with a bug.
type panicHost struct{ nopHost }

func (panicHost) Call(runtime.Memory, uint32, uint32, uint32, uint32, uint32) int32 {
	panic("endpoint bug")
}

// TestHostPanicIsATrap: a panicking host function ends the run with a
// trap naming the panic; the instance is faulted and the process goes on.
func TestHostPanicIsATrap(t *testing.T) {
	m, err := rawModule(assemble(t, asm.Mov.Imm(asm.R1, 0), asm.BuiltinFunc(helperCall).Call(), asm.Return()))
	if err != nil {
		t.Fatal(err)
	}
	in, _ := m.Instantiate(t.Context(), panicHost{})
	_, err = in.Run(t.Context(), nil)
	if faultKind(err) != runtime.FaultTrap || !errors.Is(err, ErrHostPanic) || !strings.Contains(err.Error(), "endpoint bug") {
		t.Fatalf("got %v, want a trap for the host's panic", err)
	}
	if _, err := in.Run(t.Context(), nil); !errors.Is(err, runtime.ErrClosed) {
		t.Errorf("run after the trap: %v, want ErrClosed", err)
	}
}
