//go:build linux && (amd64 || arm64)

package ebpf

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"os"
	goruntime "runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf/asm"

	"github.com/tinycontainer/tinycontainer/internal/testwait"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// TestJITUnderGCAndProfiling: machine code runs while the collector
// stops the world, goroutines are preempted and the CPU profiler samples
// it; the runs end by their budgets and results stay right.
func TestJITUnderGCAndProfiling(t *testing.T) {
	var prof bytes.Buffer
	if err := pprof.StartCPUProfile(&prof); err == nil {
		defer pprof.StopCPUProfile()
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
				goruntime.GC()
				_ = make([]byte, 1<<20)
			}
		}
	})
	runaway := New()
	obj, err := os.ReadFile("testdata/runaway.bpf.o")
	if err != nil {
		t.Fatal(err)
	}
	m, err := runaway.Compile(t.Context(), obj, runtime.Config{})
	if err != nil || !m.(*Module).Compiled() {
		t.Fatalf("compile: %v (compiled %v)", err, err == nil && m.(*Module).Compiled())
	}
	data := make([]byte, 4096)
	for i := range data {
		data[i] = byte(i*7 + 3)
	}
	want := int32(crc32.ChecksumIEEE(data))
	crc := loadKernel(t, "crc32", 16*1024)
	for range 3 {
		var b runtime.Budget
		b.Arm(20 * time.Millisecond)
		in, _ := m.Instantiate(t.Context(), newFakeHost())
		if _, err := in.Run(t.Context(), &b); faultKind(err) != runtime.FaultBudget {
			t.Fatalf("runaway: %v, want a budget fault", err)
		}
		if got := activate(t, crc, newFakeHost(), 1); got[0] != want {
			t.Fatalf("crc %#x, want %#x", got[0], want)
		}
	}
	close(done)
	wg.Wait()
}

// TestJITCodeUnmapped: machine code is unmapped once its module is
// garbage.
func TestJITCodeUnmapped(t *testing.T) {
	// Bytes of anonymous executable mappings: our code (adjacent ones
	// merge, so their number says nothing).
	mappings := func() int {
		b, err := os.ReadFile("/proc/self/maps")
		if err != nil {
			t.Skip(err)
		}
		n := 0
		for line := range strings.Lines(string(b)) {
			f := strings.Fields(line)
			if len(f) == 5 && f[1] == "r-xp" {
				var lo, hi uint64
				fmt.Sscanf(f[0], "%x-%x", &lo, &hi)
				n += int(hi - lo)
			}
		}
		return n
	}
	code := assemble(t, asm.Mov.Imm(asm.R0, 1), asm.Return())
	compile := func() {
		for range 200 {
			m, err := New().Compile(context.Background(), wrapELF(code), runtime.Config{})
			if err != nil || !m.(*Module).Compiled() {
				t.Fatal(err)
			}
		}
	}
	compile() // the heap and the maps settle
	goruntime.GC()
	before := mappings()
	compile()
	deadline := time.Now().Add(testwait.Guard())
	for {
		goruntime.GC()
		if n := mappings(); n <= before+16<<10 {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("%d bytes of code mapped after compiling 200 modules and collecting them, %d before", n, before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
