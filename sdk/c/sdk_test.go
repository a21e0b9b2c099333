// Package sdk_test runs guests built with sdk/c/tinycontainer.h, so the
// header's helpers are tested on both runtimes, through the real endpoints.
package sdk_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/internal/testwait"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
)

const probeManifest = `name: sdkprobe
tenant: acme
version: 1
runtime: %s
schedule:
  trigger: once
  budget: 2s
limits:
  memory: 64KiB
  storage: 4KiB
endpoints:
  - {name: log, ops: [write]}
  - {name: kv, ops: [get, put, delete]}
  - {name: msg/acme/#, ops: [publish]}
  - {name: event, ops: [read]}
  - {name: clock, ops: [read]}
  - {name: sensor/+, ops: [read]}
  - {name: actuator/led0, ops: [read, write]}
  - {name: ml, ops: [invoke]}
`

// The checks sdkprobe.c makes; ml_invoke only on WebAssembly (the model
// does not fit an eBPF guest's data comfortably).
var probeChecks = []string{"memset", "kv_put", "kv_get", "kv_delete", "kv_get_deleted", "kv_pack_empty_key",
	"publish", "event_read", "clock", "sensor_i32", "accel", "pcm", "actuator_write", "actuator_read", "log"}

// TestSDKHelpers runs testdata/sdkprobe (built by `make guests`) on both
// runtimes: every helper of the header against the real endpoints. Issue
// 13: `char buf[200] = {0}` did not link (no memset), there was no kv helper
// and a hand-packed key length had a sign bug.
func TestSDKHelpers(t *testing.T) {
	for _, c := range []struct{ runtime, file string }{
		{"wasm", "sdkprobe.wasm"},
		{"ebpf", "sdkprobe.bpf.o"},
	} {
		t.Run(c.runtime, func(t *testing.T) {
			code, err := os.ReadFile(filepath.Join("testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			m, err := meta.Parse([]byte(fmt.Sprintf(probeManifest, c.runtime)))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			d, err := device.New(ctx, device.Options{})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { d.Run(ctx); close(done) }()
			defer func() { cancel(); <-done; d.Close(context.Background()) }()
			if err := d.Install(ctx, m, code); err != nil {
				t.Fatal(err)
			}
			if err := d.Start(m.Name); err != nil {
				t.Fatal(err)
			}
			var st mgmt.ContainerStatus
			deadline := time.Now().Add(testwait.Guard()) // a hang guard, not a verdict
			for {
				if st, err = d.Status(m.Name); err != nil {
					t.Fatal(err)
				}
				if st.State != mgmt.StateRunning {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the probe did not finish: %+v", st)
				}
				time.Sleep(10 * time.Millisecond)
			}
			var log []string
			for _, l := range d.Logs(m.Name, 0, 0) {
				log = append(log, l.Text)
			}
			all := strings.Join(log, "\n")
			want := probeChecks
			if c.runtime == "wasm" {
				want = append([]string{"ml_invoke"}, want...)
			}
			for _, w := range want {
				if !strings.Contains(all+"\n", "ok "+w+"\n") {
					t.Errorf("no \"ok %s\" in the probe's log", w)
				}
			}
			if strings.Contains(all, "FAIL") || st.ExitCode != 0 || st.Faults != 0 {
				t.Errorf("probe: exit %d, faults %d (%s), log:\n%s", st.ExitCode, st.Faults, st.LastFault, all)
			}
		})
	}
}
