package ctl

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tinycontainer/tinycontainer/fleet/doc"
	"github.com/tinycontainer/tinycontainer/internal/mqttc"
)

// Options say how to reach the broker and how long retained state takes
// to settle.
type Options struct {
	Broker   string // mqtt://host:port (see package mqttc)
	User     string // "" : none (or the URL's)
	Password []byte
	// ClientID defaults to tc-ctl-HOST-PID-RANDOM: every controller has its
	// own, and it names the controller in a rollout's lease.
	ClientID string
	// Settle is the quiet period that ends a read: MQTT has no marker for
	// the end of the retained messages a subscription brings, so a read
	// waits until none has arrived for this long [500ms].
	Settle time.Duration
	// Timeout bounds the first connection and each settle [10s].
	Timeout time.Duration
	Logger  *slog.Logger
	// Clock is this controller's clock [time.Now]: the times it writes
	// (lease, progress, sequence numbers) and how it judges other
	// controllers' leases. Tests skew it.
	Clock func() time.Time
}

func (o *Options) defaults() {
	if o.Settle <= 0 {
		o.Settle = 500 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.ClientID == "" {
		host, _ := os.Hostname()
		host = strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
				return r
			}
			return '-'
		}, host)
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		o.ClientID = fmt.Sprintf("tc-ctl-%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
}

// Fleet is a live view of a fleet's retained state on a broker: device
// status and reported state, and whatever else was watched (desired
// states of a tenant, rollouts). Every connection subscribes afresh, so
// after the broker comes back the view catches up from its retained
// messages.
type Fleet struct {
	opts Options
	cli  *mqttc.Client

	mu       sync.Mutex
	filters  []string
	status   map[string]deviceStatus
	reported map[string]doc.Reported
	desired  map[string][]byte      // topic -> payload
	grants   map[string][]byte      // topic -> payload
	rollouts map[string][]byte      // tenant/id -> payload
	leases   map[string]leaseWatch  // tenant/id -> its lease as this controller saw it arrive
	taps     map[string]chan []byte // rollout id -> every copy received (of any tenant), for its driver
	last     time.Time              // last message or subscription
	bad      uint64                 // messages that did not decode
	badWhy   string
	conns    uint64
	changed  chan struct{}
}

type deviceStatus struct {
	doc.Status
	seen time.Time // when this controller last heard from the device
}

// Open connects to the broker, subscribes to every device's status and
// reported state and to filters, and waits for the retained state to
// settle. The view stays live until Close.
func Open(ctx context.Context, opts Options, filters ...string) (*Fleet, error) {
	f := newFleet(opts, filters...)
	opts = f.opts
	cfg := mqttc.ClientConfig{
		Config: mqttc.Config{URL: opts.Broker, ClientID: opts.ClientID, MaxPacketSize: 2 << 20, ReceiveMaximum: 1024,
			KeepAlive: 15 * time.Second, OnMessage: f.onMessage},
		MaxBackoff: 2 * time.Second,
		Logger:     opts.Logger,
		OnConnect:  f.onConnect,
	}
	if opts.User != "" {
		cfg.Username, cfg.Password, cfg.HasUser = opts.User, opts.Password, true
	}
	cli, err := mqttc.Start(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInput, err)
	}
	f.cli = cli
	wctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	if err := cli.WaitConnected(wctx); err != nil {
		why := cli.Stats().LastError
		cli.Close(time.Second)
		if why == "" {
			why = err.Error()
		}
		return nil, fmt.Errorf("%w: %s: %s", ErrBroker, opts.Broker, why)
	}
	if err := f.Settle(ctx); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// newFleet is an empty view, not yet connected.
func newFleet(opts Options, filters ...string) *Fleet {
	opts.defaults()
	return &Fleet{
		opts: opts, filters: append([]string{doc.AllStatusFilter, doc.AllReportedFilter}, filters...),
		status: map[string]deviceStatus{}, reported: map[string]doc.Reported{}, desired: map[string][]byte{},
		grants: map[string][]byte{}, rollouts: map[string][]byte{}, leases: map[string]leaseWatch{}, taps: map[string]chan []byte{},
		changed: make(chan struct{}, 1),
	}
}

// ClientID is this controller's MQTT client id.
func (f *Fleet) ClientID() string { return f.opts.ClientID }

// Close disconnects.
func (f *Fleet) Close() { f.cli.Close(2 * time.Second) }

func (f *Fleet) onConnect(ctx context.Context, c *mqttc.Conn) error {
	f.mu.Lock()
	filters := slices.Clone(f.filters)
	f.conns++
	f.mu.Unlock()
	return subscribe(ctx, c, filters)
}

func subscribe(ctx context.Context, c *mqttc.Conn, filters []string) error {
	req := make([]mqttc.Filter, len(filters))
	for i, t := range filters {
		req[i] = mqttc.Filter{Topic: t, QoS: 1}
	}
	refused, err := c.Subscribe(ctx, req)
	if err != nil {
		return err
	}
	return errors.Join(refused...)
}

// Watch subscribes to more filters (now and at every reconnection) and
// waits for their retained state to settle.
func (f *Fleet) Watch(ctx context.Context, filters ...string) error {
	f.mu.Lock()
	var add []string
	for _, t := range filters {
		if !slices.Contains(f.filters, t) {
			add = append(add, t)
		}
	}
	f.filters = append(f.filters, add...)
	f.last = time.Now()
	f.mu.Unlock()
	if len(add) == 0 {
		return nil
	}
	if c := f.cli.Conn(); c != nil {
		if err := subscribe(ctx, c, add); err != nil {
			return fmt.Errorf("%w: subscribe: %w", ErrBroker, err)
		}
	}
	return f.Settle(ctx)
}

// Settle waits until connected and no message has arrived for the quiet
// period (Options.Settle), at most Options.Timeout.
func (f *Fleet) Settle(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, f.opts.Timeout+f.opts.Settle)
	defer cancel()
	if err := f.cli.WaitConnected(ctx); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBroker, f.opts.Broker, err)
	}
	f.mu.Lock()
	if f.last.IsZero() {
		f.last = time.Now()
	}
	f.mu.Unlock()
	for {
		f.mu.Lock()
		quiet := time.Until(f.last.Add(f.opts.Settle))
		f.mu.Unlock()
		if quiet <= 0 {
			return nil
		}
		t := time.NewTimer(quiet)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: retained state did not settle: %w", ErrBroker, ctx.Err())
		case <-t.C:
		}
	}
}

// Changed is signalled (without blocking; one pending signal at most)
// after every change to the view.
func (f *Fleet) Changed() <-chan struct{} { return f.changed }

// Connected reports whether the broker connection is up.
func (f *Fleet) Connected() bool { return f.cli.Conn() != nil }

// now is this controller's clock.
func (f *Fleet) now() time.Time { return f.opts.Clock() }

func (f *Fleet) onMessage(m mqttc.Message) {
	now := f.now()
	t, err := doc.ParseTopic(m.Topic)
	var lease *Lease
	if err == nil && t.Kind == doc.TopicRollout && len(m.Payload) > 0 {
		// Decoded outside the lock; the signatures are the reader's to
		// check: this only times the lease for the view.
		if r, err := OpenRollout(m.Payload, nil); err == nil {
			lease = &r.Lease
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last = time.Now()
	defer func() {
		select {
		case f.changed <- struct{}{}:
		default:
		}
	}()
	if err != nil {
		f.bad++
		f.badWhy = err.Error()
		return
	}
	key := ""
	switch t.Kind {
	case doc.TopicStatus:
		if len(m.Payload) == 0 {
			delete(f.status, t.Device)
			return
		}
		s, err := doc.DecodeStatus(m.Payload)
		if err != nil || s.ID != t.Device {
			f.noteBad(m.Topic, err)
			return
		}
		// A late will of an older connection does not undo a newer birth.
		if old, ok := f.status[t.Device]; ok && old.Online && !s.Online && s.Session < old.Session {
			return
		}
		f.status[t.Device] = deviceStatus{Status: s, seen: now}
		return
	case doc.TopicReported:
		if len(m.Payload) == 0 {
			delete(f.reported, t.Device)
			return
		}
		r, err := doc.DecodeReported(m.Payload)
		if err != nil || r.ID != t.Device {
			f.noteBad(m.Topic, err)
			return
		}
		f.reported[t.Device] = r
		if s, ok := f.status[t.Device]; ok {
			s.seen = now
			f.status[t.Device] = s
		}
		return
	case doc.TopicDesired:
		key = m.Topic
		setOrDelete(f.desired, key, m.Payload)
	case doc.TopicGrant:
		key = m.Topic
		setOrDelete(f.grants, key, m.Payload)
	case doc.TopicRollout:
		key := t.Tenant + "/" + t.Rollout
		setOrDelete(f.rollouts, key, m.Payload)
		if w, ok := f.leases[key]; ok && lease != nil {
			w.see(*lease, now)
			f.leases[key] = w
		} else if lease != nil {
			f.leases[key] = watchLease(*lease, now)
		} else {
			delete(f.leases, key)
		}
		if tap, ok := f.taps[t.Rollout]; ok && len(m.Payload) > 0 {
			select {
			case tap <- m.Payload:
			default: // the driver is far behind; it still sees the latest copy
			}
		}
	}
}

// tap returns every copy of the messages of rollout id (of any tenant:
// the driver checks the signature) received from now on.
func (f *Fleet) tap(id string) <-chan []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.taps[id]; !ok {
		f.taps[id] = make(chan []byte, 256)
	}
	return f.taps[id]
}

func setOrDelete(m map[string][]byte, k string, v []byte) {
	if len(v) == 0 {
		delete(m, k)
		return
	}
	m[k] = v
}

func (f *Fleet) noteBad(topic string, err error) {
	f.bad++
	if err == nil {
		err = errors.New("names another device than its topic")
	}
	f.badWhy = topic + ": " + err.Error()
}

// publish sends a retained message (QoS 1) and waits for the broker's
// acknowledgement.
func (f *Fleet) publish(ctx context.Context, topic string, payload []byte) error {
	ctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	if err := f.cli.Publish(ctx, mqttc.Message{Topic: topic, Payload: payload, QoS: 1, Retain: true}); err != nil {
		return fmt.Errorf("%w: %w", ErrBroker, err)
	}
	return nil
}
