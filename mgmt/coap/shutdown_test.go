package coap

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/tinycontainer/tinycontainer/internal/testwait"
	"github.com/tinycontainer/tinycontainer/mgmt"
)

// rawObserver is an observer on a plain UDP socket, so that a test decides
// which notifications get acknowledged.
type rawObserver struct {
	t     *testing.T
	conn  *net.UDPConn
	token []byte
	buf   []byte
}

func newRawObserver(t *testing.T, s *Server, name string) *rawObserver {
	t.Helper()
	conn, err := net.DialUDP("udp", nil, s.Addr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	o := &rawObserver{t: t, conn: conn, token: []byte{0xAB, 0xCD, 0x01, 0x02}, buf: make([]byte, 2048)}
	m := pool.NewMessage(context.Background())
	m.SetCode(codes.GET)
	m.SetType(message.Confirmable)
	m.SetMessageID(0x1234)
	m.SetToken(o.token)
	if err := m.SetPath("/c/" + name + "/logs"); err != nil {
		t.Fatal(err)
	}
	m.SetObserve(0)
	o.send(m)
	if r := o.recv(); r.Code() != codes.Content || r.Type() != message.Acknowledgement {
		t.Fatalf("registration answered %v %v", r.Type(), r.Code())
	} else if _, err := r.Observe(); err != nil {
		t.Fatalf("registration answered without Observe: %v", r)
	}
	return o
}

func (o *rawObserver) send(m *pool.Message) {
	o.t.Helper()
	b, err := m.MarshalWithEncoder(coder.DefaultCoder)
	if err != nil {
		o.t.Fatal(err)
	}
	if _, err := o.conn.Write(b); err != nil {
		o.t.Fatal(err)
	}
}

// recv reads the next message; only a hang fails it.
func (o *rawObserver) recv() *pool.Message {
	o.t.Helper()
	_ = o.conn.SetReadDeadline(time.Now().Add(testwait.Guard())) // a hang guard
	n, err := o.conn.Read(o.buf)
	if err != nil {
		o.t.Fatalf("no message from the server: %v", err)
	}
	m := pool.NewMessage(context.Background())
	if _, err := m.UnmarshalWithDecoder(coder.DefaultCoder, o.buf[:n]); err != nil {
		o.t.Fatalf("undecodable message: %v", err)
	}
	return m
}

// ack acknowledges the confirmable message m.
func (o *rawObserver) ack(m *pool.Message) {
	o.t.Helper()
	a := pool.NewMessage(context.Background())
	a.SetType(message.Acknowledgement)
	a.SetCode(codes.Empty)
	a.SetMessageID(m.MessageID())
	o.send(a)
}

// TestShutdownNoticeWhileNotificationUnacknowledged is the flake of `logs
// -f` under load (run 4 of make test-busy): a device stopping while a
// notification of new lines still waited for its acknowledgement ended
// that observation without a word, and the follower, told nothing, said
// the stream was lost instead of "the device is shutting down". Now every
// observation of a closing server ends with the final 5.03.
func TestShutdownNoticeWhileNotificationUnacknowledged(t *testing.T) {
	s, dev := startServer(t, ServerOptions{})
	o := newRawObserver(t, s, "thermo")
	dev.addLog("thermo", "a new line")
	n := o.recv()
	if n.Code() != codes.Content || n.Type() != message.Confirmable {
		t.Fatalf("notification %v %v", n.Type(), n.Code())
	}
	// Not acknowledged: the server waits for it when the device stops.
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	for {
		m := o.recv()
		if m.Type() == message.Confirmable {
			o.ack(m)
		}
		if m.Code() == codes.Content {
			continue // the unacknowledged notification, sent again
		}
		if _, err := m.Observe(); err == nil || m.Code() != codes.ServiceUnavailable || string(m.Token()) != string(o.token) {
			t.Fatalf("final message %v %v (Observe: %v), want a 5.03 without Observe", m.Type(), m.Code(), err == nil)
		}
		body, _ := m.ReadBody()
		if !strings.Contains(string(body), "the device is shutting down") {
			t.Fatalf("final message says %q", body)
		}
		break
	}
	if err := testwait.Recv(t, "Close", closed); err != nil {
		t.Fatal(err)
	}
}

// TestShutdownNoticeReachesEveryFollower: with lines flowing to many
// followers when the device stops, each learns that the device is
// shutting down, whatever its observation was doing at that moment.
func TestShutdownNoticeReachesEveryFollower(t *testing.T) {
	const followers = 12
	s, dev := startServer(t, ServerOptions{MaxObservers: followers, MaxClients: followers})
	type follow struct {
		ch    <-chan mgmt.LogLine
		ended func() error
	}
	var fs []follow
	for range followers {
		c := dialServer(t, s)
		ch, ended, err := c.FollowLogs(ctxT(t), "thermo", 0)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, follow{ch, ended})
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // lines keep coming until the device has stopped
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				dev.addLog("thermo", "tick")
				time.Sleep(100 * time.Microsecond) // pacing only
			}
		}
	}()
	// Every follower has seen a line: notifications are under way.
	for i, f := range fs {
		if _, ok := testwait.Recv(t, "a first line", f.ch), true; !ok {
			t.Fatalf("follower %d: no line", i)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	for i, f := range fs {
		testwait.Call(t, "the follower's stream to end", func() {
			for range f.ch {
			}
		})
		if err := f.ended(); !errors.Is(err, mgmt.ErrUnavailable) || !strings.Contains(err.Error(), "the device is shutting down") {
			t.Errorf("follower %d ended with %v, want the device's notice that it is shutting down", i, err)
		}
	}
}
