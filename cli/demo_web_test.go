package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// lockedBuffer is an io.Writer the test reads while the demo writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var demoDashboard = regexp.MustCompile(`Dashboard: (http://\S+)`)

// poll calls ok until it holds, failing after a generous deadline.
func poll(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestDemoHTTP runs `demo --http`: it prints the dashboard's address, the
// page shows the demo's containers, and after the story the device keeps
// running and serving until interrupted.
func TestDemoHTTP(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out lockedBuffer
	errc := make(chan error, 1)
	go func() { errc <- runDemo(ctx, &out, &deviceFlags{seed: 1, workers: 1}, time.Second, "127.0.0.1:0") }()
	var url string
	poll(t, "the dashboard's address", func() bool {
		m := demoDashboard.FindStringSubmatch(out.String())
		if m != nil {
			url = m[1]
		}
		return m != nil
	})
	containers := func() map[string]mgmt.ContainerStatus {
		resp, err := http.Get(url + "api/containers")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var cs []mgmt.ContainerStatus
		if err := json.NewDecoder(resp.Body).Decode(&cs); err != nil {
			t.Fatal(err)
		}
		m := map[string]mgmt.ContainerStatus{}
		for _, c := range cs {
			m[c.Name] = c
		}
		return m
	}
	poll(t, "the end of the story", func() bool {
		return bytes.Contains([]byte(out.String()), []byte("Interrupt (Ctrl-C) to stop"))
	})
	// Still served after the story, and the containers still run.
	first := containers()["thermo"].Activations
	poll(t, "thermo activating after the story", func() bool { return containers()["thermo"].Activations > first })
	if c := containers()["snoop"]; c.Version != 3 || c.Tenant != "globex" {
		t.Fatalf("snoop: %+v", c)
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the demo did not stop when interrupted")
	}
}
