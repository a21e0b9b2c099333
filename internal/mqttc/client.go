package mqttc

import (
	"context"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// ClientConfig describes a connection kept alive by a Client.
type ClientConfig struct {
	Config
	MinBackoff time.Duration // first reconnect delay [100ms]
	MaxBackoff time.Duration // reconnect delay cap [10s]
	Logger     *slog.Logger  // connects and disconnects are logged here [discarded]
	// OnConnect runs after each successful connection, before the Client
	// reports itself connected: subscribe, publish a birth message. An
	// error drops the connection and counts as a failed attempt.
	OnConnect func(ctx context.Context, c *Conn) error
	// Will, when set, is computed afresh for each connection (for a
	// session number); it overrides Config.Will.
	WillFunc func() *Message
}

// ClientStats are a Client's counters.
type ClientStats struct {
	Connected     bool
	Connects      uint64 // successful connections
	ConnectErrors uint64 // failed attempts
	Disconnects   uint64 // connections lost after they succeeded
	LastError     string // why the last attempt or connection failed; "" once connected again
}

// Client keeps one connection to a broker alive, reconnecting with
// jittered exponential backoff, from Start until Close. It never needs
// the broker to be up when it starts.
type Client struct {
	cfg    ClientConfig
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu           sync.Mutex
	conn         *Conn // nil while disconnected
	up           chan struct{}
	lastErr      error
	closing      bool
	final        []Message // published by the connection loop on Close
	finalTimeout time.Duration

	connects, connectErrors, disconnects atomic.Uint64
}

// Start validates cfg and starts connecting in the background.
func Start(cfg ClientConfig) (*Client, error) {
	if _, err := ParseURL(cfg.URL); err != nil {
		return nil, err
	}
	if cfg.ClientID == "" {
		return nil, fmt.Errorf("%w: a client id is required", ErrConnect)
	}
	cfg.MinBackoff = orDefault(cfg.MinBackoff, 100*time.Millisecond)
	cfg.MaxBackoff = max(orDefault(cfg.MaxBackoff, 10*time.Second), cfg.MinBackoff)
	c := &Client{cfg: cfg, log: cfg.Logger, done: make(chan struct{}), up: make(chan struct{})}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.run()
	return c, nil
}

// Conn returns the live connection, or nil while disconnected.
func (c *Client) Conn() *Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn
}

// Publish sends m on the live connection; ErrNotConnected while there is
// none (the caller decides whether to queue or retry).
func (c *Client) Publish(ctx context.Context, m Message) error {
	conn := c.Conn()
	if conn == nil {
		return ErrNotConnected
	}
	return conn.Publish(ctx, m)
}

// WaitConnected waits until the client is connected (OnConnect done).
func (c *Client) WaitConnected(ctx context.Context) error {
	for {
		c.mu.Lock()
		conn, up := c.conn, c.up
		c.mu.Unlock()
		if conn != nil {
			return nil
		}
		select {
		case <-up:
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrNotConnected, ctx.Err())
		case <-c.done:
			return ErrClosed
		}
	}
}

// Stats returns a snapshot of the counters.
func (c *Client) Stats() ClientStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := ClientStats{Connected: c.conn != nil, Connects: c.connects.Load(), ConnectErrors: c.connectErrors.Load(),
		Disconnects: c.disconnects.Load()}
	if c.lastErr != nil {
		s.LastError = c.lastErr.Error()
	}
	return s
}

// Close stops reconnecting. If connected, it first publishes final (each
// bounded by timeout; for example an "offline" status) and disconnects
// normally, so the broker does not publish the will. Close is idempotent.
func (c *Client) Close(timeout time.Duration, final ...Message) {
	c.mu.Lock()
	if !c.closing {
		c.closing, c.final, c.finalTimeout = true, final, timeout
	}
	c.mu.Unlock()
	c.cancel()
	<-c.done
}

// sendFinal publishes the messages Close was given on conn, then
// disconnects normally. It runs on the connection loop, so a connection
// that completes while Close is called still says goodbye.
func (c *Client) sendFinal(conn *Conn) {
	c.mu.Lock()
	final, timeout := c.final, c.finalTimeout
	c.mu.Unlock()
	if len(final) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		for _, m := range final {
			if err := conn.Publish(ctx, m); err != nil {
				c.log.Warn("mqtt: final message not sent", "topic", m.Topic, "err", err)
				break
			}
		}
		cancel()
	}
	conn.Disconnect()
}

// Done is closed once Close has finished.
func (c *Client) Done() <-chan struct{} { return c.done }

func (c *Client) run() {
	defer close(c.done)
	backoff := c.cfg.MinBackoff
	for {
		conn, err := c.connect()
		if err == nil {
			backoff = c.cfg.MinBackoff
			select {
			case <-conn.Done():
				err = conn.Err()
				c.disconnects.Add(1)
				c.log.Warn("mqtt: disconnected from the broker", "broker", c.cfg.URL, "client", c.cfg.ClientID, "err", err)
			case <-c.ctx.Done():
				c.sendFinal(conn)
			}
			c.mu.Lock()
			c.conn = nil
			c.up = make(chan struct{})
			if err != nil {
				c.lastErr = err
			}
			c.mu.Unlock()
		} else {
			c.connectErrors.Add(1)
			c.mu.Lock()
			c.lastErr = err
			c.mu.Unlock()
			if c.connectErrors.Load() == 1 || c.connectErrors.Load()%10 == 0 {
				c.log.Warn("mqtt: cannot connect, retrying", "broker", c.cfg.URL, "client", c.cfg.ClientID, "err", err)
			}
		}
		if c.ctx.Err() != nil {
			return
		}
		// Jitter spreads the reconnects of many devices after a broker restart.
		wait := backoff/2 + mrand.N(backoff/2+1)
		t := time.NewTimer(wait)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
}

func (c *Client) connect() (*Conn, error) {
	cfg := c.cfg.Config
	if c.cfg.WillFunc != nil {
		cfg.Will = c.cfg.WillFunc()
	}
	conn, err := Dial(c.ctx, cfg)
	if err != nil {
		return nil, err
	}
	if c.cfg.OnConnect != nil {
		if err := c.cfg.OnConnect(c.ctx, conn); err != nil {
			conn.Close()
			return nil, err
		}
	}
	c.mu.Lock()
	c.connects.Add(1)
	c.conn = conn
	c.lastErr = nil
	close(c.up)
	c.mu.Unlock()
	c.log.Info("mqtt: connected to the broker", "broker", c.cfg.URL, "client", c.cfg.ClientID)
	return conn, nil
}
