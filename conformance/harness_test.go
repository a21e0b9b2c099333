// Package conformance checks the rules of SPEC sections 2-5 against every
// runtime, from one table of cases. The guest is the same C program (the
// probe) built for WebAssembly and for eBPF; each case sends it a program
// of ABI steps as a message and compares the results it logs.
package conformance

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/container"
	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/internal/testwait"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// runtimes under test: the probe built for each (eBPF twice: for the v3
// ISA our Makefile uses, and for the base ISA plain clang emits).
// target is one way of running the probe: a runtime kind, the probe built
// for it, and whether guests are interpreted (device.Options.Interpreter).
type target struct {
	name, kind, file string
	interpret        bool
}

var runtimes = []target{
	{"wasm", "wasm", "testdata/probe.wasm", false},
	{"ebpf", "ebpf", "testdata/probe.bpf.o", false},
	{"ebpf-v1", "ebpf", "testdata/probe.v1.bpf.o", false},
	{"ebpf-interpreted", "ebpf", "testdata/probe.bpf.o", true},
	{"ebpf-v1-interpreted", "ebpf", "testdata/probe.v1.bpf.o", true},
}

// prog builds a probe program.
type prog []byte

func (p prog) open(name string) prog { return append(append(p, 1, byte(len(name))), name...) }

func (p prog) call(h byte, op byte, in []byte, bufCap uint16) prog {
	p = append(p, 2, h, op)
	p = binary.LittleEndian.AppendUint16(p, uint16(len(in)))
	p = binary.LittleEndian.AppendUint16(p, bufCap)
	return append(p, in...)
}

func (p prog) close(h byte) prog { return append(p, 3, h) }

func (p prog) raw(h, op byte, ptr, inLen, bufCap uint32) prog {
	p = append(p, 4, h, op)
	p = binary.LittleEndian.AppendUint32(p, ptr)
	p = binary.LittleEndian.AppendUint32(p, inLen)
	return binary.LittleEndian.AppendUint32(p, bufCap)
}

func (p prog) spin() prog { return append(p, 5) }
func (p prog) trap() prog { return append(p, 6) }

// res names the result of step k as a handle argument.
func res(k int) byte { return byte(0x80 + k) }

// result is one logged step.
type result struct {
	step int
	r    int32
	data string // hex
}

// rig is one device with the probe installed.
type rig struct {
	t      *testing.T
	dev    *device.Device
	kind   string
	lines  chan mgmt.LogLine
	audit  chan mgmt.AuditEntry
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	halted []container.State
}

const probeManifest = `name: probe
tenant: t1
version: 1
runtime: %s
schedule:
  trigger: event
  topics: ["probe/run"]
  budget: 20ms
  on_fault: restart
  max_faults: 3
limits:
  memory: 64KiB
  storage: 64B
endpoints:
  - {name: event, ops: [read]}
  - {name: log, ops: [write]}
%s`

func manifestFor(t *testing.T, kind, rules string, version uint64) *meta.Manifest {
	t.Helper()
	m, err := meta.Parse([]byte(fmt.Sprintf(probeManifest, kind, rules)))
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	m.Version = version
	return m
}

func newRig(t *testing.T, tg target, rules string) *rig {
	t.Helper()
	kind := tg.kind
	code, err := os.ReadFile(tg.file)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, kind: kind, lines: make(chan mgmt.LogLine, 1024), audit: make(chan mgmt.AuditEntry, 1024), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	d, err := device.New(ctx, device.Options{
		Seed:        1,
		Interpreter: tg.interpret,
		OnLog:       func(l mgmt.LogLine) { r.lines <- l },
		OnAudit:     func(e mgmt.AuditEntry) { r.audit <- e },
		OnHalt: func(_ string, s container.State, _ *runtime.Fault) {
			r.mu.Lock()
			r.halted = append(r.halted, s)
			r.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.dev = d
	if err := d.Install(ctx, manifestFor(t, kind, rules, 1), code); err != nil {
		t.Fatal(err)
	}
	if err := d.Start("probe"); err != nil {
		t.Fatal(err)
	}
	go func() { d.Run(ctx); close(r.done) }()
	t.Cleanup(func() {
		cancel()
		<-r.done
		d.Close(context.Background())
	})
	return r
}

// run sends p and returns the n results the probe logs.
func (r *rig) run(p prog, n int) []result {
	r.t.Helper()
	if err := r.dev.Bus().Publish("tester", "probe/run", p); err != nil {
		r.t.Fatal(err)
	}
	var out []result
	timeout := time.After(testwait.Guard())
	for len(out) < n {
		select {
		case l := <-r.lines:
			if strings.HasPrefix(l.Text, "[") {
				continue // the device's own notes in the log ("[device] kv put failed", "[fault] ..."), not the probe's
			}
			f := strings.Fields(l.Text)
			if len(f) < 2 {
				r.t.Fatalf("odd probe line %q", l.Text)
			}
			step, _ := strconv.Atoi(f[0])
			v, _ := strconv.Atoi(f[1])
			res := result{step: step, r: int32(v)}
			if len(f) > 2 {
				res.data = f[2]
			}
			out = append(out, res)
		case <-timeout:
			r.t.Fatalf("%s: got %d of %d results: %+v", r.kind, len(out), n, out)
		}
	}
	return out
}

func (r *rig) status() mgmt.ContainerStatus {
	st, err := r.dev.Status("probe")
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

// waitStatus polls until cond holds for the probe's status.
func (r *rig) waitStatus(what string, cond func(mgmt.ContainerStatus) bool) mgmt.ContainerStatus {
	r.t.Helper()
	deadline := time.Now().Add(testwait.Guard())
	for {
		st := r.status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: timed out waiting for %s; status %+v", r.kind, what, st)
		}
		time.Sleep(time.Millisecond)
	}
}

// forEachRuntime runs f as a subtest for every runtime.
func forEachRuntime(t *testing.T, f func(t *testing.T, tg target)) {
	for _, rt := range runtimes {
		t.Run(rt.name, func(t *testing.T) { f(t, rt) })
	}
}

// runOnce runs one container from a manifest and code on a fresh device
// and returns the device (stopped at the end of the test) and its log lines.
func runOnce(t *testing.T, manifest string, code []byte) (*device.Device, <-chan mgmt.LogLine) {
	t.Helper()
	lines := make(chan mgmt.LogLine, 16)
	ctx, cancel := context.WithCancel(context.Background())
	d, err := device.New(ctx, device.Options{OnLog: func(l mgmt.LogLine) { lines <- l }})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; d.Close(context.Background()) })
	m, err := meta.Parse([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Install(ctx, m, code); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(m.Name); err != nil {
		t.Fatal(err)
	}
	return d, lines
}
