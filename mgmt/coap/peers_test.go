package coap

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/tinycontainer/tinycontainer/internal/testwait"
)

// pingFrom sends one CoAP GET /c from a fresh socket (a new client
// address) and waits for the answer.
func getFrom(t *testing.T, addr string) {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// CON GET, MID 1, token 0xAB, Uri-Path "c".
	if _, err := conn.Write([]byte{0x41, 0x01, 0x00, 0x01, 0xAB, 0xB1, 'c'}); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 2048)
	if _, err := conn.Read(buf); err != nil {
		t.Fatalf("no answer: %v", err)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// TestClientBurstStaysBounded is issue 12's finding: every new client
// address held ~15 KB and a goroutine for 5 minutes, without a cap
// (20,000 addresses: 307 MB, 14,376 goroutines). After a burst of 2,000
// addresses the server keeps at most MaxClients of them, and its
// goroutines and heap are back near where they were.
func TestClientBurstStaysBounded(t *testing.T) {
	s, _ := startServer(t, ServerOptions{MaxClients: 8})
	addr := s.Addr().String()
	getFrom(t, addr) // warm up pools and caches
	base, baseHeap := runtime.NumGoroutine(), heapInUse()
	for range 2000 {
		getFrom(t, addr)
	}
	if n := s.peers.count(); n > 8 {
		t.Fatalf("%d client connections kept, cap 8", n)
	}
	// Evicted connections wind down in the background: poll.
	deadline := time.Now().Add(time.Minute)
	for runtime.NumGoroutine() > base+3*8 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > base+3*8 {
		t.Fatalf("%d goroutines after the burst, %d before", g, base)
	}
	if h := heapInUse(); h > baseHeap+8<<20 {
		t.Fatalf("heap %d MiB after the burst, %d MiB before", h>>20, baseHeap>>20)
	}
	s.peers.mu.Lock()
	evicted := s.peers.evicted
	s.peers.mu.Unlock()
	if evicted < 2000-8 {
		t.Fatalf("%d evicted", evicted)
	}
	// The evicted connections' state is freed by go-coap's own sweep,
	// which the server runs through options.WithPeriodicRunner; their
	// close hooks (peers.remove) say so. If this times out, go-coap no
	// longer frees closed connections in its periodic sweep: the cap on
	// clients would no longer bound memory (see RATIONALE.md, "go-coap
	// capped from outside").
	testwait.For(t, "go-coap's periodic sweep to free the evicted connections (cap 8)", func() bool {
		s.peers.mu.Lock()
		defer s.peers.mu.Unlock()
		return len(s.peers.m) <= 8
	})
}

// TestEvictsIdlestClient: at the cap, the client idle the longest goes;
// one that keeps talking stays.
func TestEvictsIdlestClient(t *testing.T) {
	s, _ := startServer(t, ServerOptions{MaxClients: 2})
	busy := dialServer(t, s)
	ctx := context.Background()
	busyConn := func() *client.Conn {
		local := busy.cur.cc.LocalAddr().String()
		s.peers.mu.Lock()
		defer s.peers.mu.Unlock()
		for cc, pe := range s.peers.m {
			if cc.RemoteAddr().String() == local && !pe.closing {
				return cc
			}
		}
		return nil
	}
	first := busyConn()
	if first == nil {
		t.Fatal("no server connection for the client")
	}
	for range 3 {
		getFrom(t, s.Addr().String()) // each evicts the idlest: never busy, which talked last
		if _, err := busy.Status(ctx, "thermo"); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.peers.count(); n > 2 {
		t.Fatalf("%d connections", n)
	}
	if busyConn() != first {
		t.Fatal("the client that kept talking was evicted")
	}
}

// TestClientStateRecycled: a client's state (responses cached for
// duplicate detection) is dropped after MaxClientExchanges requests, and
// the client goes on without noticing.
func TestClientStateRecycled(t *testing.T) {
	s, _ := startServer(t, ServerOptions{MaxClientExchanges: 50})
	c := dialServer(t, s)
	ctx := context.Background()
	for i := range 400 {
		if _, err := c.Status(ctx, "thermo"); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	s.peers.mu.Lock()
	recycled := s.peers.recycled
	s.peers.mu.Unlock()
	if recycled < 1 {
		t.Fatalf("recycled %d times", recycled)
	}
	// Once the client is quiet its connection goes; the next request
	// begins a fresh one.
	deadline := time.Now().Add(time.Minute)
	for s.peers.count() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := s.peers.count(); n != 0 {
		t.Fatalf("%d connections after the client went quiet", n)
	}
	if _, err := c.Status(ctx, "thermo"); err != nil || s.peers.count() != 1 {
		t.Fatalf("after the recycle: %v, %d connections", err, s.peers.count())
	}
	_ = message.Confirmable
}
