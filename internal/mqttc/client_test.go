package mqttc

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/internal/testbroker"
	"github.com/tinycontainer/tinycontainer/internal/testwait"
)

// inbox collects messages a connection received.
type inbox struct {
	mu   sync.Mutex
	msgs []Message
}

func (in *inbox) add(m Message) {
	in.mu.Lock()
	in.msgs = append(in.msgs, m)
	in.mu.Unlock()
}

func (in *inbox) find(topic, payload string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, m := range in.msgs {
		if m.Topic == topic && string(m.Payload) == payload {
			return true
		}
	}
	return false
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), testwait.Guard())
	t.Cleanup(cancel)
	return c
}

// Retained messages, QoS 1, the will on a cut connection, and a final
// message then a clean disconnect (no will) on Close.
func TestClientWillFinalAndRetained(t *testing.T) {
	br := testbroker.Start(t)
	var got inbox
	watcher, err := Dial(ctx(t), Config{URL: br.URL(), ClientID: "watcher", OnMessage: got.add})
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Disconnect()
	if refused, err := watcher.Subscribe(ctx(t), []Filter{{Topic: "t/#", QoS: 1}}); err != nil || refused[0] != nil {
		t.Fatal(err, refused)
	}

	will := &Message{Topic: "t/status", Payload: []byte("offline-1"), QoS: 1, Retain: true}
	c1, err := Dial(ctx(t), Config{URL: br.URL(), ClientID: "dev", Will: will})
	if err != nil {
		t.Fatal(err)
	}
	if err := c1.Publish(ctx(t), Message{Topic: "t/status", Payload: []byte("online-1"), QoS: 1, Retain: true}); err != nil {
		t.Fatal(err)
	}
	testbroker.WaitFor(t, "online", func() bool { return got.find("t/status", "online-1") })
	c1.Close() // cut: the broker publishes the will
	testbroker.WaitFor(t, "the will", func() bool { return got.find("t/status", "offline-1") })

	cl, err := Start(ClientConfig{Config: Config{URL: br.URL(), ClientID: "dev",
		Will: &Message{Topic: "t/status", Payload: []byte("offline-2"), QoS: 1, Retain: true}},
		OnConnect: func(ctx context.Context, c *Conn) error {
			return c.Publish(ctx, Message{Topic: "t/status", Payload: []byte("online-2"), QoS: 1, Retain: true})
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.WaitConnected(ctx(t)); err != nil {
		t.Fatal(err)
	}
	testbroker.WaitFor(t, "online-2", func() bool { return got.find("t/status", "online-2") })
	cl.Close(5*time.Second, Message{Topic: "t/status", Payload: []byte("bye"), QoS: 1, Retain: true})
	testbroker.WaitFor(t, "bye", func() bool { return got.find("t/status", "bye") })

	// A new subscriber gets the retained "bye", never the will of the
	// clean disconnect.
	var late inbox
	c3, err := Dial(ctx(t), Config{URL: br.URL(), ClientID: "late", OnMessage: late.add})
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Disconnect()
	if _, err := c3.Subscribe(ctx(t), []Filter{{Topic: "t/status", QoS: 1}}); err != nil {
		t.Fatal(err)
	}
	testbroker.WaitFor(t, "retained bye", func() bool { return late.find("t/status", "bye") })
	if got.find("t/status", "offline-2") {
		t.Fatal("the will was published after a clean close")
	}
}

// The client starts while the broker is down, connects once it is up,
// reconnects after a restart, and drops the stale error once connected.
func TestClientStartsWithBrokerDownAndReconnects(t *testing.T) {
	br := testbroker.Start(t)
	br.Stop()
	connects := make(chan struct{}, 8)
	cl, err := Start(ClientConfig{Config: Config{URL: br.URL(), ClientID: "c"}, MinBackoff: 5 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond, OnConnect: func(context.Context, *Conn) error { connects <- struct{}{}; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close(time.Second)
	testbroker.WaitFor(t, "a failed attempt", func() bool { return cl.Stats().ConnectErrors > 0 })
	if s := cl.Stats(); s.Connected || s.LastError == "" {
		t.Fatalf("while down: %+v", s)
	}
	if err := cl.Publish(ctx(t), Message{Topic: "x"}); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("publish while down: %v", err)
	}
	br.Start()
	if err := cl.WaitConnected(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if s := cl.Stats(); !s.Connected || s.LastError != "" || s.Connects != 1 {
		t.Fatalf("after connecting: %+v", s)
	}
	br.Stop()
	testbroker.WaitFor(t, "the disconnect", func() bool { return cl.Stats().Disconnects == 1 })
	br.Start()
	testbroker.WaitFor(t, "the reconnect", func() bool { s := cl.Stats(); return s.Connected && s.Connects == 2 })
	if s := cl.Stats(); s.LastError != "" {
		t.Fatalf("stale error after reconnecting: %+v", s)
	}
}

func TestTLS(t *testing.T) {
	br := testbroker.StartOpts(t, testbroker.Opts{TLS: true, Extra: "allow_anonymous true"})
	var got inbox
	c, err := Dial(ctx(t), Config{URL: br.TLSURL(), ClientID: "tls", TLS: &tls.Config{RootCAs: br.Roots()}, OnMessage: got.add})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	if _, err := c.Subscribe(ctx(t), []Filter{{Topic: "s", QoS: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx(t), Message{Topic: "s", Payload: []byte("secret"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	testbroker.WaitFor(t, "the message over TLS", func() bool { return got.find("s", "secret") })
	// Without the test CA the certificate is refused.
	_, err = Dial(ctx(t), Config{URL: br.TLSURL(), ClientID: "untrusting"})
	if !errors.Is(err, ErrConnect) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate: %v", err)
	}
}

func TestDialRefusesBadInput(t *testing.T) {
	if _, err := Dial(ctx(t), Config{URL: "ws://x", ClientID: "a"}); !errors.Is(err, ErrBadURL) {
		t.Fatal(err)
	}
	if _, err := Start(ClientConfig{Config: Config{URL: "mqtt://x"}}); !errors.Is(err, ErrConnect) {
		t.Fatal(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	if _, err := Dial(ctx(t), Config{URL: "mqtt://" + addr, ClientID: "a"}); !errors.Is(err, ErrConnect) {
		t.Fatal(err)
	}
}
