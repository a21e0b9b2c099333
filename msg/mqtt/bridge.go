// Package mqtt bridges the device's message bus (package msg) to an MQTT v5
// broker: bus publishes go to the broker, and broker messages on the bus's
// filters come back through msg.Bus.Deliver. It is the only package of the
// project that uses paho.golang.
package mqtt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/tinycontainer/tinycontainer/msg"
)

// Error classes; every error returned by this package wraps one of them.
var (
	ErrBadURL   = errors.New("mqtt: invalid broker URL")
	ErrConnect  = errors.New("mqtt: cannot connect to the broker")
	ErrClosed   = errors.New("mqtt: bridge closed")
	ErrProtocol = errors.New("mqtt: protocol violation by the broker")
)

// Options tune a Bridge. Zero fields take the defaults in brackets.
type Options struct {
	ClientID       string        // ["tinycontainer-" + 8 random hex digits]
	QueueLen       int           // outgoing messages held while disconnected or slow [256]
	KeepAlive      time.Duration // MQTT keep-alive; a silent broker is dropped after about 2x this [30s]
	ConnectTimeout time.Duration // per attempt: TCP connect + CONNACK, and SUBACK waits [5s]
	MinBackoff     time.Duration // first reconnect delay [100ms]
	MaxBackoff     time.Duration // reconnect delay cap [10s]
	MaxPacketSize  int           // largest inbound packet; larger ones end the connection [64 KiB or MaxPayload+2 KiB]
	CloseTimeout   time.Duration // how long Close waits for a graceful flush [2s]
}

// Stats are the bridge's counters since Dial.
type Stats struct {
	Connected       bool
	Connects        uint64 // successful connections, the first one included
	ConnectErrors   uint64 // failed connection attempts
	Sent            uint64 // messages written to the broker
	Queued          int    // messages waiting to be sent
	OutDropped      uint64 // outgoing messages evicted from the full queue (oldest first)
	Received        uint64 // inbound messages handed to the bus
	InDropped       uint64 // inbound messages dropped for exceeding the bus's MaxPayload
	SubscribeErrors uint64 // filters the broker refused, and failed SUBSCRIBE/UNSUBSCRIBE exchanges
	Filters         []string
	LastError       string
}

type outMsg struct {
	topic   string
	payload []byte
}

// Bridge is a msg.Uplink connected to an MQTT broker. It publishes with QoS 0
// and subscribes with QoS 0; see docs/notes/msg.md for why.
type Bridge struct {
	bus    *msg.Bus
	addr   string
	user   *url.Userinfo
	opts   Options
	detach func()

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	done   chan struct{} // closed when the connection loop has exited

	outReady    chan struct{} // capacity 1: "the queue is non-empty"
	subsChanged chan struct{} // capacity 1: "desired filters changed"

	mu         sync.Mutex
	closed     bool
	out        []outMsg // ring buffer
	head, n    int
	desired    []string
	desiredGen uint64        // bumped by SetSubscriptions; starts at 1 (the empty set)
	syncedGen  uint64        // desiredGen the broker acknowledged on this connection; 0 when disconnected
	synced     chan struct{} // closed and replaced whenever syncedGen moves up
	current    []string      // filters the broker has acknowledged
	raw        net.Conn      // live connection, closed by Close if a write is stuck
	connected  bool
	lastErr    error

	connects, connectErrors, sent, outDropped, received, inDropped, subscribeErrors atomic.Uint64
}

var _ msg.Uplink = (*Bridge)(nil)

// Dial connects to the broker at rawURL (mqtt://host[:port] or
// tcp://host[:port], optionally with user:password@) and attaches the bridge
// to bus as its uplink. It retries with backoff until the first connection
// succeeds or ctx ends; after that the bridge reconnects on its own until
// Close, and ctx no longer matters.
func Dial(ctx context.Context, rawURL string, bus *msg.Bus, opts Options) (*Bridge, error) {
	addr, user, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if opts.ClientID == "" {
		var r [4]byte
		_, _ = rand.Read(r[:])
		opts.ClientID = "tinycontainer-" + hex.EncodeToString(r[:])
	}
	opts.QueueLen = orDefault(opts.QueueLen, 256)
	opts.KeepAlive = orDefault(opts.KeepAlive, 30*time.Second)
	opts.ConnectTimeout = orDefault(opts.ConnectTimeout, 5*time.Second)
	opts.MinBackoff = orDefault(opts.MinBackoff, 100*time.Millisecond)
	opts.MaxBackoff = max(orDefault(opts.MaxBackoff, 10*time.Second), opts.MinBackoff)
	opts.MaxPacketSize = orDefault(opts.MaxPacketSize, max(64<<10, bus.MaxPayload()+2<<10))
	opts.CloseTimeout = orDefault(opts.CloseTimeout, 2*time.Second)
	opts.KeepAlive = min(opts.KeepAlive, 65535*time.Second) // the protocol's limit

	b := &Bridge{
		bus:         bus,
		addr:        addr,
		user:        user,
		opts:        opts,
		done:        make(chan struct{}),
		outReady:    make(chan struct{}, 1),
		subsChanged: make(chan struct{}, 1),
		out:         make([]outMsg, opts.QueueLen),
		desiredGen:  1,
		synced:      make(chan struct{}),
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	first := make(chan struct{})
	go b.run(first)
	select {
	case <-first:
	case <-ctx.Done():
		b.mu.Lock()
		last := b.lastErr
		b.mu.Unlock()
		b.Close()
		return nil, fmt.Errorf("%w %s: %w (last error: %v)", ErrConnect, addr, ctx.Err(), last)
	}
	b.detach = bus.SetUplink(b)
	return b, nil
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

func parseURL(raw string) (addr string, user *url.Userinfo, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrBadURL, err)
	}
	if u.Scheme != "mqtt" && u.Scheme != "tcp" {
		return "", nil, fmt.Errorf("%w: %q: scheme must be mqtt or tcp", ErrBadURL, raw)
	}
	if u.Hostname() == "" || u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", nil, fmt.Errorf("%w: %q: want scheme://host[:port]", ErrBadURL, raw)
	}
	port := u.Port()
	if port == "" {
		port = "1883"
	}
	return net.JoinHostPort(u.Hostname(), port), u.User, nil
}

// Publish queues a message for the broker. It never blocks: when the queue is
// full the oldest queued message is dropped and counted.
func (b *Bridge) Publish(topic string, payload []byte) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	if b.n == len(b.out) {
		b.out[b.head] = outMsg{topic, payload}
		b.head = (b.head + 1) % len(b.out)
		b.outDropped.Add(1)
	} else {
		b.out[(b.head+b.n)%len(b.out)] = outMsg{topic, payload}
		b.n++
	}
	b.mu.Unlock()
	signal(b.outReady)
	return nil
}

// SetSubscriptions records the filters the bus needs; the connection loop
// applies them to the broker.
func (b *Bridge) SetSubscriptions(filters []string) {
	b.mu.Lock()
	b.desired = filters
	b.desiredGen++
	b.mu.Unlock()
	signal(b.subsChanged)
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Sync waits until the bridge is connected and the broker has acknowledged,
// on this connection, the filters the bus had when Sync was called (so broker
// messages published from now on reach them), or until ctx ends or the bridge
// is closed.
func (b *Bridge) Sync(ctx context.Context) error {
	b.mu.Lock()
	target := b.desiredGen
	b.mu.Unlock()
	for {
		b.mu.Lock()
		ok, ch := b.syncedGen >= target, b.synced
		b.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("mqtt: waiting for subscriptions: %w", ctx.Err())
		case <-b.done:
			return ErrClosed
		}
	}
}

// Stats returns a snapshot of the bridge's counters.
func (b *Bridge) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Stats{
		Connected:       b.connected,
		Connects:        b.connects.Load(),
		ConnectErrors:   b.connectErrors.Load(),
		Sent:            b.sent.Load(),
		Queued:          b.n,
		OutDropped:      b.outDropped.Load(),
		Received:        b.received.Load(),
		InDropped:       b.inDropped.Load(),
		SubscribeErrors: b.subscribeErrors.Load(),
		Filters:         slices.Clone(b.current),
	}
	if b.lastErr != nil {
		s.LastError = b.lastErr.Error()
	}
	return s
}

// Close detaches the bridge from the bus (which then delivers locally),
// sends what is queued if connected, disconnects and stops reconnecting.
// Messages still queued after CloseTimeout are discarded. Close is
// idempotent.
func (b *Bridge) Close() error {
	b.mu.Lock()
	already := b.closed
	b.closed = true
	b.mu.Unlock()
	if !already {
		if b.detach != nil {
			b.detach()
		}
		b.cancel()
	}
	timer := time.NewTimer(b.opts.CloseTimeout)
	defer timer.Stop()
	select {
	case <-b.done:
	case <-timer.C:
		// A write is stuck on an unresponsive broker: cut the socket.
		b.mu.Lock()
		if b.raw != nil {
			_ = b.raw.Close()
		}
		b.mu.Unlock()
		<-b.done
	}
	return nil
}

func (b *Bridge) setErr(err error) {
	b.mu.Lock()
	b.lastErr = err
	b.mu.Unlock()
}

// run is the connection loop: connect, serve, back off, repeat.
func (b *Bridge) run(first chan struct{}) {
	defer close(b.done)
	backoff := b.opts.MinBackoff
	for {
		connected, err := b.session(first)
		if connected {
			first = nil
			backoff = b.opts.MinBackoff
		} else {
			b.connectErrors.Add(1)
		}
		if err != nil {
			b.setErr(err)
		}
		if b.ctx.Err() != nil {
			return
		}
		// Jitter spreads the reconnects of many devices after a broker restart.
		wait := backoff/2 + mrand.N(backoff/2+1)
		t := time.NewTimer(wait)
		select {
		case <-b.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, b.opts.MaxBackoff)
	}
}

// session runs one connection. connected reports whether the broker accepted
// it; err says why it ended (nil on Close).
func (b *Bridge) session(first chan struct{}) (connected bool, err error) {
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.ConnectTimeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", b.addr)
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrConnect, err)
	}
	c := newConn(raw, b.opts.MaxPacketSize)
	b.mu.Lock()
	b.raw = raw
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.raw, b.connected, b.current, b.syncedGen = nil, false, nil, 0
		b.mu.Unlock()
	}()

	cli := paho.NewClient(paho.ClientConfig{
		Conn:              c,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){b.onPublish},
		PacketTimeout:     b.opts.ConnectTimeout,
	})
	recvMax := uint16(64) // sizes paho's inbound channel; we only receive QoS 0
	maxPacket := uint32(b.opts.MaxPacketSize)
	cp := &paho.Connect{
		ClientID:   b.opts.ClientID,
		KeepAlive:  uint16(b.opts.KeepAlive / time.Second),
		CleanStart: true,
		Properties: &paho.ConnectProperties{ReceiveMaximum: &recvMax, MaximumPacketSize: &maxPacket},
	}
	if b.user != nil {
		cp.Username, cp.UsernameFlag = b.user.Username(), true
		if pw, ok := b.user.Password(); ok {
			cp.Password, cp.PasswordFlag = []byte(pw), true
		}
	}
	if _, err := cli.Connect(ctx, cp); err != nil {
		_ = raw.Close()
		return false, fmt.Errorf("%w: %w", ErrConnect, err)
	}
	b.connects.Add(1)
	b.mu.Lock()
	b.connected = true
	b.mu.Unlock()
	if first != nil {
		close(first)
	}
	defer func() {
		_ = raw.Close()
		<-cli.Done()
	}()

	// A clean session starts without subscriptions. Restore them before
	// sending the queue so the broker's echo of queued messages reaches the
	// local subscribers.
	current, err := b.syncSubs(cli, nil)
	if err != nil {
		return true, err
	}
	signal(b.outReady)
	for {
		select {
		case <-cli.Done():
			// paho's reader has exited, so reading c.rdErr does not race.
			if c.rdErr == nil {
				return true, errors.New("mqtt: the broker ended the session")
			}
			return true, fmt.Errorf("mqtt: connection lost: %w", c.rdErr)
		case <-b.ctx.Done():
			b.flush(cli)
			_ = cli.Disconnect(&paho.Disconnect{ReasonCode: 0})
			return true, nil
		case <-b.subsChanged:
			if current, err = b.syncSubs(cli, current); err != nil {
				return true, err
			}
		case <-b.outReady:
			if err := b.flush(cli); err != nil {
				return true, err
			}
		}
	}
}

// flush sends the queued messages in order.
func (b *Bridge) flush(cli *paho.Client) error {
	for {
		b.mu.Lock()
		if b.n == 0 {
			b.mu.Unlock()
			return nil
		}
		m := b.out[b.head]
		b.out[b.head] = outMsg{}
		b.head = (b.head + 1) % len(b.out)
		b.n--
		b.mu.Unlock()
		// QoS 0 ignores the context; a stuck write is bounded by keep-alive or Close.
		if _, err := cli.Publish(context.Background(), &paho.Publish{Topic: m.topic, Payload: m.payload}); err != nil {
			b.requeue(m)
			return fmt.Errorf("mqtt: publish: %w", err)
		}
		b.sent.Add(1)
	}
}

// requeue puts back at the front a message whose write failed, so the next
// connection sends it, unless the queue has filled up meanwhile.
func (b *Bridge) requeue(m outMsg) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.n == len(b.out) {
		b.outDropped.Add(1)
		return
	}
	b.head = (b.head - 1 + len(b.out)) % len(b.out)
	b.out[b.head] = m
	b.n++
}

// subscribeChunk bounds the filters per SUBSCRIBE packet, keeping packets
// well under any broker's maximum packet size.
const subscribeChunk = 32

// syncSubs brings the broker's subscriptions from current to the reduced
// desired set. Unsubscribing first means a replaced filter never overlaps its
// replacement, so no message arrives twice. Filters the broker refuses are
// counted and retried at the next change or reconnect.
func (b *Bridge) syncSubs(cli *paho.Client, current []string) ([]string, error) {
	b.mu.Lock()
	gen := b.desiredGen
	want := reduceFilters(b.desired)
	b.mu.Unlock()

	var drop, add []string
	for _, f := range current {
		if !slices.Contains(want, f) {
			drop = append(drop, f)
		}
	}
	for _, f := range want {
		if !slices.Contains(current, f) {
			add = append(add, f)
		}
	}
	ctx := b.ctx
	if len(drop) > 0 {
		if _, err := cli.Unsubscribe(ctx, &paho.Unsubscribe{Topics: drop}); err != nil {
			b.subscribeErrors.Add(1)
			return current, fmt.Errorf("mqtt: unsubscribe: %w", err)
		}
		current = slices.DeleteFunc(current, func(f string) bool { return slices.Contains(drop, f) })
	}
	for chunk := range slices.Chunk(add, subscribeChunk) {
		req := &paho.Subscribe{Subscriptions: make([]paho.SubscribeOptions, len(chunk))}
		for i, f := range chunk {
			// RetainHandling 2: retained messages would re-trigger event
			// containers on every reconnect, so they are not requested.
			req.Subscriptions[i] = paho.SubscribeOptions{Topic: f, QoS: 0, RetainHandling: 2}
		}
		ack, err := cli.Subscribe(ctx, req)
		if ack == nil {
			b.subscribeErrors.Add(1)
			return current, fmt.Errorf("mqtt: subscribe: %w", err)
		}
		for i, f := range chunk {
			if i < len(ack.Reasons) && ack.Reasons[i] < 0x80 {
				current = append(current, f)
			} else {
				b.subscribeErrors.Add(1)
				b.setErr(fmt.Errorf("mqtt: broker refused subscription %q", f))
			}
		}
	}
	b.mu.Lock()
	b.current = slices.Clone(current)
	if gen > b.syncedGen {
		b.syncedGen = gen
		close(b.synced)
		b.synced = make(chan struct{})
	}
	b.mu.Unlock()
	return current, nil
}

// onPublish hands an inbound message to the bus; it runs on paho's router
// goroutine and Deliver never blocks, so a flood is bounded by the
// subscription queues rather than by buffering here.
func (b *Bridge) onPublish(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	if len(p.Payload) > b.bus.MaxPayload() {
		b.inDropped.Add(1)
		return true, nil
	}
	b.received.Add(1)
	b.bus.Deliver(msg.Message{Topic: p.Topic, Payload: p.Payload, From: "mqtt"})
	return true, nil
}
