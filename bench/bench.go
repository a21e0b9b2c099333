// Package bench measures this build's performance figures, end to end
// through the same layers a container uses: `tinycontainer bench` prints
// them and BENCHMARKS.md records them. It imports no third-party module;
// bare-wazero baselines come from runtime/wasm.
package bench

import (
	"context"
	"embed"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/meta"
)

//go:embed testdata/*.wasm testdata/*.bpf.o
var benchGuests embed.FS

// Result is one measured figure.
type Result struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Target string  `json:"target,omitempty"` // what the figure should meet, in words
	Pass   *bool   `json:"pass,omitempty"`   // nil when there is no target
	Note   string  `json:"note,omitempty"`
}

func judged(r Result, ok bool) Result {
	r.Pass = &ok
	return r
}

// Options scale the measurements.
type Options struct {
	// Quick runs every measurement with few iterations (for tests and a
	// first look); figures are then rough.
	Quick bool
	// Only, when set, limits the run to the figures whose names start
	// with it ("sched/", "wasm/compute", ...).
	Only string
}

func (o Options) n(full, quick int) int {
	if o.Quick {
		return quick
	}
	return full
}

func guest(name string) []byte {
	b, err := fs.ReadFile(benchGuests, "testdata/"+name)
	if err != nil {
		panic(fmt.Sprintf("bench guest %s missing: %v", name, err))
	}
	return b
}

func manifest(name, kind, extra string) *meta.Manifest {
	y := fmt.Sprintf(`name: %s
tenant: bench
version: 1
runtime: %s
schedule: {trigger: event, topics: ["bench/%s"], budget: 10s}
limits: {memory: 64KiB}
endpoints:
  - {name: event, ops: [read]}
  - {name: actuator/led0, ops: [read]}
  - {name: sensor/temperature, ops: [read]}
%s`, name, kind, name, extra)
	m, err := meta.Parse([]byte(y))
	if err != nil {
		panic(err)
	}
	return m
}

// rig is a running device for measurements.
type rig struct {
	d      *device.Device
	cancel context.CancelFunc
	done   chan struct{}
}

func newRig(opts device.Options) (*rig, error) {
	ctx, cancel := context.WithCancel(context.Background())
	d, err := device.New(ctx, opts)
	if err != nil {
		cancel()
		return nil, err
	}
	r := &rig{d: d, cancel: cancel, done: make(chan struct{})}
	go func() { d.Run(ctx); close(r.done) }()
	return r, nil
}

func (r *rig) close() {
	r.cancel()
	<-r.done
	r.d.Close(context.Background())
}

func (r *rig) install(m *meta.Manifest, code []byte) error {
	if err := r.d.Install(context.Background(), m, code); err != nil {
		return err
	}
	return r.d.Start(m.Name)
}

func loopMsg(op abi.Op, n uint32) []byte {
	return binary.LittleEndian.AppendUint32([]byte{byte(op)}, n)
}

// rssKiB is the process's resident set size in KiB.
func rssKiB() (int64, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("odd /proc/self/statm")
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, err
	}
	return pages * int64(os.Getpagesize()) / 1024, nil
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p))]
}
