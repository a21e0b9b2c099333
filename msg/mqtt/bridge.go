// Package mqtt bridges the device's message bus (package msg) to an MQTT v5
// broker: bus publishes go to the broker, and broker messages on the bus's
// filters come back through msg.Bus.Deliver. The MQTT protocol itself is
// internal/mqttc's.
package mqtt

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tinycontainer/tinycontainer/internal/mqttc"
	"github.com/tinycontainer/tinycontainer/msg"
)

// Error classes; every error returned by this package wraps one of them.
var (
	ErrBadURL   = mqttc.ErrBadURL
	ErrConnect  = mqttc.ErrConnect
	ErrClosed   = errors.New("mqtt: bridge closed")
	ErrProtocol = mqttc.ErrProtocol
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
	// QoS of publishes and subscriptions: 0 (best effort) or 1 (at least
	// once between the device and the broker) [0].
	QoS byte
	// TLS configures mqtts:// brokers (nil: the system's roots).
	TLS *tls.Config
	// Background makes Dial return at once, without waiting for the
	// first connection: the bridge connects when the broker comes up.
	Background bool
	// Logger sees connects and disconnects [discarded].
	Logger *slog.Logger
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
	url    string
	log    *slog.Logger
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
	live       *mqttc.Conn   // live connection, cut by Close if a write is stuck
	connected  bool
	lastErr    error

	connects, connectErrors, sent, outDropped, received, inDropped, subscribeErrors atomic.Uint64
}

var _ msg.Uplink = (*Bridge)(nil)

// Dial connects to the broker at rawURL (mqtt://host[:port],
// tcp://host[:port], or mqtts://host[:port] for TLS, optionally with
// user:password@) and attaches the bridge to bus as its uplink. It retries
// with backoff until the first connection succeeds or ctx ends (unless
// opts.Background); after that the bridge reconnects on its own until
// Close, and ctx no longer matters.
func Dial(ctx context.Context, rawURL string, bus *msg.Bus, opts Options) (*Bridge, error) {
	if _, err := mqttc.ParseURL(rawURL); err != nil {
		return nil, err
	}
	if opts.QoS > 1 {
		return nil, fmt.Errorf("%w: QoS %d: want 0 or 1", ErrBadURL, opts.QoS)
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
		url:         rawURL,
		log:         opts.Logger,
		opts:        opts,
		done:        make(chan struct{}),
		outReady:    make(chan struct{}, 1),
		subsChanged: make(chan struct{}, 1),
		out:         make([]outMsg, opts.QueueLen),
		desiredGen:  1,
		synced:      make(chan struct{}),
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	first := make(chan struct{})
	go b.run(first)
	if opts.Background {
		b.detach = bus.SetUplink(b)
		return b, nil
	}
	select {
	case <-first:
	case <-ctx.Done():
		b.mu.Lock()
		last := b.lastErr
		b.mu.Unlock()
		b.Close()
		return nil, fmt.Errorf("%w %s: %w (last error: %v)", ErrConnect, rawURL, ctx.Err(), last)
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
		live := b.live
		b.mu.Unlock()
		if live != nil {
			live.Close()
		}
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
	conn, err := mqttc.Dial(b.ctx, mqttc.Config{
		URL:            b.url,
		ClientID:       b.opts.ClientID,
		TLS:            b.opts.TLS,
		KeepAlive:      b.opts.KeepAlive,
		ConnectTimeout: b.opts.ConnectTimeout,
		MaxPacketSize:  b.opts.MaxPacketSize,
		ReceiveMaximum: 64,
		OnMessage:      b.onMessage,
	})
	if err != nil {
		return false, err
	}
	b.connects.Add(1)
	b.mu.Lock()
	b.live, b.connected, b.lastErr = conn, true, nil // a stale error goes once connected again
	b.mu.Unlock()
	b.log.Info("mqtt: connected", "broker", b.url, "client", b.opts.ClientID)
	if first != nil {
		close(first)
	}
	defer func() {
		conn.Close()
		b.mu.Lock()
		b.live, b.connected, b.current, b.syncedGen = nil, false, nil, 0
		b.mu.Unlock()
		if err != nil {
			b.log.Warn("mqtt: disconnected", "broker", b.url, "client", b.opts.ClientID, "err", err)
		}
	}()

	// A clean session starts without subscriptions. Restore them before
	// sending the queue so the broker's echo of queued messages reaches the
	// local subscribers.
	current, err := b.syncSubs(conn, nil)
	if err != nil {
		return true, err
	}
	signal(b.outReady)
	for {
		select {
		case <-conn.Done():
			return true, conn.Err()
		case <-b.ctx.Done():
			b.flush(conn)
			conn.Disconnect()
			return true, nil
		case <-b.subsChanged:
			if current, err = b.syncSubs(conn, current); err != nil {
				return true, err
			}
		case <-b.outReady:
			if err := b.flush(conn); err != nil {
				return true, err
			}
		}
	}
}

// flush sends the queued messages in order.
func (b *Bridge) flush(conn *mqttc.Conn) error {
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
		// QoS 0 ignores the context; a stuck write is bounded by keep-alive
		// or Close. QoS 1 waits for the broker's acknowledgement, bounded
		// so that a broker that stops acknowledging ends the connection.
		ctx, cancel := context.WithTimeout(context.Background(), 2*b.opts.ConnectTimeout)
		err := conn.Publish(ctx, mqttc.Message{Topic: m.topic, Payload: m.payload, QoS: b.opts.QoS})
		cancel()
		if err != nil {
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
func (b *Bridge) syncSubs(conn *mqttc.Conn, current []string) ([]string, error) {
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
		if err := conn.Unsubscribe(ctx, drop); err != nil {
			b.subscribeErrors.Add(1)
			return current, fmt.Errorf("mqtt: unsubscribe: %w", err)
		}
		current = slices.DeleteFunc(current, func(f string) bool { return slices.Contains(drop, f) })
	}
	for chunk := range slices.Chunk(add, subscribeChunk) {
		req := make([]mqttc.Filter, len(chunk))
		for i, f := range chunk {
			// RetainHandling 2: retained messages would re-trigger event
			// containers on every reconnect, so they are not requested.
			req[i] = mqttc.Filter{Topic: f, QoS: b.opts.QoS, RetainHandling: 2}
		}
		refused, err := conn.Subscribe(ctx, req)
		if err != nil {
			b.subscribeErrors.Add(1)
			return current, fmt.Errorf("mqtt: subscribe: %w", err)
		}
		for i, f := range chunk {
			if refused[i] == nil {
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

// onMessage hands an inbound message to the bus; it runs on paho's router
// goroutine and Deliver never blocks, so a flood is bounded by the
// subscription queues rather than by buffering here.
func (b *Bridge) onMessage(m mqttc.Message) {
	if len(m.Payload) > b.bus.MaxPayload() {
		b.inDropped.Add(1)
		return
	}
	b.received.Add(1)
	b.bus.Deliver(msg.Message{Topic: m.Topic, Payload: m.Payload, From: "mqtt"})
}
