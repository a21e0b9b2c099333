package msg

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// SubStats are one subscription's counters. Received counts every message
// queued; Received == taken by Next + Dropped + Queued.
type SubStats struct {
	Name     string
	Received uint64 // messages queued for this subscription
	Dropped  uint64 // messages evicted, unread, because the queue was full
	Queued   int    // messages waiting now
	Capacity int    // queue bound
}

// Subscription is a bounded FIFO of the messages matching its filters. When
// the queue is full the OLDEST message is evicted (and counted), so what a
// slow consumer reads is never more than Capacity messages stale.
type Subscription struct {
	bus     *Bus
	name    string
	notify  func()
	filters atomic.Pointer[[]string]

	mu     sync.Mutex
	ring   []Message
	head   int
	n      int
	closed bool

	received, dropped atomic.Uint64
}

func (s *Subscription) matches(topic string) bool {
	for _, f := range *s.filters.Load() {
		if Match(f, topic) {
			return true
		}
	}
	return false
}

// push queues m, evicting the oldest message when full, then calls notify.
func (s *Subscription) push(m Message) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	evicted := false
	if s.n == len(s.ring) {
		s.ring[s.head] = m
		s.head = (s.head + 1) % len(s.ring)
		evicted = true
	} else {
		s.ring[(s.head+s.n)%len(s.ring)] = m
		s.n++
	}
	s.mu.Unlock()

	s.received.Add(1)
	s.bus.delivered.Add(1)
	if evicted {
		s.dropped.Add(1)
		s.bus.dropped.Add(1)
	}
	if s.notify != nil {
		s.notify()
	}
}

// Next removes and returns the oldest queued message; ok is false when the
// queue is empty or the subscription is closed.
func (s *Subscription) Next() (m Message, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 {
		return Message{}, false
	}
	m = s.ring[s.head]
	s.ring[s.head] = Message{} // release the payload for the collector
	s.head = (s.head + 1) % len(s.ring)
	s.n--
	return m, true
}

// Len is the number of queued messages.
func (s *Subscription) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// Name is the name given to Subscribe.
func (s *Subscription) Name() string { return s.name }

// Filters returns a copy of the filters in force.
func (s *Subscription) Filters() []string { return slices.Clone(*s.filters.Load()) }

// Stats returns a snapshot of the subscription's counters.
func (s *Subscription) Stats() SubStats {
	s.mu.Lock()
	queued, capacity := s.n, len(s.ring)
	s.mu.Unlock()
	return SubStats{
		Name:     s.name,
		Received: s.received.Load(),
		Dropped:  s.dropped.Load(),
		Queued:   queued,
		Capacity: capacity,
	}
}

// SetFilters replaces the filters (a live metadata change). Messages already
// queued stay queued; publishes from now on match the new filters.
func (s *Subscription) SetFilters(filters []string) error {
	fs, err := s.bus.checkFilters(filters)
	if err != nil {
		return err
	}
	b := s.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return fmt.Errorf("%w: %s", ErrClosed, s.name)
	}
	s.filters.Store(&fs)
	b.syncUplinkLocked()
	return nil
}

// Close removes the subscription from the bus and discards its queue. It is
// idempotent.
func (s *Subscription) Close() {
	s.bus.remove(s)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.ring = nil
	s.head, s.n = 0, 0
}
