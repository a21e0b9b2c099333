package coap

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	piondtls "github.com/pion/dtls/v3"
	dtlsnet "github.com/pion/dtls/v3/pkg/net"
	"github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	"github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// ClientOptions configures Dial. Zero values take the defaults given.
type ClientOptions struct {
	// Timeout bounds each query when ctx has no earlier deadline, and the
	// reachability check of Dial; default 10 s.
	Timeout time.Duration
	// UploadTimeout bounds Deploy and Exec, whose bodies may take many
	// block round trips; default 2 min.
	UploadTimeout time.Duration
	// MaxResponse caps a reassembled response body; a device sending more
	// is treated as hostile and the connection is closed; default 4 MiB.
	MaxResponse int64
	// WatchBuffer is the capacity of WatchLogs channels; default 256.
	WatchBuffer int
	// PSK and PSKIdentity, when PSK is set, make the client speak CoAP
	// over DTLS 1.2 to a server with the same ServerOptions.
	PSK         []byte
	PSKIdentity string
}

func (o ClientOptions) withDefaults() ClientOptions {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.UploadTimeout <= 0 {
		o.UploadTimeout = 2 * time.Minute
	}
	if o.MaxResponse <= 0 {
		o.MaxResponse = 4 << 20
	}
	if o.WatchBuffer <= 0 {
		o.WatchBuffer = 256
	}
	return o
}

// keepAlive is the idle time after which the client pings the device; it
// is well below ServerOptions.IdleTimeout so that observations survive
// quiet periods.
const keepAlive = 30 * time.Second

// midBudget is how many message IDs the client spends on one endpoint (one
// UDP socket) before it moves new exchanges to a fresh one. RFC 7252
// section 4.4 forbids reusing a message ID towards a peer within
// EXCHANGE_LIFETIME (247 s); the ID has 16 bits, so a busy client would
// wrap it well within that (and the device would answer its requests as
// duplicates). A fresh socket is a fresh endpoint with an ID space of its
// own, so the client never waits. The budget is a quarter of the space:
// the count is an estimate (requests and block continuations; keep-alive
// pings and retransmissions not counted exactly).
const midBudget = 1 << 14

// Client is a mgmt.Device reached over CoAP.
type Client struct {
	addr      string
	opts      ClientOptions
	tooLarge  atomic.Bool // the device sent a response beyond MaxResponse
	midBudget int

	mu     sync.Mutex
	cur    *endpointConn // where new exchanges go
	closed bool
	all    map[*endpointConn]struct{}

	// reads are the GETs in progress by token: each block of a
	// block-wise response must carry the ETag of the first (see
	// checkBlock).
	readsMu sync.Mutex
	reads   map[string]*read
	// restarts counts reads begun again because the representation
	// changed between blocks (tests).
	restarts atomic.Uint64
	// blockHook, when set (tests only), sees the number of each Block2
	// response block as it arrives, before it is checked.
	blockHook atomic.Pointer[func(num int64)]
}

// read is a GET in progress: the ETag of its first response block, and
// how to end it when a later block carries another.
type read struct {
	seen   bool
	tagged bool
	etag   []byte
	cancel context.CancelCauseFunc
}

// maxRestarts is how many times a read begins again when the device's
// representation changes between blocks before the call fails.
const maxRestarts = 4

// errChanged ends a read whose blocks belong to different representations.
var errChanged = errors.New("the representation changed during a block-wise transfer")

// endpointConn is one UDP socket (one CoAP endpoint) to the device.
type endpointConn struct {
	cc      *client.Conn
	mids    int  // message IDs spent (estimate)
	users   int  // exchanges and observations in progress
	retired bool // no new exchanges; closed once users is 0
	// refused is cancelled when the device's host answered a datagram with
	// "port unreachable": nothing listens there, no need to wait.
	refused context.Context
	refuse  context.CancelFunc
}

var _ mgmt.Device = (*Client)(nil)

// errBadResponse marks a response that does not decode.
var errBadResponse = errors.New("malformed response from device")

// errRefused is the cause of an exchange ended by "connection refused".
var errRefused = errors.New("connection refused: nothing listens at that address")

// Dial connects to the device at the UDP address addr and checks that it
// answers (a CoAP ping) within ctx and opts.Timeout.
func Dial(ctx context.Context, addr string, opts ClientOptions) (*Client, error) {
	opts = opts.withDefaults()
	c := &Client{addr: addr, opts: opts, midBudget: midBudget, all: map[*endpointConn]struct{}{},
		reads: map[string]*read{}}
	pctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	ep, err := c.dialEndpoint(pctx)
	if err != nil {
		return nil, fmt.Errorf("%w: dial %s: %w", mgmt.ErrUnavailable, addr, err)
	}
	c.cur = ep
	c.all[ep] = struct{}{}
	ep.mids++
	pctx, pcancel := context.WithCancelCause(pctx)
	defer pcancel(nil)
	stop := context.AfterFunc(ep.refused, func() { pcancel(errRefused) })
	defer stop()
	if err := ep.cc.Ping(pctx); err != nil {
		_ = c.Close()
		if cause := context.Cause(pctx); errors.Is(cause, errRefused) {
			err = cause
		}
		return nil, fmt.Errorf("%w: device at %s does not answer: %w", mgmt.ErrUnavailable, addr, err)
	}
	return c, nil
}

// dialEndpoint opens a socket to the device.
func (c *Client) dialEndpoint(ctx context.Context) (*endpointConn, error) {
	ep := &endpointConn{}
	ep.refused, ep.refuse = context.WithCancel(context.Background())
	copts := []udp.Option{
		options.WithBlockwise(true, blockSZX, c.opts.UploadTimeout),
		options.WithKeepAlive(3, 4*keepAlive, func(cc *client.Conn) { _ = cc.Close() }),
		options.WithRequestMonitor(func(cc *client.Conn, m *pool.Message) (bool, error) { return c.monitor(ep, m) }),
		// go-coap's default prints transport errors on stdout, where they
		// would corrupt --json output; the client reports them as errors
		// of the calls instead.
		options.WithErrors(func(err error) {
			if errors.Is(err, syscall.ECONNREFUSED) {
				ep.refuse()
			}
		}),
	}
	var err error
	if c.opts.PSK == nil {
		ep.cc, err = udp.Dial(c.addr, copts...)
	} else {
		ep.cc, err = dialDTLS(ctx, c.addr, c.opts, copts)
	}
	if err != nil {
		ep.refuse()
		return nil, err
	}
	go func() {
		<-ep.cc.Done()
		ep.refuse()
	}()
	return ep, nil
}

// acquire returns the endpoint for an exchange that spends mids message
// IDs, moving to a fresh endpoint when the current one has spent its
// budget. release must follow.
func (c *Client) acquire(ctx context.Context, mids int) (*endpointConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("%w: client closed", mgmt.ErrUnavailable)
	}
	if c.cur.mids+mids > c.midBudget {
		ep, err := c.dialEndpoint(ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: dial %s: %w", mgmt.ErrUnavailable, c.addr, err)
		}
		old := c.cur
		old.retired = true
		if old.users == 0 {
			c.closeEndpoint(old)
		}
		c.cur = ep
		c.all[ep] = struct{}{}
	}
	ep := c.cur
	ep.users++
	ep.mids += mids
	return ep, nil
}

func (c *Client) release(ep *endpointConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ep.users--
	if ep.retired && ep.users == 0 {
		c.closeEndpoint(ep)
	}
}

// closeEndpoint closes ep in the background (go-coap's Close waits for
// its goroutines); c.mu held.
func (c *Client) closeEndpoint(ep *endpointConn) {
	delete(c.all, ep)
	go func() {
		_ = ep.cc.Close()
		<-ep.cc.Done()
	}()
}

// endpoints is how many sockets the client has open (tests).
func (c *Client) endpoints() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.all)
}

// dialDTLS does the DTLS handshake within ctx (go-coap's own Dial leaves it
// to the first write, which does not honour a context) and then wraps the
// session in a CoAP connection.
func dialDTLS(ctx context.Context, addr string, opts ClientOptions, copts []udp.Option) (*client.Conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return nil, err
	}
	key := bytes.Clone(opts.PSK)
	conn, err := piondtls.ClientWithOptions(dtlsnet.PacketConnFromConn(raw), raw.RemoteAddr(),
		piondtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
		piondtls.WithPSKIdentityHint([]byte(opts.PSKIdentity)),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8),
	)
	if err != nil {
		_ = raw.Close()
		return nil, err
	}
	if err := conn.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		_ = raw.Close()
		return nil, fmt.Errorf("DTLS handshake: %w", err)
	}
	return dtls.Client(conn, append(copts, options.WithCloseSocket())...), nil
}

// Close ends every connection and every observation on them.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	eps := make([]*endpointConn, 0, len(c.all))
	for ep := range c.all {
		eps = append(eps, ep)
	}
	clear(c.all)
	c.mu.Unlock()
	var errs []error
	for _, ep := range eps {
		errs = append(errs, ep.cc.Close())
		<-ep.cc.Done()
	}
	return errors.Join(errs...)
}

// monitor counts the message IDs block-wise continuations spend, and
// refuses responses that would grow past MaxResponse: go-coap reassembles
// Block2 transfers without a limit. Returning an error closes the
// connection, which fails the waiting call at once.
func (c *Client) monitor(ep *endpointConn, m *pool.Message) (bool, error) {
	if m.Type() == message.Acknowledgement {
		for _, id := range []message.OptionID{message.Block1, message.Block2} {
			if v, err := m.GetOptionUint32(id); err == nil {
				if _, num, _, err := blockwise.DecodeBlockOption(v); err == nil && num > 0 {
					c.mu.Lock()
					ep.mids++
					c.mu.Unlock()
				}
			}
		}
	}
	v, err := m.GetOptionUint32(message.Block2)
	if err != nil || m.Code() < codes.Created {
		return false, nil
	}
	szx, num, _, err := blockwise.DecodeBlockOption(v)
	if err != nil {
		return true, nil // go-coap would refuse it too; just drop it
	}
	if hook := c.blockHook.Load(); hook != nil {
		(*hook)(num)
	}
	if !c.checkBlock(m) {
		return true, nil // the read has been ended: it begins again
	}
	n, _ := m.BodySize()
	if num*szx.Size()+n > c.opts.MaxResponse {
		c.tooLarge.Store(true)
		return false, fmt.Errorf("%w: response beyond %d bytes", mgmt.ErrTooLarge, c.opts.MaxResponse)
	}
	return false, nil
}

// checkBlock reports whether a Block2 response block belongs to the same
// representation as the first block of its read (same ETag, or none on
// both). When not, the read is ended with errChanged (getAs begins it
// again) and the block must be dropped: go-coap would otherwise glue it
// to the blocks before, which may come from another rendering of the
// resource (RFC 7959 section 2.4). go-coap restarts on a changed ETag
// itself, but neither without bound nor when one block has none.
func (c *Client) checkBlock(m *pool.Message) bool {
	etag, err := m.GetOptionBytes(message.ETag)
	tagged := err == nil
	c.readsMu.Lock()
	defer c.readsMu.Unlock()
	r, ok := c.reads[string(m.Token())]
	if !ok {
		return true
	}
	if !r.seen {
		r.seen, r.tagged, r.etag = true, tagged, bytes.Clone(etag)
		return true
	}
	if r.tagged == tagged && bytes.Equal(r.etag, etag) {
		return true
	}
	r.cancel(errChanged)
	return false
}

// transportErr classifies a failure to exchange messages with the device.
func (c *Client) transportErr(err error) error {
	if c.tooLarge.Load() {
		return fmt.Errorf("%w: device at %s sent a response beyond %d bytes", mgmt.ErrTooLarge, c.addr, c.opts.MaxResponse)
	}
	return fmt.Errorf("%w: device at %s: %w", mgmt.ErrUnavailable, c.addr, err)
}

// result reads a response: the body of a success, or a RemoteError.
func result(resp *pool.Message) ([]byte, error) {
	var body []byte
	if resp.Body() != nil {
		b, err := resp.ReadBody()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errBadResponse, err)
		}
		body = b
	}
	if resp.Code() < codes.Created || resp.Code() >= codes.BadRequest {
		return nil, errorFrom(resp.Code(), string(body))
	}
	return body, nil
}

// exchange runs one request on an endpoint, within timeout, failing at
// once when the device's host refuses the datagrams.
func (c *Client) exchange(ctx context.Context, timeout time.Duration, mids int, do func(ctx context.Context, cc *client.Conn) (*pool.Message, error)) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ep, err := c.acquire(ctx, mids)
	if err != nil {
		return nil, err
	}
	defer c.release(ep)
	ctx, cancelCause := context.WithCancelCause(ctx)
	defer cancelCause(nil)
	stop := context.AfterFunc(ep.refused, func() { cancelCause(errRefused) })
	defer stop()
	resp, err := do(ctx, ep.cc)
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errRefused) {
			err = cause
		}
		return nil, c.transportErr(err)
	}
	defer ep.cc.ReleaseMessage(resp)
	return result(resp)
}

func (c *Client) get(ctx context.Context, path string, queries ...string) ([]byte, error) {
	return c.getAs(ctx, path, jsonFormat, queries...)
}

// getAs is a GET asking for the representation mt (Accept).
func (c *Client) getAs(ctx context.Context, path string, mt message.MediaType, queries ...string) ([]byte, error) {
	opts := make(message.Options, 0, len(queries)+1)
	for _, q := range queries {
		opts = append(opts, message.Option{ID: message.URIQuery, Value: []byte(q)})
	}
	if mt != jsonFormat {
		opts = append(opts, message.Option{ID: message.Accept, Value: encodeUint(uint32(mt))})
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	for restarts := 0; ; restarts++ {
		b, err := c.exchange(ctx, c.opts.Timeout, 1, func(ctx context.Context, cc *client.Conn) (*pool.Message, error) {
			return c.read(ctx, cc, path, opts)
		})
		if !errors.Is(err, errChanged) {
			return b, err
		}
		if restarts == maxRestarts {
			return nil, fmt.Errorf("%w: device at %s: %s changed during each of %d transfers", mgmt.ErrUnavailable, c.addr, path, restarts+1)
		}
		c.restarts.Add(1)
	}
}

// read is one GET whose response blocks are checked by checkBlock.
func (c *Client) read(ctx context.Context, cc *client.Conn, path string, opts message.Options) (*pool.Message, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := cc.NewGetRequest(ctx, path, opts...)
	if err != nil {
		return nil, err
	}
	defer cc.ReleaseMessage(req)
	token := string(req.Token())
	c.readsMu.Lock()
	c.reads[token] = &read{cancel: cancel}
	c.readsMu.Unlock()
	defer func() {
		c.readsMu.Lock()
		delete(c.reads, token)
		c.readsMu.Unlock()
	}()
	resp, err := cc.Do(req)
	if err != nil && errors.Is(context.Cause(ctx), errChanged) {
		return nil, errChanged
	}
	if err == nil && resp.Code() == codes.RequestEntityIncomplete {
		// A later block asked of a fresh rendering shorter than the first
		// (go-coap's server answers 4.08 when it has no such block).
		c.readsMu.Lock()
		seen := c.reads[token].seen
		c.readsMu.Unlock()
		if seen {
			cc.ReleaseMessage(resp)
			return nil, errChanged
		}
	}
	return resp, err
}

func (c *Client) post(ctx context.Context, path string, body []byte) ([]byte, error) {
	blocks := 1 + len(body)/int(blockSZX.Size())
	return c.exchange(ctx, c.opts.UploadTimeout, blocks, func(ctx context.Context, cc *client.Conn) (*pool.Message, error) {
		return cc.Post(ctx, path, message.AppOctets, bytes.NewReader(body))
	})
}

func decode[T any](b []byte, err error) (T, error) {
	var v T
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("%w: %w", errBadResponse, err)
	}
	return v, nil
}

func checkName(name string) error {
	if !validName(name) {
		return fmt.Errorf("%w: %q is not a container name", mgmt.ErrInvalid, name)
	}
	return nil
}

// List is GET /c, in the compact form (a table, CBOR, compressed): a
// thousand containers take about ten blocks, where the JSON objects took
// ~700 and the plain table ~95; each block is a round trip.
func (c *Client) List(ctx context.Context) ([]mgmt.ContainerStatus, error) {
	return c.listTable(ctx, "/c")
}

func (c *Client) listTable(ctx context.Context, path string) ([]mgmt.ContainerStatus, error) {
	b, err := c.getAs(ctx, path, cborDeflate, "form=table")
	if re := (*RemoteError)(nil); errors.As(err, &re) && re.Code == codes.NotAcceptable {
		// A device from before the compressed form: plain CBOR.
		b, err = c.getAs(ctx, path, message.AppCBOR, "form=table")
	} else if err == nil {
		b, err = inflate(b, c.opts.MaxResponse)
	}
	if err != nil {
		return nil, err
	}
	doc, err := decodeCBOR(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadResponse, err)
	}
	return statusesFromTable(doc)
}

// Status is GET /c/{name}.
func (c *Client) Status(ctx context.Context, name string) (mgmt.ContainerStatus, error) {
	if err := checkName(name); err != nil {
		return mgmt.ContainerStatus{}, err
	}
	return decode[mgmt.ContainerStatus](c.get(ctx, "/c/"+name))
}

// Info is GET /d: the device as a whole.
func (c *Client) Info(ctx context.Context) (mgmt.DeviceInfo, error) {
	return decode[mgmt.DeviceInfo](c.get(ctx, "/d"))
}

// Tenants is GET /t: the tenants granted on the device.
func (c *Client) Tenants(ctx context.Context) ([]mgmt.TenantInfo, error) {
	return decode[[]mgmt.TenantInfo](c.get(ctx, "/t"))
}

// Stats is GET /stats: every container object (compact form, as List).
func (c *Client) Stats(ctx context.Context) ([]mgmt.ContainerStatus, error) {
	return c.listTable(ctx, "/stats")
}

// ContainerStats is GET /c/{name}/stats.
func (c *Client) ContainerStats(ctx context.Context, name string) (mgmt.ContainerStatus, error) {
	if err := checkName(name); err != nil {
		return mgmt.ContainerStatus{}, err
	}
	return decode[mgmt.ContainerStatus](c.get(ctx, "/c/"+name+"/stats"))
}

// Meta is GET /c/{name}/meta: the manifest in force, as JSON.
func (c *Client) Meta(ctx context.Context, name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	raw, err := decode[json.RawMessage](c.get(ctx, "/c/"+name+"/meta"))
	return []byte(raw), err
}

// Logs is GET /c/{name}/logs?after=N&max=M.
func (c *Client) Logs(ctx context.Context, name string, after uint64, max int) ([]mgmt.LogLine, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if max < 1 || max > maxLogMax {
		return nil, fmt.Errorf("%w: max %d is not in 1..%d", mgmt.ErrInvalid, max, maxLogMax)
	}
	return decode[[]mgmt.LogLine](c.get(ctx, "/c/"+name+"/logs",
		"after="+strconv.FormatUint(after, 10), "max="+strconv.Itoa(max)))
}

// Audit is GET /audit?limit=N.
func (c *Client) Audit(ctx context.Context, limit int) ([]mgmt.AuditEntry, error) {
	if limit < 1 || limit > maxAuditLimit {
		return nil, fmt.Errorf("%w: limit %d is not in 1..%d", mgmt.ErrInvalid, limit, maxAuditLimit)
	}
	return decode[[]mgmt.AuditEntry](c.get(ctx, "/audit", "limit="+strconv.Itoa(limit)))
}

// Deploy is POST /deploy with the signed image, block-wise when large.
func (c *Client) Deploy(ctx context.Context, image []byte) (mgmt.ContainerStatus, error) {
	if len(image) == 0 {
		return mgmt.ContainerStatus{}, fmt.Errorf("%w: empty image", mgmt.ErrInvalid)
	}
	return decode[mgmt.ContainerStatus](c.post(ctx, "/deploy", image))
}

// Exec is POST /exec with a signed command; it returns the JSON result.
func (c *Client) Exec(ctx context.Context, signedCommand []byte) ([]byte, error) {
	if len(signedCommand) == 0 {
		return nil, fmt.Errorf("%w: empty command", mgmt.ErrInvalid)
	}
	raw, err := decode[json.RawMessage](c.post(ctx, "/exec", signedCommand))
	return []byte(raw), err
}

// Discover is GET /.well-known/core, optionally with an RFC 6690 filter
// such as "rt=tc.logs" or "href=/c/thermo*".
func (c *Client) Discover(ctx context.Context, filter string) ([]Link, error) {
	var q []string
	if filter != "" {
		q = append(q, filter)
	}
	b, err := c.get(ctx, "/.well-known/core", q...)
	if err != nil {
		return nil, err
	}
	return parseLinks(b)
}

// WatchLogs observes GET /c/{name}/logs?after=N (RFC 7641). The channel
// first carries the lines already there, then new ones as notifications
// arrive. It is closed when ctx ends, the device ends the stream, or the
// connection is lost. Lines that do not fit the channel are dropped, which
// shows as a gap in Seq.
func (c *Client) WatchLogs(ctx context.Context, name string, after uint64) (<-chan mgmt.LogLine, error) {
	ch, _, err := c.FollowLogs(ctx, name, after)
	return ch, err
}

// FollowLogs is WatchLogs that also tells why the stream ended: once the
// channel is closed, ended returns nil when ctx ended it, the device's
// error when the device ended it (mgmt.ErrUnavailable while it shuts down,
// mgmt.ErrNotFound when the container went away), or mgmt.ErrUnavailable
// when the connection was lost.
func (c *Client) FollowLogs(ctx context.Context, name string, after uint64) (_ <-chan mgmt.LogLine, ended func() error, _ error) {
	if err := checkName(name); err != nil {
		return nil, nil, err
	}
	w := &watch{ch: make(chan mgmt.LogLine, c.opts.WatchBuffer), last: after, first: make(chan error, 1), ended: make(chan struct{})}
	rctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	// The observation keeps its endpoint until it ends (2 IDs: register,
	// deregister).
	ep, err := c.acquire(rctx, 2)
	if err != nil {
		return nil, nil, err
	}
	held := true
	defer func() {
		if held {
			c.release(ep)
		}
	}()
	cc := ep.cc
	obs, err := cc.Observe(rctx, "/c/"+name+"/logs", w.handle,
		message.Option{ID: message.URIQuery, Value: []byte("after=" + strconv.FormatUint(after, 10))})
	if err != nil {
		// go-coap reports an error response only by its code; the
		// handler has the device's text.
		select {
		case ferr := <-w.first:
			if ferr != nil {
				return nil, nil, ferr
			}
		case <-rctx.Done():
		case <-cc.Done():
		}
		return nil, nil, c.transportErr(err)
	}
	if ferr := <-w.first; ferr != nil {
		return nil, nil, ferr
	}
	held = false
	go func() {
		defer c.release(ep)
		select {
		case <-ctx.Done():
			cctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
			_ = obs.Cancel(cctx) // best effort: the device also forgets idle peers
			cancel()
		case <-w.ended:
		case <-cc.Done():
			w.setEnd(fmt.Errorf("%w: the connection to the device at %s was lost", mgmt.ErrUnavailable, c.addr))
		}
		w.close()
	}()
	return w.ch, w.endErr, nil
}

// watch turns notifications into a channel of log lines.
type watch struct {
	mu       sync.Mutex
	ch       chan mgmt.LogLine
	closed   bool
	last     uint64
	first    chan error // the outcome of the registration response
	gotFirst bool
	ended    chan struct{}
	endOnce  sync.Once
	end      error // why the device ended the stream
}

func (w *watch) setEnd(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.end == nil {
		w.end = err
	}
}

func (w *watch) endErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.end
}

// handle runs on the connection's goroutine for each notification, so it
// never blocks.
func (w *watch) handle(m *pool.Message) {
	body, err := result(m)
	var lines []mgmt.LogLine
	if err == nil {
		lines, err = decode[[]mgmt.LogLine](body, nil)
	}
	w.mu.Lock()
	if !w.gotFirst {
		w.gotFirst = true
		w.first <- err
	}
	if err == nil && !w.closed {
		for _, l := range lines {
			if l.Seq <= w.last {
				continue // a line seen before
			}
			w.last = l.Seq
			select {
			case w.ch <- l:
			default:
			}
		}
	}
	w.mu.Unlock()
	if _, oerr := m.Observe(); oerr != nil || err != nil {
		// A response without Observe ends the observation (RFC 7641
		// section 3.2); go-coap has already forgotten the token.
		if err == nil {
			err = fmt.Errorf("%w: the device ended the log stream", mgmt.ErrUnavailable)
		}
		w.setEnd(err)
		w.endOnce.Do(func() { close(w.ended) })
	}
}

func (w *watch) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		close(w.ch)
	}
}
