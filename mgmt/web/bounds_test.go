package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/internal/testwait"
	"github.com/tinycontainer/tinycontainer/mgmt"
)

// settle polls until the goroutine count is at most want, and returns the
// last count. It gives up after the suite's hang guard: the machine is busy.
func settle(want int) int {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(testwait.Guard()); n > want && time.Now().Before(deadline); n = runtime.NumGoroutine() {
		time.Sleep(20 * time.Millisecond)
	}
	return n
}

func TestManySlowClientsAreBounded(t *testing.T) {
	const maxConns, clients = 6, 120
	f := newFake(1000) // big answers: a client that does not read fills its socket
	// The server's own timeouts (the defaults): no verdict below rests on
	// them, as the test closes its clients itself. With 300 ms ones the
	// last request, after the storm, failed whenever the server stalled
	// that long between arming its deadline and reading (a busy machine).
	s, err := Serve(context.Background(), "127.0.0.1:0", f, Options{MaxConns: maxConns})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := runtime.NumGoroutine()
	// Three kinds of bad clients: one that never finishes its headers, one
	// that asks for a large answer and never reads it, one that connects
	// and says nothing.
	var conns []net.Conn
	for i := range clients {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		switch i % 3 {
		case 0:
			fmt.Fprintf(c, "GET /api/containers HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
		case 1:
			for range 4 {
				fmt.Fprintf(c, "GET /api/containers HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
			}
		}
	}
	// However many clients, the server holds at most maxConns connections,
	// each with a bounded number of goroutines.
	bound := base + maxConns*3 + 4
	for range 50 {
		if n := runtime.NumGoroutine(); n > bound {
			t.Fatalf("%d goroutines with %d slow clients (base %d, bound %d)", n, clients, base, bound)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range conns {
		c.Close()
	}
	if n := settle(base); n > base {
		t.Fatalf("%d goroutines after the clients left, %d before", n, base)
	}
	// And the server still answers.
	resp, err := http.Get(s.URL() + "api/info")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after the storm: %d", resp.StatusCode)
	}
}

func TestManyClientsQueueAndAllGetAnswers(t *testing.T) {
	const maxConns, clients = 4, 64
	s, err := Serve(context.Background(), "127.0.0.1:0", newFake(10), Options{MaxConns: maxConns})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := runtime.NumGoroutine()
	errs := make(chan error, clients)
	for range clients {
		go func() {
			// A fresh connection each, closed after the answer.
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := c.Get(s.URL() + "api/containers")
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			errs <- err
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := settle(base); n > base {
		t.Fatalf("%d goroutines after %d clients, %d before", n, clients, base)
	}
}

// TestTabOpenForHours polls as the page does, many times, against a device
// that keeps logging: the server keeps nothing per client, so its memory
// and goroutines stay flat.
func TestTabOpenForHours(t *testing.T) {
	f := newFake(20)
	for i := range 200 {
		f.audit = append(f.audit, mgmt.AuditEntry{Container: "c0001", Tenant: "t1", Endpoint: "kv", Op: "put", Reason: fmt.Sprint(i)})
	}
	h := NewHandler(f, Options{})
	var after uint64
	poll := func() {
		for i := range 5 {
			f.log("c0001", strings.Repeat("x", 60)+fmt.Sprint(i))
		}
		for _, p := range []string{"/api/info", "/api/containers", "/api/audit?limit=100",
			fmt.Sprintf("/api/logs?after=%d&tail=300", after)} {
			w := do(h, http.MethodGet, p)
			if w.Code != http.StatusOK {
				t.Fatalf("%s: %d", p, w.Code)
			}
			if strings.HasPrefix(p, "/api/logs") {
				var ls []struct{ Seq uint64 }
				if err := json.Unmarshal(w.Body.Bytes(), &ls); err != nil || len(ls) == 0 {
					t.Fatalf("logs: %v %d", err, len(ls))
				}
				after = ls[len(ls)-1].Seq
			}
		}
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	for range 850 { // the fake's log ring fills up: 4096 lines
		poll()
	}
	before, g := heap(), runtime.NumGoroutine()
	for range 1800 { // half an hour of one poll a second
		poll()
	}
	after2, g2 := heap(), runtime.NumGoroutine()
	if after2 > before+1<<20 {
		t.Fatalf("heap grew from %d to %d bytes over 1800 polls", before, after2)
	}
	if g2 > g {
		t.Fatalf("goroutines %d -> %d", g, g2)
	}
}

// A query string past the header limit is refused before any handler.
func TestHugeRequestLineIs431(t *testing.T) {
	s, err := Serve(context.Background(), "127.0.0.1:0", newFake(1), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go fmt.Fprintf(c, "GET /api/logs?after=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", strings.Repeat("9", 1<<20))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func FuzzRequest(f *testing.F) {
	for _, s := range [][2]string{{"/api/logs", "after=1&max=2"}, {"/api/logs", "tail=5&container=c0001"},
		{"/api/audit", "limit=3"}, {"/api/containers/c0000", ""}, {"/api/info", "x=%zz"}, {"/", ""},
		{"/assets/device.js", ""}, {"/metrics", ""}, {"/api/logs", "after=1;max=2"}, {"/../..", "a=b&a=c"}} {
		f.Add(s[0], s[1])
	}
	dev := newFake(3)
	for i := range 20 {
		dev.log("c0001", fmt.Sprint(i))
	}
	h := NewHandler(dev, Options{})
	f.Fuzz(func(t *testing.T, path, query string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.URL = &url.URL{Path: path, RawQuery: query}
		r.RequestURI = r.URL.RequestURI()
		r.Host = "127.0.0.1"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%q?%q: %d %s", path, query, w.Code, w.Body)
		}
		if strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") && !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%q?%q: invalid JSON %q", path, query, w.Body)
		}
	})
}
