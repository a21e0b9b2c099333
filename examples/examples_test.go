package examples_test

import (
	"context"
	"encoding/binary"
	"io/fs"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/examples"
	"github.com/tinycontainer/tinycontainer/internal/testwait"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
)

func load(t testing.TB, name string) (*meta.Manifest, []byte) {
	t.Helper()
	mb, err := fs.ReadFile(examples.FS, path.Join(name, name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := meta.Parse(mb)
	if err != nil {
		t.Fatal(err)
	}
	code, err := fs.ReadFile(examples.FS, path.Join(name, m.Code))
	if err != nil {
		t.Fatal(err)
	}
	return m, code
}

// start runs a device with the given manifests and returns it with a
// channel of its log lines.
func start(t testing.TB, ms ...*meta.Manifest) (*device.Device, <-chan mgmt.LogLine, func(m *meta.Manifest, code []byte)) {
	t.Helper()
	lines := make(chan mgmt.LogLine, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	d, err := device.New(ctx, device.Options{Seed: 3, OnLog: func(l mgmt.LogLine) {
		select {
		case lines <- l:
		default:
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; d.Close(context.Background()) })
	install := func(m *meta.Manifest, code []byte) {
		if err := d.Install(ctx, m, code); err != nil {
			t.Fatal(err)
		}
		if err := d.Start(m.Name); err != nil {
			t.Fatal(err)
		}
	}
	return d, lines, install
}

func waitLine(t testing.TB, lines <-chan mgmt.LogLine, container string) string {
	t.Helper()
	timeout := time.After(testwait.Guard())
	for {
		select {
		case l := <-lines:
			if l.Container == container {
				return l.Text
			}
		case <-timeout:
			t.Fatalf("no log line from %s", container)
		}
	}
}

// Every example runs on the device and says something.
func TestExamplesRun(t *testing.T) {
	for _, name := range []string{"thermo", "listener", "vibration", "blinker", "snoop", "runaway", "mlcompare", "metronome", "cruncher"} {
		t.Run(name, func(t *testing.T) {
			_, lines, install := start(t)
			m, code := load(t, name)
			install(m, code)
			if name == "listener" { // activated by thermo's telemetry
				tm, tc := load(t, "thermo")
				install(tm, tc)
			}
			if txt := waitLine(t, lines, name); txt == "" {
				t.Fatal("empty line")
			}
		})
	}
}

// The same model computed inside WebAssembly and through the ml endpoint
// gives the same bytes.
func TestMLCompareMatches(t *testing.T) {
	_, lines, install := start(t)
	m, code := load(t, "mlcompare")
	install(m, code)
	for range 3 {
		txt := waitLine(t, lines, "mlcompare")
		if !strings.HasSuffix(txt, " match") {
			t.Fatalf("in-wasm and host inference differ: %s", txt)
		}
	}
}

// BenchmarkMLCompare runs the demo model inside WebAssembly and through the
// ml endpoint (host inference), in one container on one device.
func BenchmarkMLCompare(b *testing.B) {
	m, code := load(b, "mlcompare")
	m.Schedule.Trigger = meta.Event
	m.Schedule.Period = 0
	m.Schedule.Topics = []string{"bench/ml"}
	m.Schedule.Budget = 10 * time.Second
	d, _, install := start(b)
	install(m, code)
	for _, mode := range []struct {
		name string
		tag  byte
	}{{"wasm", 'w'}, {"host", 'h'}} {
		b.Run(mode.name, func(b *testing.B) {
			msg := binary.LittleEndian.AppendUint32([]byte{mode.tag}, uint32(b.N))
			before, _ := d.Status("mlcompare")
			b.ResetTimer()
			d.Bus().Publish("bench", "bench/ml", msg)
			for {
				st, _ := d.Status("mlcompare")
				if st.Activations > before.Activations {
					if st.ExitCode != 0 || st.Faults != 0 {
						b.Fatalf("activation failed: %+v", st)
					}
					b.ReportMetric(float64(st.CPUTimeUS-before.CPUTimeUS)*1000/float64(b.N), "ns/inference")
					break
				}
				time.Sleep(50 * time.Microsecond)
			}
		})
	}
}
