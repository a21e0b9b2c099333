// Package msg is the in-device message bus: containers publish on topics and
// receive, through bounded per-subscription queues, the messages matching
// their MQTT topic filters. An optional Uplink (the MQTT bridge in msg/mqtt)
// connects the bus to a broker.
package msg

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// Error classes; every error returned by this package wraps one of them.
var (
	ErrInvalidTopic = errors.New("msg: invalid topic")
	ErrTooLarge     = errors.New("msg: payload too large")
	ErrLimit        = errors.New("msg: limit exceeded")
	ErrClosed       = errors.New("msg: subscription closed")
	ErrUplink       = errors.New("msg: uplink refused the message")
)

// Defaults for Options fields left at zero, and the queue length used when
// Subscribe is given 0.
const (
	DefaultMaxPayload       = 4 << 10
	DefaultMaxSubscriptions = 1024
	DefaultMaxFilters       = 32
	DefaultMaxQueueLen      = 1024
	DefaultQueueLen         = 16
)

// Message is one published message. Payload is shared by every subscription
// that receives the message and must be treated as read-only.
type Message struct {
	Topic   string
	Payload []byte
	From    string // publishing container, or "mqtt" for messages from the broker
}

// Uplink connects the bus to an outside broker. With an uplink attached,
// Publish hands messages only to it and the broker's echo comes back through
// Bus.Deliver, so local subscribers see each message exactly once.
//
// Publish may keep payload (the bus never modifies it after the call) and must
// not block. SetSubscriptions receives the sorted, de-duplicated union of all
// subscription filters each time it changes; it is called with the bus's
// subscription lock held, so it must not block or call back into the bus.
type Uplink interface {
	Publish(topic string, payload []byte) error
	SetSubscriptions(filters []string)
}

// Options configures a Bus. Zero fields take the defaults above.
type Options struct {
	MaxPayload       int    // largest payload accepted, in bytes
	Uplink           Uplink // nil: messages stay on the device
	MaxSubscriptions int    // bound on live subscriptions
	MaxFilters       int    // bound on filters per subscription
	MaxQueueLen      int    // bound on the queueLen given to Subscribe
}

// Stats are bus-wide counters since NewBus.
type Stats struct {
	Published     uint64 // Publish calls accepted
	Delivered     uint64 // messages placed in a subscription queue (one per matching subscription)
	Dropped       uint64 // messages evicted from a full subscription queue
	Unmatched     uint64 // local or inbound messages no subscription matched
	Rejected      uint64 // invalid or oversized messages refused by Publish or Deliver
	UplinkErrors  uint64 // Publish calls the uplink refused
	Subscriptions int    // live subscriptions
}

type uplinkRef struct{ u Uplink }

// Bus is the device's message bus. It is safe for concurrent use.
type Bus struct {
	maxPayload, maxSubs, maxFilters, maxQueue int

	// Publishers read subs and uplink without locking; mu serialises the
	// copy-on-write updates and the union sent to the uplink.
	mu     sync.Mutex
	subs   atomic.Pointer[[]*Subscription]
	uplink atomic.Pointer[uplinkRef]
	union  []string

	published, delivered, dropped, unmatched, rejected, uplinkErrors atomic.Uint64
}

// NewBus returns an empty bus.
func NewBus(opts Options) *Bus {
	b := &Bus{
		maxPayload: orDefault(opts.MaxPayload, DefaultMaxPayload),
		maxSubs:    orDefault(opts.MaxSubscriptions, DefaultMaxSubscriptions),
		maxFilters: orDefault(opts.MaxFilters, DefaultMaxFilters),
		maxQueue:   orDefault(opts.MaxQueueLen, DefaultMaxQueueLen),
	}
	b.subs.Store(new([]*Subscription))
	if opts.Uplink != nil {
		b.SetUplink(opts.Uplink)
	}
	return b
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// MaxPayload is the largest payload the bus accepts.
func (b *Bus) MaxPayload() int { return b.maxPayload }

// SetUplink attaches u (replacing any previous uplink) and immediately tells
// it the current filter union. The returned detach function removes u again,
// unless another uplink has been attached since; after detaching, messages
// are delivered locally.
func (b *Bus) SetUplink(u Uplink) (detach func()) {
	ref := &uplinkRef{u: u}
	b.mu.Lock()
	b.uplink.Store(ref)
	u.SetSubscriptions(slices.Clone(b.union))
	b.mu.Unlock()
	return func() { b.uplink.CompareAndSwap(ref, nil) }
}

// Publish sends payload on topic on behalf of container from. The payload is
// copied, so the caller may reuse its buffer. Publish never waits for a
// subscriber: a full subscription queue loses its oldest message instead.
func (b *Bus) Publish(from, topic string, payload []byte) error {
	if err := ValidTopic(topic); err != nil {
		b.rejected.Add(1)
		return err
	}
	if len(payload) > b.maxPayload {
		b.rejected.Add(1)
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(payload), b.maxPayload)
	}
	var p []byte
	if len(payload) > 0 {
		p = make([]byte, len(payload))
		copy(p, payload)
	}
	if ref := b.uplink.Load(); ref != nil {
		if err := ref.u.Publish(topic, p); err != nil {
			b.uplinkErrors.Add(1)
			return fmt.Errorf("%w: %w", ErrUplink, err)
		}
		b.published.Add(1)
		return nil
	}
	b.published.Add(1)
	b.fanout(Message{Topic: topic, Payload: p, From: from})
	return nil
}

// Deliver hands an inbound message (from the uplink) to the matching local
// subscriptions. The bus takes ownership of m.Payload. Invalid topics and
// oversized payloads are dropped and counted as Rejected.
func (b *Bus) Deliver(m Message) {
	if validInbound(m.Topic) != nil || len(m.Payload) > b.maxPayload {
		b.rejected.Add(1)
		return
	}
	b.fanout(m)
}

func (b *Bus) fanout(m Message) {
	matched := false
	for _, s := range *b.subs.Load() {
		if s.matches(m.Topic) {
			matched = true
			s.push(m)
		}
	}
	if !matched {
		b.unmatched.Add(1)
	}
}

// Stats returns a snapshot of the bus counters.
func (b *Bus) Stats() Stats {
	return Stats{
		Published:     b.published.Load(),
		Delivered:     b.delivered.Load(),
		Dropped:       b.dropped.Load(),
		Unmatched:     b.unmatched.Load(),
		Rejected:      b.rejected.Load(),
		UplinkErrors:  b.uplinkErrors.Load(),
		Subscriptions: len(*b.subs.Load()),
	}
}

// Subscribe registers a subscription named name (the container, for stats)
// on filters, with a queue of queueLen messages (0 means DefaultQueueLen, or
// MaxQueueLen if that is smaller).
// notify, if not nil, is called on the publishing goroutine after each
// message is queued; it must return promptly (for example a non-blocking
// channel send) because the publisher is waiting for it.
func (b *Bus) Subscribe(name string, filters []string, queueLen int, notify func()) (*Subscription, error) {
	if queueLen == 0 {
		queueLen = min(DefaultQueueLen, b.maxQueue)
	}
	if queueLen < 0 || queueLen > b.maxQueue {
		return nil, fmt.Errorf("%w: queue length %d not in 1..%d", ErrLimit, queueLen, b.maxQueue)
	}
	fs, err := b.checkFilters(filters)
	if err != nil {
		return nil, err
	}
	s := &Subscription{bus: b, name: name, notify: notify, ring: make([]Message, queueLen)}
	s.filters.Store(&fs)

	b.mu.Lock()
	defer b.mu.Unlock()
	cur := *b.subs.Load()
	if len(cur) >= b.maxSubs {
		return nil, fmt.Errorf("%w: %d subscriptions", ErrLimit, len(cur))
	}
	next := append(cur[:len(cur):len(cur)], s)
	b.subs.Store(&next)
	b.syncUplinkLocked()
	return s, nil
}

// checkFilters validates filters and returns a private, de-duplicated copy.
func (b *Bus) checkFilters(filters []string) ([]string, error) {
	if len(filters) > b.maxFilters {
		return nil, fmt.Errorf("%w: %d filters, at most %d", ErrLimit, len(filters), b.maxFilters)
	}
	fs := make([]string, 0, len(filters))
	for _, f := range filters {
		if err := ValidFilter(f); err != nil {
			return nil, err
		}
		if !slices.Contains(fs, f) {
			fs = append(fs, f)
		}
	}
	return fs, nil
}

func (b *Bus) remove(s *Subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := *b.subs.Load()
	i := slices.Index(cur, s)
	if i < 0 {
		return
	}
	next := slices.Delete(slices.Clone(cur), i, i+1)
	b.subs.Store(&next)
	b.syncUplinkLocked()
}

// syncUplinkLocked recomputes the filter union and tells the uplink when it
// changed. b.mu must be held.
func (b *Bus) syncUplinkLocked() {
	var union []string
	for _, s := range *b.subs.Load() {
		union = append(union, *s.filters.Load()...)
	}
	slices.Sort(union)
	union = slices.Compact(union)
	if slices.Equal(union, b.union) {
		return
	}
	b.union = union
	if ref := b.uplink.Load(); ref != nil {
		ref.u.SetSubscriptions(slices.Clone(union))
	}
}
