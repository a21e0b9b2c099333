package msg

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func mustSub(t testing.TB, b *Bus, name string, filters []string, qlen int, notify func()) *Subscription {
	t.Helper()
	s, err := b.Subscribe(name, filters, qlen, notify)
	if err != nil {
		t.Fatalf("Subscribe(%s, %q): %v", name, filters, err)
	}
	return s
}

func drain(s *Subscription) []Message {
	var out []Message
	for {
		m, ok := s.Next()
		if !ok {
			return out
		}
		out = append(out, m)
	}
}

func topics(ms []Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Topic)
	}
	return out
}

func TestFanOutAndWildcards(t *testing.T) {
	b := NewBus(Options{})
	all := mustSub(t, b, "all", []string{"#"}, 0, nil)
	cmd := mustSub(t, b, "cmd", []string{"acme/cmd/#"}, 0, nil)
	plus := mustSub(t, b, "plus", []string{"+/cmd/led", "other/x"}, 0, nil)
	none := mustSub(t, b, "none", nil, 0, nil)

	for _, tp := range []string{"acme/cmd", "acme/cmd/led", "beta/cmd/led", "acme/data", "other/x"} {
		if err := b.Publish("c1", tp, []byte(tp)); err != nil {
			t.Fatal(err)
		}
	}
	check := func(s *Subscription, want ...string) {
		t.Helper()
		ms := drain(s)
		if got := topics(ms); !slices.Equal(got, want) {
			t.Errorf("%s got %q, want %q", s.Name(), got, want)
		}
		for _, m := range ms {
			if m.From != "c1" || string(m.Payload) != m.Topic {
				t.Errorf("%s: bad message %+v", s.Name(), m)
			}
		}
	}
	check(all, "acme/cmd", "acme/cmd/led", "beta/cmd/led", "acme/data", "other/x")
	check(cmd, "acme/cmd", "acme/cmd/led")
	check(plus, "acme/cmd/led", "beta/cmd/led", "other/x")
	check(none)

	st := b.Stats()
	want := Stats{Published: 5, Delivered: 5 + 2 + 3, Subscriptions: 4}
	if st != want {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
}

func TestOverlappingFiltersDeliverOnce(t *testing.T) {
	b := NewBus(Options{})
	s := mustSub(t, b, "s", []string{"a/+", "+/b", "#", "a/b", "a/b"}, 0, nil)
	if got := s.Filters(); len(got) != 4 {
		t.Errorf("duplicate filter kept: %q", got)
	}
	if err := b.Publish("x", "a/b", nil); err != nil {
		t.Fatal(err)
	}
	if n := s.Len(); n != 1 {
		t.Errorf("Len = %d, want 1", n)
	}
}

func TestQueueDropsOldest(t *testing.T) {
	b := NewBus(Options{})
	s := mustSub(t, b, "slow", []string{"t"}, 3, nil)
	for i := range 10 {
		if err := b.Publish("p", "t", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if st != (SubStats{Name: "slow", Received: 10, Dropped: 7, Queued: 3, Capacity: 3}) {
		t.Errorf("Stats = %+v", st)
	}
	var got []byte
	for _, m := range drain(s) {
		got = append(got, m.Payload...)
	}
	if !bytes.Equal(got, []byte{7, 8, 9}) {
		t.Errorf("kept %v, want the newest [7 8 9]", got)
	}
	if bs := b.Stats(); bs.Dropped != 7 || bs.Delivered != 10 {
		t.Errorf("bus Stats = %+v", bs)
	}
	// The ring keeps working after wrapping around.
	for i := range 5 {
		_ = b.Publish("p", "t", []byte{byte(20 + i)})
		m, ok := s.Next()
		if !ok || m.Payload[0] != byte(20+i) {
			t.Fatalf("after wrap: got %v %v", m, ok)
		}
	}
}

func TestPayloadIsCopied(t *testing.T) {
	b := NewBus(Options{})
	s := mustSub(t, b, "s", []string{"t"}, 0, nil)
	buf := []byte("hello")
	if err := b.Publish("p", "t", buf); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXX")
	m, _ := s.Next()
	if string(m.Payload) != "hello" {
		t.Errorf("payload changed with the publisher's buffer: %q", m.Payload)
	}
}

func TestPublishRejects(t *testing.T) {
	b := NewBus(Options{MaxPayload: 8})
	s := mustSub(t, b, "s", []string{"#"}, 0, nil)
	for _, tp := range []string{"", "a/+", "a/#", "$SYS/x", "a\x00", strings.Repeat("a", 257)} {
		if err := b.Publish("p", tp, nil); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("Publish(%q) = %v, want ErrInvalidTopic", tp, err)
		}
	}
	if err := b.Publish("p", "t", make([]byte, 9)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized Publish = %v, want ErrTooLarge", err)
	}
	if err := b.Publish("p", "t", make([]byte, 8)); err != nil {
		t.Errorf("Publish at the limit = %v", err)
	}
	b.Deliver(Message{Topic: "t", Payload: make([]byte, 9)})
	b.Deliver(Message{Topic: "a/+"})
	if s.Len() != 1 {
		t.Errorf("rejected messages reached the subscription: Len = %d", s.Len())
	}
	if st := b.Stats(); st.Rejected != 9 || st.Published != 1 {
		t.Errorf("Stats = %+v, want 9 rejected, 1 published", st)
	}
}

func TestSubscribeLimits(t *testing.T) {
	b := NewBus(Options{MaxSubscriptions: 2, MaxFilters: 2, MaxQueueLen: 4})
	if _, err := b.Subscribe("x", []string{"a/#/b"}, 0, nil); !errors.Is(err, ErrInvalidTopic) {
		t.Errorf("bad filter: %v", err)
	}
	if _, err := b.Subscribe("x", []string{"a", "b", "c"}, 0, nil); !errors.Is(err, ErrLimit) {
		t.Errorf("too many filters: %v", err)
	}
	for _, q := range []int{-1, 5} {
		if _, err := b.Subscribe("x", nil, q, nil); !errors.Is(err, ErrLimit) {
			t.Errorf("queue %d: %v", q, err)
		}
	}
	mustSub(t, b, "1", nil, 4, nil)
	s2 := mustSub(t, b, "2", nil, 0, nil)
	if c := s2.Stats().Capacity; c != 4 {
		t.Errorf("default queue length not clamped to MaxQueueLen: %d", c)
	}
	if _, err := b.Subscribe("3", nil, 0, nil); !errors.Is(err, ErrLimit) {
		t.Errorf("third subscription: %v", err)
	}
	s2.Close()
	mustSub(t, b, "3", nil, 0, nil)
}

func TestNotifyAndClose(t *testing.T) {
	b := NewBus(Options{})
	var calls atomic.Int32
	s := mustSub(t, b, "s", []string{"t"}, 2, func() { calls.Add(1) })
	for range 3 {
		_ = b.Publish("p", "t", nil)
	}
	if calls.Load() != 3 {
		t.Errorf("notify called %d times, want 3 (once per queued message, evictions included)", calls.Load())
	}
	_ = b.Publish("p", "other", nil)
	if calls.Load() != 3 {
		t.Errorf("notify called for a non-matching topic")
	}
	s.Close()
	s.Close()
	_ = b.Publish("p", "t", nil)
	if calls.Load() != 3 || s.Len() != 0 {
		t.Errorf("closed subscription still receives: notify=%d len=%d", calls.Load(), s.Len())
	}
	if _, ok := s.Next(); ok {
		t.Error("Next on a closed subscription returned a message")
	}
	if err := s.SetFilters([]string{"x"}); !errors.Is(err, ErrClosed) {
		t.Errorf("SetFilters after Close = %v, want ErrClosed", err)
	}
	if st := b.Stats(); st.Subscriptions != 0 || st.Unmatched != 2 {
		t.Errorf("Stats = %+v", st)
	}
}

// fakeUplink records what the bus hands it.
type fakeUplink struct {
	mu      sync.Mutex
	sent    []Message
	filters [][]string
	err     error
}

func (u *fakeUplink) Publish(topic string, payload []byte) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.err != nil {
		return u.err
	}
	u.sent = append(u.sent, Message{Topic: topic, Payload: payload})
	return nil
}

func (u *fakeUplink) SetSubscriptions(filters []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.filters = append(u.filters, filters)
}

func (u *fakeUplink) lastFilters() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.filters) == 0 {
		return nil
	}
	return u.filters[len(u.filters)-1]
}

var _ Uplink = (*fakeUplink)(nil)

func TestSetFiltersAndUnion(t *testing.T) {
	up := &fakeUplink{}
	b := NewBus(Options{Uplink: up})
	s1 := mustSub(t, b, "1", []string{"b/#", "a"}, 0, nil)
	s2 := mustSub(t, b, "2", []string{"a", "c/+"}, 0, nil)
	if got := up.lastFilters(); !slices.Equal(got, []string{"a", "b/#", "c/+"}) {
		t.Errorf("union = %q", got)
	}
	n := len(up.filters)
	mustSub(t, b, "3", []string{"a"}, 0, nil)
	if len(up.filters) != n {
		t.Errorf("uplink told about an unchanged union")
	}
	if err := s2.SetFilters([]string{"d"}); err != nil {
		t.Fatal(err)
	}
	if got := up.lastFilters(); !slices.Equal(got, []string{"a", "b/#", "d"}) {
		t.Errorf("union after SetFilters = %q", got)
	}
	if err := s2.SetFilters([]string{"d/#/x"}); !errors.Is(err, ErrInvalidTopic) {
		t.Errorf("bad SetFilters = %v", err)
	}
	s1.Close()
	if got := up.lastFilters(); !slices.Equal(got, []string{"a", "d"}) {
		t.Errorf("union after Close = %q", got)
	}
	// Live change: s2 now matches d, not c/x.
	b.Deliver(Message{Topic: "c/x"})
	b.Deliver(Message{Topic: "d", From: "mqtt"})
	if ms := drain(s2); len(ms) != 1 || ms[0].Topic != "d" || ms[0].From != "mqtt" {
		t.Errorf("after SetFilters got %+v", ms)
	}
}

func TestUplinkRouting(t *testing.T) {
	b := NewBus(Options{})
	s := mustSub(t, b, "s", []string{"t/#"}, 0, nil)
	up := &fakeUplink{}
	detach := b.SetUplink(up)
	if got := up.lastFilters(); !slices.Equal(got, []string{"t/#"}) {
		t.Errorf("SetUplink did not send the current union: %q", got)
	}
	buf := []byte("x")
	if err := b.Publish("p", "t/1", buf); err != nil {
		t.Fatal(err)
	}
	buf[0] = 'y'
	if s.Len() != 0 {
		t.Error("with an uplink, Publish delivered locally too")
	}
	if len(up.sent) != 1 || up.sent[0].Topic != "t/1" || string(up.sent[0].Payload) != "x" {
		t.Errorf("uplink got %+v", up.sent)
	}
	up.err = errors.New("queue gone")
	if err := b.Publish("p", "t/2", nil); !errors.Is(err, ErrUplink) {
		t.Errorf("Publish with failing uplink = %v, want ErrUplink", err)
	}
	if st := b.Stats(); st.UplinkErrors != 1 || st.Published != 1 {
		t.Errorf("Stats = %+v", st)
	}
	other := &fakeUplink{}
	detachOther := b.SetUplink(other)
	detach() // stale: must not remove the newer uplink
	_ = b.Publish("p", "t/3", nil)
	if len(other.sent) != 1 {
		t.Errorf("stale detach removed the current uplink")
	}
	detachOther()
	_ = b.Publish("p", "t/4", nil)
	if ms := drain(s); len(ms) != 1 || ms[0].Topic != "t/4" {
		t.Errorf("after detach got %+v, want local delivery of t/4", ms)
	}
}

// A subscriber that never drains must not slow the publisher or starve
// another subscriber: its queue stays at capacity and the excess is counted.
func TestStuckSubscriberDoesNotBlock(t *testing.T) {
	const n = 20000
	b := NewBus(Options{MaxQueueLen: n})
	stuck := mustSub(t, b, "stuck", []string{"#"}, 4, nil)
	wake := make(chan struct{}, 1)
	live := mustSub(t, b, "live", []string{"#"}, n, func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	got := make(chan int)
	go func() {
		count := 0
		for count < n {
			<-wake
			for {
				if _, ok := live.Next(); !ok {
					break
				}
				count++
			}
		}
		got <- count
	}()
	payload := make([]byte, 64)
	for range n {
		if err := b.Publish("p", "x/y", payload); err != nil {
			t.Fatal(err)
		}
	}
	if c := <-got; c != n {
		t.Errorf("live subscriber got %d, want %d", c, n)
	}
	if st := stuck.Stats(); st.Queued != 4 || st.Dropped != n-4 || st.Received != n {
		t.Errorf("stuck Stats = %+v", st)
	}
	if st := live.Stats(); st.Dropped != 0 {
		t.Errorf("live subscriber lost messages: %+v", st)
	}
}

// TestHammer races publishers, consumers, filter changes and subscription
// churn, then checks that the counters add up.
func TestHammer(t *testing.T) {
	b := NewBus(Options{MaxPayload: 64})
	const pubs, perPub = 4, 3000
	var taken atomic.Uint64
	stop := make(chan struct{})
	var consumers sync.WaitGroup
	subs := make([]*Subscription, 6)
	for i := range subs {
		wake := make(chan struct{}, 1)
		subs[i] = mustSub(t, b, fmt.Sprint("c", i), []string{fmt.Sprintf("h/%d/#", i%3), "h/all"}, 8, func() {
			select {
			case wake <- struct{}{}:
			default:
			}
		})
		consumers.Add(1)
		go func(s *Subscription) {
			defer consumers.Done()
			for {
				select {
				case <-stop:
					return
				case <-wake:
				}
				for {
					m, ok := s.Next()
					if !ok {
						break
					}
					if len(m.Payload) != 8 || !strings.HasPrefix(m.Topic, "h/") {
						t.Errorf("corrupt message %+v", m)
					}
					taken.Add(1)
				}
			}
		}(subs[i])
	}
	var churn sync.WaitGroup
	churn.Add(1)
	go func() { // subscription churn and live filter changes
		defer churn.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s, err := b.Subscribe("churn", []string{"h/+/x"}, 2, nil)
			if err != nil {
				t.Error(err)
				return
			}
			_ = s.SetFilters([]string{fmt.Sprintf("h/%d/#", i%3)})
			s.Next()
			s.Close()
			_ = subs[0].SetFilters([]string{fmt.Sprintf("h/%d/#", i%3), "h/all"})
		}
	}()
	var wg sync.WaitGroup
	for p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 8)
			for i := range perPub {
				buf[0] = byte(i) // reused buffer: the bus must have copied it
				topic := fmt.Sprintf("h/%d/x", (p+i)%4)
				if i%10 == 0 {
					topic = "h/all"
				}
				if err := b.Publish(fmt.Sprint("p", p), topic, buf); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	churn.Wait()
	consumers.Wait()

	st := b.Stats()
	if st.Published != pubs*perPub {
		t.Errorf("Published = %d, want %d", st.Published, pubs*perPub)
	}
	var received, dropped, queued uint64
	for _, s := range subs {
		ss := s.Stats()
		received += ss.Received
		dropped += ss.Dropped
		queued += uint64(ss.Queued)
		if ss.Queued > ss.Capacity {
			t.Errorf("%s over capacity: %+v", ss.Name, ss)
		}
	}
	if received != taken.Load()+dropped+queued {
		t.Errorf("received %d != taken %d + dropped %d + queued %d", received, taken.Load(), dropped, queued)
	}
	if st.Delivered < received || st.Dropped < dropped {
		t.Errorf("bus counters %+v below the sum over subscriptions (received %d, dropped %d)", st, received, dropped)
	}
	if st.Subscriptions != len(subs) {
		t.Errorf("Subscriptions = %d, want %d", st.Subscriptions, len(subs))
	}
}
