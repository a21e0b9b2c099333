// Package fleet is the device side of the fleet (SPEC section 8): an
// adapter that connects a managed device outbound to an MQTT v5 broker,
// publishes its status (retained, and as its will) and its reported state,
// and acts on the retained grants, desired states and images of its
// subtree. Every document goes through the same signer identification and
// the same authorizer as a CoAP request (device.Manager's Fleet* methods);
// this package only adds what is particular to the fleet: sequence
// numbers, device names, content-addressed images, health and reverts.
//
// One goroutine does all the work, in order; the MQTT reader only files
// each message under its topic (the newest per topic wins), so a flood of
// messages costs at most one pending message per topic.
package fleet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/fleet/doc"
	"github.com/tinycontainer/tinycontainer/internal/mqttc"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/store"
)

// Options configure an Agent.
type Options struct {
	URL      string            // broker, mqtt:// or mqtts://
	ID       string            // device id (doc.ValidID); the client id is tc-{ID}-fleet
	Labels   map[string]string // published in the status
	User     string            // broker user name, when set
	Password []byte
	TLS      *tls.Config
	Version  string // software version published in the status
	Logger   *slog.Logger
	// MinBackoff and MaxBackoff bound the reconnect delay [100ms, 10s].
	MinBackoff, MaxBackoff time.Duration
	// Tick is how often pending health is checked [100ms].
	Tick time.Duration
	// Heartbeat republishes the reported state (fresh counters) this often
	// when nothing else changed [60s].
	Heartbeat time.Duration
}

// Agent is a running fleet adapter.
type Agent struct {
	mg   *device.Manager
	kv   store.KV
	opts Options
	log  *slog.Logger
	cli  *mqttc.Client

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	wake   chan struct{}

	mu      sync.Mutex
	inbox   map[string][]byte // newest message per topic, not yet handled
	session uint64
	wantImg map[string]string // image topics subscribed to, by digest

	// Owned by the worker goroutine.
	st      *persisted
	pending map[string]*pendingHealth // by container
	images  map[string][]byte         // fetched images not yet installed, by digest
	// (wantImg is under mu: the connection callback reads it.)
	refusals  []doc.Refusal
	tenantErr map[string]string
	refused   map[string]uint64 // by tenant: the seq of the last desired state refused
	docSeq    uint64            // the seq of the desired state being handled (0: none)
	retry     map[string][]byte // desired states waiting for their tenant's grant, by tenant
	subConn   *mqttc.Conn       // the connection subscribed holds
	subImg    map[string]bool   // image digests subscribed to on subConn
	dirty     bool
	seq       uint64
	lastPub   time.Time
}

type pendingHealth struct {
	since  time.Time
	faults uint64
}

// Errors of the adapter.
var (
	ErrConfig = errors.New("fleet adapter: bad configuration")
)

// Check validates the id, labels and broker URL (ErrConfig).
func (opts Options) Check() error {
	if err := doc.ValidID(opts.ID); err != nil {
		return fmt.Errorf("%w: --id: %w", ErrConfig, err)
	}
	if err := doc.ValidLabels(opts.Labels); err != nil {
		return fmt.Errorf("%w: --label: %w", ErrConfig, err)
	}
	if _, err := mqttc.ParseURL(opts.URL); err != nil {
		return fmt.Errorf("%w: --fleet: %w", ErrConfig, err)
	}
	return nil
}

// Start validates opts, loads the adapter's state, applies the desired
// states accepted before (so a restarted device runs what it should even
// with the broker away) and starts connecting in the background.
func Start(mg *device.Manager, opts Options) (*Agent, error) {
	if err := opts.Check(); err != nil {
		return nil, err
	}
	if mg.Owner() == nil {
		return nil, fmt.Errorf("%w: a fleet device needs an owner key (--owner)", ErrConfig)
	}
	if opts.Tick <= 0 {
		opts.Tick = 100 * time.Millisecond
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = doc.DefaultHeartbeat
	}
	a := &Agent{mg: mg, kv: mg.Store(), opts: opts, log: opts.Logger, done: make(chan struct{}),
		wake: make(chan struct{}, 1), inbox: map[string][]byte{}, pending: map[string]*pendingHealth{},
		images: map[string][]byte{}, wantImg: map[string]string{}, tenantErr: map[string]string{}, refused: map[string]uint64{},
		retry: map[string][]byte{}}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	st, err := loadState(a.kv)
	if err != nil {
		return nil, err
	}
	a.st = st
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.restore()

	cfg := mqttc.ClientConfig{
		Config: mqttc.Config{URL: opts.URL, ClientID: "tc-" + opts.ID + "-fleet", TLS: opts.TLS,
			MaxPacketSize: doc.MaxImageSize + 64<<10, OnMessage: a.onMessage},
		MinBackoff: opts.MinBackoff, MaxBackoff: opts.MaxBackoff, Logger: a.log,
		WillFunc: a.will, OnConnect: a.onConnect,
	}
	if opts.User != "" {
		cfg.Username, cfg.Password, cfg.HasUser = opts.User, opts.Password, true
	}
	a.cli, err = mqttc.Start(cfg)
	if err != nil {
		a.cancel()
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	go a.run()
	return a, nil
}

// Close publishes the offline status, disconnects (the broker drops the
// will) and stops the adapter. The device keeps running what it runs.
func (a *Agent) Close() {
	a.cancel()
	<-a.done
	off, err := a.status(false)
	if err == nil {
		a.cli.Close(2*time.Second, off)
	} else {
		a.cli.Close(2 * time.Second)
	}
}

// Connected reports whether the adapter is connected to the broker.
func (a *Agent) Connected() bool { return a.cli.Stats().Connected }

// Stats are the adapter's connection counters.
func (a *Agent) Stats() mqttc.ClientStats { return a.cli.Stats() }

func (a *Agent) nextSession() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.session = max(a.session+1, uint64(time.Now().UnixNano()))
	return a.session
}

func (a *Agent) currentSession() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.session
}

// status is the status message; online false is the will and the clean
// shutdown's message.
func (a *Agent) status(online bool) (mqttc.Message, error) {
	b, err := doc.Status{ID: a.opts.ID, Online: online, Labels: a.opts.Labels, Version: a.opts.Version,
		Session: a.currentSession(), Time: time.Now().UTC(), Heartbeat: doc.Duration(a.opts.Heartbeat)}.Encode()
	return mqttc.Message{Topic: doc.StatusTopic(a.opts.ID), Payload: b, QoS: 1, Retain: true}, err
}

func (a *Agent) will() *mqttc.Message {
	a.nextSession()
	m, err := a.status(false)
	if err != nil {
		return nil
	}
	return &m
}

// onConnect runs on each connection: the birth status, then the
// subscriptions, whose retained messages are the catch-up.
func (a *Agent) onConnect(ctx context.Context, c *mqttc.Conn) error {
	on, err := a.status(true)
	if err != nil {
		return err
	}
	if err := c.Publish(ctx, on); err != nil {
		return err
	}
	filters := []mqttc.Filter{
		{Topic: doc.GrantFilter(a.opts.ID), QoS: 1},
		{Topic: doc.DesiredFilter(a.opts.ID), QoS: 1},
	}
	refused, err := c.Subscribe(ctx, filters)
	if err != nil {
		return err
	}
	for i, r := range refused {
		if r != nil {
			a.log.Warn("fleet: broker refused a subscription", "filter", filters[i].Topic)
		}
	}
	a.mu.Lock()
	a.inbox["\x00connected"] = nil // the worker republishes the reported state
	a.mu.Unlock()
	a.signal()
	return nil
}

func (a *Agent) signal() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// onMessage files a message under its topic (newest wins).
func (a *Agent) onMessage(m mqttc.Message) {
	a.mu.Lock()
	a.inbox[m.Topic] = m.Payload
	a.mu.Unlock()
	a.signal()
}

func (a *Agent) run() {
	defer close(a.done)
	tick := time.NewTicker(a.opts.Tick)
	defer tick.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-a.wake:
		case <-tick.C:
		}
		a.mu.Lock()
		batch := a.inbox
		a.inbox = map[string][]byte{}
		a.mu.Unlock()
		// Grants first: a desired state may need the key a grant brings.
		topics := slices.Sorted(maps.Keys(batch))
		slices.SortStableFunc(topics, func(x, y string) int { return rank(x) - rank(y) })
		for _, t := range topics {
			a.handle(t, batch[t])
		}
		a.syncImageSubs()
		a.checkHealth()
		a.publishReported()
	}
}

func rank(topic string) int {
	t, err := doc.ParseTopic(topic)
	if err != nil {
		return 0
	}
	switch t.Kind {
	case doc.TopicGrant:
		return 1
	case doc.TopicImage:
		return 2
	case doc.TopicDesired:
		return 3
	}
	return 4
}

// refuse records why a message was refused: in the reported state, the
// audit and the log. Nothing else changes.
func (a *Agent) refuse(topic, tenant string, err error) {
	reason := err.Error()
	if len(reason) > doc.MaxReasonLen {
		reason = reason[:doc.MaxReasonLen]
	}
	a.refusals = append(a.refusals, doc.Refusal{Time: time.Now().UTC(), Topic: topic, Reason: reason})
	if len(a.refusals) > doc.MaxRefusals {
		a.refusals = a.refusals[len(a.refusals)-doc.MaxRefusals:]
	}
	if tenant != "" {
		a.tenantErr[tenant] = reason
		if a.docSeq != 0 {
			a.refused[tenant] = a.docSeq
		}
	}
	a.mg.AuditFleet("fleet", "", tenant, topic+": "+reason)
	a.log.Warn("fleet: refused", "topic", topic, "reason", reason)
	a.dirty = true
}

func (a *Agent) handle(topic string, payload []byte) {
	if topic == "\x00connected" {
		a.dirty = true
		return
	}
	t, err := doc.ParseTopic(topic)
	if err != nil {
		a.refuse(topic, "", err)
		return
	}
	switch t.Kind {
	case doc.TopicGrant:
		if t.Device == a.opts.ID {
			a.handleGrant(topic, t.Tenant, payload)
			return
		}
	case doc.TopicDesired:
		if t.Device == a.opts.ID {
			a.handleDesired(topic, t.Tenant, payload, false)
			return
		}
	case doc.TopicImage:
		a.handleImage(topic, t, payload)
		return
	}
	a.refuse(topic, "", fmt.Errorf("%w: not a topic this device reads", doc.ErrNotForDevice))
}

func (a *Agent) save() {
	if err := saveState(a.kv, a.st); err != nil {
		a.log.Error("fleet: state not saved", "err", err)
	}
}

func (a *Agent) handleGrant(topic, tenant string, b []byte) {
	if len(b) == 0 {
		a.refuse(topic, tenant, fmt.Errorf("%w: empty retained message (a grant is revoked by a signed revocation)", doc.ErrMalformed))
		return
	}
	owner := a.mg.Owner()
	g, err := doc.OpenGrant(b, owner)
	if err != nil {
		a.refuse(topic, tenant, err)
		return
	}
	if err := g.CheckFor(a.opts.ID, tenant); err != nil {
		a.refuse(topic, tenant, err)
		return
	}
	digest := doc.Digest(b)
	last := a.st.Grants[tenant]
	dup, err := doc.CheckSeq(last.Seq, last.Digest, g.Seq, digest)
	if err != nil {
		a.refuse(topic, tenant, err)
		return
	}
	if dup {
		return
	}
	keyID, verify := device.FleetVerifier(owner)
	if g.Revoke {
		err = a.mg.FleetRevoke(keyID, verify, tenant)
	} else {
		err = a.mg.FleetGrant(keyID, verify, tenant, g.Grant)
	}
	if err != nil {
		a.refuse(topic, tenant, err)
		return
	}
	a.st.Grants[tenant] = mark{Seq: g.Seq, Digest: digest}
	if g.Revoke {
		a.st.Revoked[tenant] = true
	} else {
		delete(a.st.Revoked, tenant)
	}
	delete(a.tenantErr, tenant)
	a.save()
	a.dirty = true
	a.log.Info("fleet: grant applied", "tenant", tenant, "seq", g.Seq, "revoke", g.Revoke)
	if raw, ok := a.retry[tenant]; ok {
		delete(a.retry, tenant)
		a.handleDesired(doc.DesiredTopic(a.opts.ID, tenant), tenant, raw, false)
	} else if !g.Revoke {
		a.reconcile(tenant)
	}
}

// handleDesired checks and accepts a desired state, then reconciles the
// tenant's containers with it. stored: b comes from the store (a restart),
// already accepted.
func (a *Agent) handleDesired(topic, tenant string, b []byte, stored bool) {
	if len(b) == 0 {
		a.refuse(topic, tenant, fmt.Errorf("%w: empty retained message (a tenant's containers are removed by a signed desired state without them)", doc.ErrMalformed))
		return
	}
	if a.st.Revoked[tenant] {
		a.refuse(topic, tenant, fmt.Errorf("%w: tenant %q is revoked on this device", mgmt.ErrDenied, tenant))
		return
	}
	key, ok := a.mg.TenantKey(tenant)
	if !ok {
		a.retry[tenant] = b
		a.refuse(topic, tenant, fmt.Errorf("%w: tenant %q has no grant on this device yet", mgmt.ErrDenied, tenant))
		return
	}
	d, err := doc.OpenDesired(b, key)
	if err != nil {
		a.refuse(topic, tenant, err)
		return
	}
	a.docSeq = d.Seq
	defer func() { a.docSeq = 0 }()
	if err := d.CheckFor(a.opts.ID, tenant); err != nil {
		a.refuse(topic, tenant, err)
		return
	}
	digest := doc.Digest(b)
	if !stored {
		last := a.st.Desired[tenant]
		dup, err := doc.CheckSeq(last.Seq, last.Digest, d.Seq, digest)
		if err != nil {
			a.refuse(topic, tenant, err)
			return
		}
		if !dup {
			if len(b) > maxKVValue {
				a.refuse(topic, tenant, fmt.Errorf("%w: desired state of %d bytes is above the %d this device keeps", mgmt.ErrTooLarge, len(b), maxKVValue))
				return
			}
			if err := a.kv.Put(kvSpace, kvDesired+tenant, b, kvQuota); err != nil {
				a.refuse(topic, tenant, fmt.Errorf("%w: desired state not stored: %w", mgmt.ErrUnavailable, err))
				return
			}
			a.st.Desired[tenant] = mark{Seq: d.Seq, Digest: digest}
			delete(a.tenantErr, tenant)
			a.save()
			a.log.Info("fleet: desired state accepted", "tenant", tenant, "seq", d.Seq)
		}
	}
	a.mg.SetFleetManaged(tenant, true)
	a.dirty = true
	a.reconcileWith(tenant, d)
}

// restore re-applies the stored desired states at start.
func (a *Agent) restore() {
	// A revocation outlives restarts: the tenant's grant is still in the
	// store, so it is revoked again before anything else.
	keyID, verify := device.FleetVerifier(a.mg.Owner())
	for tenant := range a.st.Revoked {
		if err := a.mg.FleetRevoke(keyID, verify, tenant); err != nil {
			a.log.Error("fleet: revocation not re-applied", "tenant", tenant, "err", err)
		}
	}
	for tenant := range a.st.Desired {
		a.mg.SetFleetManaged(tenant, true)
		b, err := a.kv.Get(kvSpace, kvDesired+tenant)
		if err != nil {
			continue
		}
		a.handleDesired(doc.DesiredTopic(a.opts.ID, tenant), tenant, b, true)
	}
	a.dirty = true
}

func (a *Agent) reconcile(tenant string) {
	if _, ok := a.st.Desired[tenant]; !ok {
		return
	}
	b, err := a.kv.Get(kvSpace, kvDesired+tenant)
	if err != nil {
		return
	}
	a.handleDesired(doc.DesiredTopic(a.opts.ID, tenant), tenant, b, true)
}

func (a *Agent) handleImage(topic string, t doc.Topic, b []byte) {
	a.mu.Lock()
	_, wanted := a.wantImg[t.Digest]
	a.mu.Unlock()
	if !wanted {
		return // an image already installed, or not asked for: nothing to do
	}
	if len(b) == 0 {
		a.refuse(topic, t.Tenant, fmt.Errorf("%w: empty image message", doc.ErrMalformed))
		return
	}
	if err := doc.CheckDigest(b, t.Digest); err != nil {
		a.refuse(topic, t.Tenant, err)
		return
	}
	a.images[t.Digest] = b
	a.unwantImage(t.Digest)
	a.reconcile(t.Tenant)
}
