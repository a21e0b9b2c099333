package coap

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/internal/testpar"
)

// midServer is a minimal CoAP responder on UDP that answers every
// confirmable request with a piggy-backed 2.05 "{}" (and a ping with a
// reset) and records each (peer, message ID) pair it sees.
type midServer struct {
	conn *net.UDPConn
	mu   sync.Mutex
	seen map[string]map[uint16]bool
	dups int
	reqs int
}

func startMIDServer(t *testing.T) *midServer {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &midServer{conn: conn, seen: map[string]map[uint16]bool{}}
	done := make(chan struct{})
	t.Cleanup(func() { conn.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			p := buf[:n]
			if n < 4 || p[0]>>6 != 1 {
				continue
			}
			typ, tkl, code := (p[0]>>4)&3, int(p[0]&15), p[1]
			mid := uint16(p[2])<<8 | uint16(p[3])
			if typ != 0 || n < 4+tkl { // only confirmable requests take an ID of the client's
				continue
			}
			s.mu.Lock()
			m := s.seen[from.String()]
			if m == nil {
				m = map[uint16]bool{}
				s.seen[from.String()] = m
			}
			if m[mid] {
				s.dups++
			}
			m[mid] = true
			s.reqs++
			s.mu.Unlock()
			var out []byte
			if code == 0 { // ping: reset
				out = []byte{0x70, 0, p[2], p[3]}
			} else { // ACK 2.05, token, Content-Format 50, "{}"
				out = append([]byte{0x60 | byte(tkl), 0x45, p[2], p[3]}, p[4:4+tkl]...)
				out = append(out, 0xC1, 50, 0xFF, '{', '}')
			}
			_, _ = conn.WriteToUDP(out, from)
		}
	}()
	return s
}

// TestMessageIDsNeverReused is issue 12's finding: a client of this
// package stalled for ~160 s at its 65,536th request, because it reused
// message IDs within EXCHANGE_LIFETIME (RFC 7252 section 4.4) and the
// device answered them as duplicates. 70,000 requests now go out without
// one (peer, ID) pair twice: the client moves to a fresh endpoint first.
func TestMessageIDsNeverReused(t *testing.T) {
	s := startMIDServer(t)
	c, err := Dial(context.Background(), s.conn.LocalAddr().String(), ClientOptions{Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const total, workers = 70000, 8
	testpar.Spread(t, total, workers, func(int) error {
		_, err := c.Status(context.Background(), "thermo")
		return err
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dups != 0 {
		t.Fatalf("%d message IDs reused towards the device within %d requests", s.dups, s.reqs)
	}
	if s.reqs < total || len(s.seen) < 2 {
		t.Fatalf("%d requests from %d endpoints", s.reqs, len(s.seen))
	}
	if n := c.endpoints(); n > 2 {
		t.Fatalf("%d endpoints still open: retired ones must close", n)
	}
	t.Logf("%d requests from %d endpoints", s.reqs, len(s.seen))
}

// TestDialRefusedFailsFast is issue 13's item 8: a device address where
// nothing listens waited out the whole timeout (10 s). The host's "port
// unreachable" ends the wait at once, and says so.
func TestDialRefusedFailsFast(t *testing.T) {
	l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := l.LocalAddr().String()
	l.Close() // nothing listens there now
	_, err = Dial(context.Background(), addr, ClientOptions{Timeout: 10 * time.Minute})
	if !errors.Is(err, errRefused) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("dial where nothing listens: %v", err)
	}
}
