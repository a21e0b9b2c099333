// Package mqttc is the project's MQTT v5 client: one connection (Dial,
// Conn) and a connection kept alive with backoff (Start, Client). The
// device's messaging bridge (msg/mqtt), the fleet adapter of a device and
// the fleet controller all use it; it is the only package of the project
// that imports paho.golang.
//
// Inbound packets are size-checked before paho decodes them (a broker
// announcing a huge packet cannot make us allocate it), writes are
// gathered into one syscall per packet, and brokers are reached over TCP
// (mqtt://) or TLS (mqtts://).
package mqttc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// Error classes; every error returned by this package wraps one of them.
var (
	ErrBadURL       = errors.New("mqtt: invalid broker URL")
	ErrConnect      = errors.New("mqtt: cannot connect to the broker")
	ErrClosed       = errors.New("mqtt: connection closed")
	ErrProtocol     = errors.New("mqtt: protocol violation by the broker")
	ErrNotConnected = errors.New("mqtt: not connected to the broker")
	ErrRefused      = errors.New("mqtt: the broker refused the request")
)

// Message is an MQTT application message.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte // 0 or 1
	Retain  bool
}

// Filter is a subscription request.
type Filter struct {
	Topic string
	QoS   byte
	// RetainHandling: 0 send retained messages at subscribe, 1 only for a
	// new subscription, 2 never.
	RetainHandling byte
	NoLocal        bool
}

// Config describes one connection.
type Config struct {
	URL      string // see ParseURL
	ClientID string // required
	// Username and Password override the URL's when HasUser is set.
	Username string
	Password []byte
	HasUser  bool
	// TLS configures mqtts:// connections; nil uses the system's roots
	// (SSL_CERT_FILE and SSL_CERT_DIR are honoured) and the URL's host.
	TLS            *tls.Config
	KeepAlive      time.Duration // [30s]; a silent broker is dropped after about 1.5x this
	ConnectTimeout time.Duration // TCP/TLS connect + CONNACK, and each acknowledged request [5s]
	MaxPacketSize  int           // largest inbound packet; a larger one ends the connection [1 MiB]
	ReceiveMaximum uint16        // QoS 1 messages the broker may have in flight to us [64]
	Will           *Message      // published by the broker if the connection ends without DISCONNECT
	// OnMessage sees every inbound message, on the connection's reader
	// goroutine: it must not block for long (hand work to a queue).
	OnMessage func(Message)
}

func (cfg *Config) defaults() {
	cfg.KeepAlive = orDefault(cfg.KeepAlive, 30*time.Second)
	cfg.KeepAlive = min(cfg.KeepAlive, 65535*time.Second)
	cfg.ConnectTimeout = orDefault(cfg.ConnectTimeout, 5*time.Second)
	cfg.MaxPacketSize = orDefault(cfg.MaxPacketSize, 1<<20)
	if cfg.ReceiveMaximum == 0 {
		cfg.ReceiveMaximum = 64
	}
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Conn is one MQTT v5 connection, clean start. It does not reconnect
// (see Client).
type Conn struct {
	cli     *paho.Client
	raw     net.Conn
	c       *conn
	timeout time.Duration

	closeOnce sync.Once
}

// Dial connects to the broker and waits for its CONNACK (bounded by ctx
// and cfg.ConnectTimeout).
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	ep, err := ParseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.ClientID == "" {
		return nil, fmt.Errorf("%w: a client id is required", ErrConnect)
	}
	cfg.defaults()
	ctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	var raw net.Conn
	if ep.TLS {
		tc := cfg.TLS.Clone()
		if tc == nil {
			tc = &tls.Config{}
		}
		if tc.ServerName == "" {
			tc.ServerName = ep.Host
		}
		d := tls.Dialer{Config: tc}
		raw, err = d.DialContext(ctx, "tcp", ep.Addr)
	} else {
		var d net.Dialer
		raw, err = d.DialContext(ctx, "tcp", ep.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrConnect, ep.Addr, err)
	}
	c := newConn(raw, cfg.MaxPacketSize)
	mc := &Conn{raw: raw, c: c, timeout: cfg.ConnectTimeout}
	onMsg := cfg.OnMessage
	mc.cli = paho.NewClient(paho.ClientConfig{
		Conn: c,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			if onMsg != nil {
				p := pr.Packet
				onMsg(Message{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain})
			}
			return true, nil
		}},
		PacketTimeout: cfg.ConnectTimeout,
	})
	recvMax := cfg.ReceiveMaximum
	maxPacket := uint32(cfg.MaxPacketSize)
	cp := &paho.Connect{
		ClientID:   cfg.ClientID,
		KeepAlive:  uint16(cfg.KeepAlive / time.Second),
		CleanStart: true,
		Properties: &paho.ConnectProperties{ReceiveMaximum: &recvMax, MaximumPacketSize: &maxPacket},
	}
	switch {
	case cfg.HasUser:
		cp.Username, cp.UsernameFlag = cfg.Username, true
		if cfg.Password != nil {
			cp.Password, cp.PasswordFlag = cfg.Password, true
		}
	case ep.HasUser:
		cp.Username, cp.UsernameFlag = ep.User, true
		if ep.HasPass {
			cp.Password, cp.PasswordFlag = []byte(ep.Password), true
		}
	}
	if w := cfg.Will; w != nil {
		cp.WillMessage = &paho.WillMessage{Topic: w.Topic, Payload: w.Payload, QoS: w.QoS, Retain: w.Retain}
	}
	ack, err := mc.cli.Connect(ctx, cp)
	if err != nil {
		_ = raw.Close()
		<-mc.cli.Done()
		if ack != nil && ack.ReasonCode >= 0x80 {
			return nil, fmt.Errorf("%w %s: refused: %s (reason %#x)", ErrConnect, ep.Addr, ack.Properties.ReasonString, ack.ReasonCode)
		}
		return nil, fmt.Errorf("%w %s: %w", ErrConnect, ep.Addr, err)
	}
	return mc, nil
}

// Publish sends m. QoS 0 returns once written; QoS 1 once the broker
// acknowledged it (bounded by ctx).
func (mc *Conn) Publish(ctx context.Context, m Message) error {
	if m.QoS > 1 {
		return fmt.Errorf("%w: QoS %d is not supported", ErrRefused, m.QoS)
	}
	resp, err := mc.cli.Publish(ctx, &paho.Publish{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain})
	if err != nil {
		if resp != nil && resp.ReasonCode >= 0x80 {
			return fmt.Errorf("%w: publish %s: reason %#x", ErrRefused, m.Topic, resp.ReasonCode)
		}
		return fmt.Errorf("%w: publish %s: %w", ErrClosed, m.Topic, err)
	}
	return nil
}

// Subscribe sends one SUBSCRIBE and returns, per filter, nil or why the
// broker refused it. err is set when the exchange itself failed.
func (mc *Conn) Subscribe(ctx context.Context, filters []Filter) (refused []error, err error) {
	req := &paho.Subscribe{Subscriptions: make([]paho.SubscribeOptions, len(filters))}
	for i, f := range filters {
		req.Subscriptions[i] = paho.SubscribeOptions{Topic: f.Topic, QoS: f.QoS, RetainHandling: f.RetainHandling, NoLocal: f.NoLocal}
	}
	ctx, cancel := context.WithTimeout(ctx, mc.timeout)
	defer cancel()
	ack, err := mc.cli.Subscribe(ctx, req)
	if ack == nil {
		return nil, fmt.Errorf("%w: subscribe: %w", ErrClosed, err)
	}
	refused = make([]error, len(filters))
	for i, f := range filters {
		if i >= len(ack.Reasons) || ack.Reasons[i] >= 0x80 {
			refused[i] = fmt.Errorf("%w: subscription %q", ErrRefused, f.Topic)
		}
	}
	return refused, nil
}

// Unsubscribe removes filters.
func (mc *Conn) Unsubscribe(ctx context.Context, topics []string) error {
	ctx, cancel := context.WithTimeout(ctx, mc.timeout)
	defer cancel()
	if _, err := mc.cli.Unsubscribe(ctx, &paho.Unsubscribe{Topics: topics}); err != nil {
		return fmt.Errorf("%w: unsubscribe: %w", ErrClosed, err)
	}
	return nil
}

// Done is closed when the connection has ended.
func (mc *Conn) Done() <-chan struct{} { return mc.cli.Done() }

// Err says why the connection ended; call it after Done.
func (mc *Conn) Err() error {
	select {
	case <-mc.cli.Done():
	default:
		return nil
	}
	// paho's reader has exited, so reading rdErr does not race.
	if mc.c.rdErr == nil {
		return fmt.Errorf("%w: the broker ended the session", ErrClosed)
	}
	if errors.Is(mc.c.rdErr, ErrProtocol) {
		return mc.c.rdErr
	}
	return fmt.Errorf("%w: connection lost: %w", ErrClosed, mc.c.rdErr)
}

// Disconnect ends the connection normally (the broker discards the will)
// and waits for it to close.
func (mc *Conn) Disconnect() {
	_ = mc.cli.Disconnect(&paho.Disconnect{ReasonCode: 0})
	mc.Close()
}

// Close cuts the connection (the broker publishes the will) and waits for
// the client's goroutines to end. It also unblocks a stuck write.
func (mc *Conn) Close() {
	mc.closeOnce.Do(func() { _ = mc.raw.Close() })
	<-mc.cli.Done()
}
