package ebpf

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"github.com/cilium/ebpf/asm"

	"github.com/tinycontainer/tinycontainer/abi"
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

// rawModule verifies raw code into a module without data sections.
func rawModule(code []byte) (*Module, error) {
	p, err := compile(code)
	if err != nil {
		return nil, err
	}
	return newModule(p, &image{code: code}), nil
}

// runRaw runs raw code once against host.
func runRaw(t testing.TB, code []byte, host runtime.Host) (int32, error) {
	t.Helper()
	m, err := rawModule(code)
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
	if err != nil {
		t.Fatal(err)
	}
	m, err := New().Compile(context.Background(), obj, runtime.Config{MemoryLimit: limit})
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
