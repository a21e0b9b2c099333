package coap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// fakeDevice is an in-memory mgmt.Device. Images are "name\n" followed by
// any bytes; an image starting "deny" is refused as badly signed and one
// whose version is not newer (a "v1" prefix on an existing container) as a
// conflict. Commands are JSON {"op":"stop","name":"x"}.
type fakeDevice struct {
	mu         sync.Mutex
	containers map[string]mgmt.ContainerStatus
	meta       map[string][]byte
	logs       []mgmt.LogLine
	watchers   map[string][]*fakeWatch
	audit      []mgmt.AuditEntry
	images     [][32]byte // sha256 of each deployed image
	failStatus map[string]error
	deploys    int
}

type fakeWatch struct {
	ch     chan mgmt.LogLine
	after  uint64
	closed bool
}

var _ mgmt.Device = (*fakeDevice)(nil)

func newFakeDevice() *fakeDevice {
	d := &fakeDevice{
		containers: map[string]mgmt.ContainerStatus{},
		meta:       map[string][]byte{},
		watchers:   map[string][]*fakeWatch{},
		failStatus: map[string]error{},
	}
	for i, n := range []string{"thermo", "blinky"} {
		d.containers[n] = mgmt.ContainerStatus{
			Name: n, Tenant: "acme", Runtime: "wasm", State: mgmt.StateRunning, Version: uint64(i + 1),
			Activations: 42, Faults: 1, LastFault: mgmt.FaultBudget, CPUTimeUS: 1234, Priority: 5,
			Trigger: "periodic", PeriodUS: 100000, BudgetUS: 5000,
		}
		d.meta[n] = []byte(fmt.Sprintf(`{"name":%q,"tenant":"acme","version":%d}`, n, i+1))
	}
	d.audit = []mgmt.AuditEntry{{Time: time.Unix(1700000000, 0).UTC(), Container: "thermo", Tenant: "acme", Endpoint: "actuator/led0", Op: "write", Reason: "not granted"}}
	return d
}

func (d *fakeDevice) List(context.Context) ([]mgmt.ContainerStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]mgmt.ContainerStatus, 0, len(d.containers))
	for _, c := range d.containers {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Info reports the containers by state and a fixed rest.
func (d *fakeDevice) Tenants(context.Context) ([]mgmt.TenantInfo, error) {
	return []mgmt.TenantInfo{{Name: "acme", Key: "k1", Containers: 1, Ceiling: json.RawMessage(`{"tenant":"acme"}`)}}, nil
}

func (d *fakeDevice) Info(context.Context) (mgmt.DeviceInfo, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	info := mgmt.DeviceInfo{UptimeS: 12.5, Containers: map[string]int{},
		Runtimes: []mgmt.RuntimeInfo{{Kind: "wasm", Engine: "compiler"}, {Kind: "ebpf", Engine: "machine code"}},
		Bus:      mgmt.BusStats{Published: 3, Delivered: 2, Subscriptions: 1},
		MQTT:     &mgmt.BridgeStats{Connected: true, Connects: 1, Sent: 3, Filters: []string{"a/#"}}}
	for _, c := range d.containers {
		info.Containers[c.State]++
	}
	return info, nil
}

func (d *fakeDevice) Status(_ context.Context, name string) (mgmt.ContainerStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.failStatus[name]; err != nil {
		return mgmt.ContainerStatus{}, err
	}
	c, ok := d.containers[name]
	if !ok {
		return c, fmt.Errorf("container %q: %w", name, mgmt.ErrNotFound)
	}
	return c, nil
}

func (d *fakeDevice) Meta(_ context.Context, name string) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m, ok := d.meta[name]
	if !ok {
		return nil, fmt.Errorf("container %q: %w", name, mgmt.ErrNotFound)
	}
	return m, nil
}

func (d *fakeDevice) Logs(_ context.Context, name string, after uint64, max int) ([]mgmt.LogLine, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.containers[name]; !ok {
		return nil, fmt.Errorf("container %q: %w", name, mgmt.ErrNotFound)
	}
	var out []mgmt.LogLine
	for _, l := range d.logs {
		if l.Container == name && l.Seq > after && len(out) < max {
			out = append(out, l)
		}
	}
	return out, nil
}

func (d *fakeDevice) WatchLogs(ctx context.Context, name string, after uint64) (<-chan mgmt.LogLine, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.containers[name]; !ok {
		return nil, fmt.Errorf("container %q: %w", name, mgmt.ErrNotFound)
	}
	w := &fakeWatch{ch: make(chan mgmt.LogLine, 16), after: after}
	d.watchers[name] = append(d.watchers[name], w)
	context.AfterFunc(ctx, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.closeWatch(name, w)
	})
	return w.ch, nil
}

// closeWatch closes and forgets one watch; d.mu is held.
func (d *fakeDevice) closeWatch(name string, w *fakeWatch) {
	if w.closed {
		return
	}
	w.closed = true
	close(w.ch)
	ws := d.watchers[name]
	for i := range ws {
		if ws[i] == w {
			d.watchers[name] = append(ws[:i:i], ws[i+1:]...)
			break
		}
	}
}

func (d *fakeDevice) watching(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.watchers[name])
}

// addLog appends a line and offers it to every watcher without blocking.
func (d *fakeDevice) addLog(name, text string) mgmt.LogLine {
	d.mu.Lock()
	defer d.mu.Unlock()
	l := mgmt.LogLine{Seq: uint64(len(d.logs) + 1), Time: time.Unix(1700000000, int64(len(d.logs))).UTC(), Container: name, Text: text}
	d.logs = append(d.logs, l)
	for _, w := range d.watchers[name] {
		if l.Seq > w.after {
			select {
			case w.ch <- l:
			default:
			}
		}
	}
	return l
}

// remove deletes a container, ending its log streams.
func (d *fakeDevice) remove(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.containers, name)
	for _, w := range append([]*fakeWatch(nil), d.watchers[name]...) {
		d.closeWatch(name, w)
	}
}

func (d *fakeDevice) Audit(_ context.Context, limit int) ([]mgmt.AuditEntry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.audit[:min(limit, len(d.audit))], nil
}

func (d *fakeDevice) Deploy(_ context.Context, image []byte) (mgmt.ContainerStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.deploys++
	name, rest, ok := bytes.Cut(image, []byte("\n"))
	switch {
	case bytes.HasPrefix(image, []byte("deny")):
		return mgmt.ContainerStatus{}, fmt.Errorf("image signature: %w", mgmt.ErrDenied)
	case !ok || !validName(string(name)):
		return mgmt.ContainerStatus{}, fmt.Errorf("image header: %w", mgmt.ErrInvalid)
	}
	c, exists := d.containers[string(name)]
	if exists && bytes.HasPrefix(rest, []byte("v1")) {
		return mgmt.ContainerStatus{}, fmt.Errorf("version 1 is not newer than %d: %w", c.Version, mgmt.ErrConflict)
	}
	c = mgmt.ContainerStatus{Name: string(name), Tenant: "acme", Runtime: "ebpf", State: mgmt.StateRunning, Version: c.Version + 1}
	d.containers[c.Name] = c
	d.images = append(d.images, sha256.Sum256(image))
	return c, nil
}

func (d *fakeDevice) Exec(_ context.Context, cmd []byte) ([]byte, error) {
	var c struct{ Op, Name string }
	if err := json.Unmarshal(cmd, &c); err != nil {
		return nil, fmt.Errorf("command: %w: %w", mgmt.ErrInvalid, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	st, ok := d.containers[c.Name]
	switch {
	case c.Op == "boom":
		return nil, errors.New("disk on fire")
	case c.Op == "busy":
		return nil, fmt.Errorf("scheduler: %w", mgmt.ErrUnavailable)
	case c.Op != "stop":
		return nil, fmt.Errorf("op %q: %w", c.Op, mgmt.ErrInvalid)
	case !ok:
		return nil, fmt.Errorf("container %q: %w", c.Name, mgmt.ErrNotFound)
	}
	st.State = mgmt.StateStopped
	d.containers[c.Name] = st
	return json.Marshal(map[string]any{"ok": true, "name": c.Name, "state": st.State})
}

// locked runs f with the device's lock held, for tests that poke at it.
func (d *fakeDevice) locked(f func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f()
}

// len is the number of live observations, for tests.
func (t *observations) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}
