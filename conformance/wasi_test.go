package conformance

import (
	"os"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/internal/testwait"
	"github.com/tinycontainer/tinycontainer/mgmt"
)

// The WASI subset (SPEC section 2, WebAssembly only): fd_write to fd 1 and 2
// is the container's log and needs `log`; clock_time_get needs `clock`.
func TestWASISubset(t *testing.T) {
	code, err := os.ReadFile("testdata/wasi.wasm")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		rules    string
		wantExit int32
		lines    []string
		denied   uint64
	}{
		{"granted", "\n  - {name: log, ops: [write]}\n  - {name: clock, ops: [read]}\n", 0,
			[]string{"hello from stdout", "partial line from stderr"}, 0},
		{"no log, no clock", " []\n", 3, nil, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, lines := runOnce(t, "name: wasi\ntenant: t1\nversion: 1\nruntime: wasm\nschedule: {trigger: once}\nendpoints:"+c.rules, code)
			for _, want := range c.lines {
				select {
				case l := <-lines:
					if l.Text != want || l.Container != "wasi" {
						t.Fatalf("log line %+v, want %q", l, want)
					}
				case <-time.After(testwait.Guard()):
					t.Fatalf("no log line %q (a hang guard)", want)
				}
			}
			deadline := time.Now().Add(testwait.Guard())
			for {
				st, _ := d.Status("wasi")
				if st.State == mgmt.StateStopped && st.Activations == 1 {
					if st.ExitCode != c.wantExit || st.DeniedCalls != c.denied || st.Faults != 0 {
						t.Fatalf("status %+v: want exit %d and %d denied calls", st, c.wantExit, c.denied)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("once container did not finish: %+v", st)
				}
				time.Sleep(time.Millisecond)
			}
			select {
			case l := <-lines:
				t.Fatalf("unexpected log line %+v", l)
			default:
			}
		})
	}
}
