// Package devicetest runs a plain device (no management, no store) for
// the tests of several packages: containers installed straight from a
// manifest and code, activated by messages on the bus, with every log
// line they write kept in order.
package devicetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/internal/testwait"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
)

// Rig is a running device. Its methods fail the test on error.
type Rig struct {
	T testing.TB
	D *device.Device

	mu   sync.Mutex
	log  []mgmt.LogLine
	read int // lines handed out by NextLine
	more chan struct{}
}

// Start runs a device with opts until the test ends. opts.OnLog, if set,
// is called for every line too.
func Start(t testing.TB, opts device.Options) *Rig {
	t.Helper()
	r := &Rig{T: t, more: make(chan struct{}, 1)}
	onLog := opts.OnLog
	opts.OnLog = func(l mgmt.LogLine) {
		r.mu.Lock()
		r.log = append(r.log, l)
		r.mu.Unlock()
		select {
		case r.more <- struct{}{}:
		default:
		}
		if onLog != nil {
			onLog(l)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := device.New(ctx, opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	r.D = d
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = d.Close(context.Background())
	})
	return r
}

// Add installs and starts the container of the manifest (YAML) with code.
func (r *Rig) Add(manifest string, code []byte) {
	r.T.Helper()
	m, err := meta.Parse([]byte(manifest))
	if err != nil {
		r.T.Fatal(err)
	}
	if err := r.D.Install(context.Background(), m, code); err != nil {
		r.T.Fatal(err)
	}
	if err := r.D.Start(m.Name); err != nil {
		r.T.Fatal(err)
	}
}

// Publish sends payload on topic from a test publisher.
func (r *Rig) Publish(topic string, payload []byte) {
	r.T.Helper()
	if err := r.D.Bus().Publish("test", topic, payload); err != nil {
		r.T.Fatal(err)
	}
}

// Status is the container's status.
func (r *Rig) Status(name string) mgmt.ContainerStatus {
	r.T.Helper()
	st, err := r.D.Status(name)
	if err != nil {
		r.T.Fatal(err)
	}
	return st
}

// Started waits until name has taken its message (its activation began).
func (r *Rig) Started(name string) {
	r.T.Helper()
	c, err := r.D.Container(name)
	if err != nil {
		r.T.Fatal(err)
	}
	WaitFor(r.T, name+" to start", func() bool { return !c.Ready() })
}

// Logged returns every line so far, as "name: text".
func (r *Rig) Logged() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.log))
	for i, l := range r.log {
		out[i] = l.Container + ": " + l.Text
	}
	return out
}

// NextLine waits for the next line of name, passing over (for good) the
// lines of other containers before it.
func (r *Rig) NextLine(name string) string {
	r.T.Helper()
	timeout := time.NewTimer(testwait.Guard())
	defer timeout.Stop()
	for {
		r.mu.Lock()
		i := slices.IndexFunc(r.log[r.read:], func(l mgmt.LogLine) bool { return l.Container == name })
		if i >= 0 {
			l := r.log[r.read+i]
			r.read += i + 1
			r.mu.Unlock()
			return l.Text
		}
		r.read = len(r.log)
		r.mu.Unlock()
		select {
		case <-r.more:
		case <-timeout.C:
			r.T.Fatalf("no line from %s in %v (a hang guard)", name, testwait.Guard())
		}
	}
}

// WaitFor polls cond until it holds (testwait.For).
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, what, cond)
}

// EventManifest is the manifest of an event container of tenant, activated
// by messages on topic, that may read its event and write its log, with
// the schedule's other fields in extra (", budget: 10s, priority: 5", ...)
// and more endpoints in endpoints (YAML list items).
func EventManifest(name, tenant, kind, topic, extra, endpoints string) string {
	return fmt.Sprintf(`name: %s
tenant: %s
version: 1
runtime: %s
schedule: {trigger: event, topics: [%q]%s}
limits: {memory: 64KiB}
endpoints:
  - {name: event, ops: [read]}
  - {name: log, ops: [write]}
%s`, name, tenant, kind, topic, extra, endpoints)
}
