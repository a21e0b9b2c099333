package web

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// fakeDevice is a mgmt.Reader whose contents the test sets.
type fakeDevice struct {
	mu    sync.Mutex
	cs    []mgmt.ContainerStatus
	logs  []mgmt.LogLine
	seq   uint64
	audit []mgmt.AuditEntry
	info  mgmt.DeviceInfo
	err   error // returned by every call when set
	reads int   // calls made
}

var _ mgmt.Reader = (*fakeDevice)(nil)

func newFake(n int) *fakeDevice {
	f := &fakeDevice{info: mgmt.DeviceInfo{UptimeS: 12.5, Containers: map[string]int{},
		Runtimes: []mgmt.RuntimeInfo{{Kind: "wasm", Engine: "compiler"}, {Kind: "ebpf", Engine: "machine code"}},
		Bus:      mgmt.BusStats{Published: 7, Delivered: 6, Dropped: 1, Subscriptions: 2},
		Watchdog: mgmt.WatchdogStats{Stopped: 3, OvershootP50US: 70, OvershootP99US: 200, OvershootMaxUS: 900}}}
	for i := range n {
		rt := "wasm"
		if i%2 == 1 {
			rt = "ebpf"
		}
		f.cs = append(f.cs, mgmt.ContainerStatus{Name: fmt.Sprintf("c%04d", i), Tenant: fmt.Sprintf("t%d", i%3),
			Runtime: rt, State: mgmt.StateRunning, Version: 1, Activations: uint64(10 * i), CPUTimeUS: uint64(1500 * i),
			MemoryBytes: 65536, ThrottledUS: uint64(i), Preemptions: uint64(i % 5), RateLimitedCalls: 2})
	}
	f.info.Containers[mgmt.StateRunning] = n
	return f
}

func (f *fakeDevice) setState(name, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.cs {
		if f.cs[i].Name == name {
			f.cs[i].State = state
		}
	}
}

func (f *fakeDevice) log(container, text string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	f.logs = append(f.logs, mgmt.LogLine{Seq: f.seq, Time: time.Now(), Container: container, Text: text})
	if len(f.logs) > 20000 {
		f.logs = f.logs[1:]
	}
}

func (f *fakeDevice) List(context.Context) ([]mgmt.ContainerStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return append([]mgmt.ContainerStatus(nil), f.cs...), f.err
}

func (f *fakeDevice) Logs(_ context.Context, name string, after uint64, max int) ([]mgmt.LogLine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.err != nil {
		return nil, f.err
	}
	if max < 1 || max > 1000 {
		return nil, fmt.Errorf("%w: max %d", mgmt.ErrInvalid, max)
	}
	if name != "" {
		found := false
		for _, c := range f.cs {
			found = found || c.Name == name
		}
		if !found {
			return nil, fmt.Errorf("%w: container %s", mgmt.ErrNotFound, name)
		}
	}
	var out []mgmt.LogLine
	for _, l := range f.logs {
		if l.Seq > after && (name == "" || l.Container == name) && len(out) < max {
			out = append(out, l)
		}
	}
	return out, nil
}

func (f *fakeDevice) WatchLogs(context.Context, string, uint64) (<-chan mgmt.LogLine, error) {
	return nil, fmt.Errorf("%w: not in the fake", mgmt.ErrUnavailable)
}

func (f *fakeDevice) Audit(_ context.Context, limit int) ([]mgmt.AuditEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	out := f.audit
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return append([]mgmt.AuditEntry(nil), out...), f.err
}

func (f *fakeDevice) Info(context.Context) (mgmt.DeviceInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	info := f.info
	info.LogSeq = f.seq
	return info, f.err
}
