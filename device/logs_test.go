package device_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
)

// closers close the devices of newLogDevice once.
var closers = map[*device.Device]func(){}

// newLogDevice is an unmanaged device with the named containers of the
// given tenants installed (stopped: the test writes their lines itself).
func newLogDevice(t *testing.T, opts device.Options, tenants map[string]string) *device.Device {
	t.Helper()
	ctx := context.Background()
	d, err := device.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	closeIt := func() { once.Do(func() { d.Close(ctx) }) }
	t.Cleanup(closeIt)
	closers[d] = closeIt
	m, code := example(t, "blinker")
	for name, tenant := range tenants {
		v := variant(m, func(m *meta.Manifest) { m.Name, m.Tenant = name, tenant })
		if err := d.Install(ctx, v, code); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// TestLogFloodKeepsNeighbourLines is issue 12's finding: one device-wide
// ring of 4,096 lines let a tenant's flood evict every line of another
// tenant's container (203 lines before, 0 after).
func TestLogFloodKeepsNeighbourLines(t *testing.T) {
	d := newLogDevice(t, device.Options{}, map[string]string{"quiet": "acme", "flood": "evil", "flood2": "evil"})
	for i := range 203 {
		d.Line("quiet", fmt.Sprintf("quiet line %d", i))
	}
	text := strings.Repeat("x", 200)
	for i := range 60000 {
		d.Line("flood", fmt.Sprintf("%d %s", i, text))
		d.Line("flood2", "y")
	}
	got := d.Logs("quiet", 0, 0)
	if len(got) != 203 {
		t.Fatalf("the quiet tenant kept %d of its 203 lines", len(got))
	}
	for i, l := range got {
		if want := fmt.Sprintf("quiet line %d", i); l.Text != want || l.Container != "quiet" {
			t.Fatalf("line %d: %+v, want %q", i, l, want)
		}
	}
	st, err := d.Status("quiet")
	if err != nil || st.LogLinesDropped != 0 {
		t.Fatalf("quiet: %+v, %v", st, err)
	}
	// The flood lost its own oldest lines, counted, and kept its newest,
	// at least the floor of every container, oldest first.
	fl := d.Logs("flood", 0, 0)
	if len(fl) < device.MinLogLines || len(fl) >= 60000 {
		t.Fatalf("flood kept %d lines", len(fl))
	}
	if !strings.HasPrefix(fl[len(fl)-1].Text, "59999 ") {
		t.Fatalf("flood's newest line is %.20q", fl[len(fl)-1].Text)
	}
	for i := 1; i < len(fl); i++ {
		if fl[i].Seq <= fl[i-1].Seq {
			t.Fatalf("flood's lines out of order at %d", i)
		}
	}
	st, _ = d.Status("flood")
	if st.LogLinesDropped != uint64(60000-len(fl)) {
		t.Fatalf("flood: %d dropped, %d kept of 60000", st.LogLinesDropped, len(fl))
	}
	// The same tenant's other container keeps at least its floor.
	if n := len(d.Logs("flood2", 0, 0)); n < device.MinLogLines {
		t.Fatalf("flood2 kept %d lines", n)
	}
}

// TestLogsSurviveRestart: retained lines come back after the device
// restarts on the same log directory, with their sequence numbers, and
// new lines continue above them.
func TestLogsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	d := newLogDevice(t, device.Options{LogDir: dir}, map[string]string{"a": "acme", "b": "globex"})
	for i := range 1500 {
		d.Line("a", fmt.Sprintf("a %d", i))
		if i%3 == 0 {
			d.Line("b", fmt.Sprintf("b %d", i))
		}
	}
	wantA, wantB := d.Logs("a", 0, 0), d.Logs("b", 0, 0)
	closers[d]()
	d2 := newLogDevice(t, device.Options{LogDir: dir}, map[string]string{"a": "acme", "b": "globex"})
	for _, c := range []struct {
		name string
		want []string
	}{{"a", texts(wantA)}, {"b", texts(wantB)}} {
		got := d2.Logs(c.name, 0, 0)
		if strings.Join(texts(got), "|") != strings.Join(c.want, "|") {
			t.Fatalf("%s after restart: %d lines, want %d", c.name, len(got), len(c.want))
		}
	}
	if got := d2.Logs("a", 0, 0); got[0].Seq != wantA[0].Seq || !got[0].Time.Equal(wantA[0].Time) {
		t.Fatalf("first line after restart %+v, before %+v", got[0], wantA[0])
	}
	d2.Line("a", "after")
	all := d2.Logs("a", 0, 0)
	if l := all[len(all)-1]; l.Text != "after" || l.Seq <= wantA[len(wantA)-1].Seq {
		t.Fatalf("new line %+v after %+v", l, wantA[len(wantA)-1])
	}
}

func texts(ls []mgmt.LogLine) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Text
	}
	return out
}
