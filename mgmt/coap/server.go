// Package coap exposes a mgmt.Device over CoAP (RFC 7252) on UDP, with
// block-wise transfer (RFC 7959) for large bodies, Observe (RFC 7641) for
// logs and resource discovery (RFC 6690); and implements mgmt.Device again
// as a client of such a server. It is the only package of the project that
// imports go-coap. The resource table is in docs/notes/coap.md.
package coap

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"sync"
	"time"

	piondtls "github.com/pion/dtls/v3"

	"github.com/plgd-dev/go-coap/v3/dtls"
	dtlsServer "github.com/plgd-dev/go-coap/v3/dtls/server"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	coapNet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/net/monitor/inactivity"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/options/config"
	"github.com/plgd-dev/go-coap/v3/udp"
	"github.com/plgd-dev/go-coap/v3/udp/client"
	udpServer "github.com/plgd-dev/go-coap/v3/udp/server"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// jsonFormat is content-format 50, application/json.
var jsonFormat = message.AppJSON

const (
	// blockSZX is the block size of block-wise transfers: 1024 bytes fits
	// one datagram below the usual 1280-byte IPv6 minimum MTU.
	blockSZX = blockwise.SZX1024
	// maxErrorText bounds the diagnostic payload of an error response so
	// that it always fits in one datagram.
	maxErrorText = 512
	// notifyBudget is the most JSON in one notification: one block.
	notifyBudget = 1024
	// maxPending bounds the log lines an observation holds while its
	// notifications wait for acknowledgements; the device's channel
	// holds more, and drops beyond that.
	maxPending = 256
)

// ServerOptions configures Serve. Zero values take the defaults given.
type ServerOptions struct {
	// AllowRemote permits a listening address that is not loopback.
	AllowRemote bool
	// MaxImage caps the body of POST /deploy; default 4 MiB + 128 KiB, a
	// signed image of the largest max code a grant may give (4 MiB, SPEC
	// section 5): the tenant's own max code is checked by the device.
	MaxImage int64
	// MaxCommand caps the body of every other request; default 64 KiB.
	MaxCommand int64
	// MaxUploads caps concurrent block-wise uploads, so that at most
	// MaxUploads × MaxImage bytes are ever buffered; default 4.
	MaxUploads int
	// MaxObservers caps concurrent log observations; default 16.
	MaxObservers int
	// CallTimeout bounds each Device call; default 30 s.
	CallTimeout time.Duration
	// TransferTimeout is the time a block-wise upload may take from its
	// first block to its last; default 60 s.
	TransferTimeout time.Duration
	// IdleTimeout forgets a peer silent for this long, ending its
	// observations; default 5 min. Clients of this package ping well
	// within it.
	IdleTimeout time.Duration
	// MaxClients caps the client addresses the server keeps state for; a
	// new one evicts the one idle the longest (its observations end);
	// default 16.
	MaxClients int
	// MaxClientExchanges is how many requests a client makes on one
	// connection before its state (responses cached for duplicate
	// detection among it) is dropped and begun afresh, at a moment that
	// loses nothing (see peers.go); default 256: the cached responses of
	// a client then stay below ~400 KB (at 2,048 a busy client's grew to
	// ~3 MB before each fresh start, a sawtooth the soak saw in the RSS).
	MaxClientExchanges int
	// Errors receives transport errors (malformed datagrams, peers gone,
	// device failures answered with 5.00); nil discards them.
	Errors func(error)
	// PSK, when set, makes the server speak CoAP over DTLS 1.2
	// (coaps, RFC 7252 section 9) with this pre-shared key and the
	// cipher suite TLS_PSK_WITH_AES_128_CCM_8; only clients presenting
	// PSKIdentity get in. Without it the server speaks plain CoAP.
	PSK         []byte
	PSKIdentity string
}

func (o ServerOptions) withDefaults() ServerOptions {
	if o.MaxImage <= 0 {
		o.MaxImage = 4<<20 + 128<<10
	}
	if o.MaxCommand <= 0 {
		o.MaxCommand = 64 << 10
	}
	if o.MaxUploads <= 0 {
		o.MaxUploads = 4
	}
	if o.MaxObservers <= 0 {
		o.MaxObservers = 16
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 30 * time.Second
	}
	if o.TransferTimeout <= 0 {
		o.TransferTimeout = 60 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 5 * time.Minute
	}
	if o.MaxClients <= 0 {
		o.MaxClients = 16
	}
	if o.MaxClientExchanges <= 0 {
		o.MaxClientExchanges = 256
	}
	if o.Errors == nil {
		o.Errors = func(error) {}
	}
	return o
}

// Server serves one mgmt.Device over CoAP on UDP.
type Server struct {
	dev    mgmt.Device
	opts   ServerOptions
	l      io.Closer // the socket: *coapNet.UDPConn or *coapNet.DTLSListener
	addr   net.Addr
	srv    interface{ Stop() }
	ctx    context.Context // ends when the server starts closing
	cancel context.CancelFunc
	// serving is go-coap's context: it outlives ctx until the observers
	// have been told the device is going (their acknowledgements still
	// come in, notifications are still retransmitted).
	serving     context.Context
	stopServing context.CancelFunc
	uploads     *uploads
	obs         *observations
	peers       *peers
	done        chan struct{} // closed when the serve loop has returned

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup // notification loops
}

// Serve listens on the UDP address addr and serves dev until ctx ends or
// Close is called. It returns once the socket is bound. A non-loopback addr
// is refused unless opts.AllowRemote.
func Serve(ctx context.Context, addr string, dev mgmt.Device, opts ServerOptions) (*Server, error) {
	if dev == nil {
		return nil, fmt.Errorf("%w: no device", mgmt.ErrInvalid)
	}
	opts = opts.withDefaults()
	if err := checkListenAddr(addr, opts.AllowRemote); err != nil {
		return nil, err
	}
	if opts.PSK != nil && len(opts.PSK) < minPSK {
		return nil, fmt.Errorf("%w: a PSK needs at least %d bytes", mgmt.ErrInvalid, minPSK)
	}
	sctx, cancel := context.WithCancel(ctx)
	serving, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	s := &Server{
		dev:         dev,
		opts:        opts,
		ctx:         sctx,
		cancel:      cancel,
		serving:     serving,
		stopServing: stopServing,
		uploads:     newUploads(opts.MaxUploads, opts.TransferTimeout),
		obs:         &observations{max: opts.MaxObservers, m: map[obsKey]*observation{}},
		done:        make(chan struct{}),
	}
	s.peers = newPeers(opts.MaxClients, opts.MaxClientExchanges, s.obs.has)
	common := []serverOption{
		options.WithContext(serving),
		options.WithHandlerFunc(s.handle),
		options.WithRequestMonitor(s.monitor),
		options.WithBlockwise(true, blockSZX, opts.TransferTimeout),
		// go-coap keeps partial uploads per peer; one table entry per
		// allowed upload keeps its buffers within our own accounting.
		options.WithBlockwiseReceivingMessagesCacheMaxEntries(opts.MaxUploads),
		connMonitors(func() client.InactivityMonitor {
			return client.DeferInactivityWhileConfirmableMessagesPending(recycleMonitor{
				InactivityMonitor: inactivity.New(opts.IdleTimeout, func(cc *client.Conn) { _ = cc.Close() }),
				p:                 s.peers,
			})
		}),
		options.WithProcessReceivedMessageFunc(func(req *pool.Message, cc *client.Conn, handler config.HandlerFunc[*client.Conn]) {
			mid := req.MessageID() // req goes back to its pool once processed
			cc.ProcessReceivedMessageWithHandler(req, handler)
			s.peers.answered(cc, mid)
		}),
		options.WithOnNewConn(func(cc *client.Conn) { s.peers.add(cc, time.Now()) }),
		options.WithErrors(opts.Errors),
		options.WithPeriodicRunner(s.periodic),
	}
	var serve func() error
	if opts.PSK == nil {
		l, err := listenUDP(addr)
		if err != nil {
			cancel()
			stopServing()
			return nil, fmt.Errorf("%w: listen on %s: %w", mgmt.ErrUnavailable, addr, err)
		}
		srv := udp.NewServer(asOptions[udpServer.Option](common)...)
		s.l, s.addr, s.srv = l, l.LocalAddr(), srv
		serve = func() error { return srv.Serve(l) }
	} else {
		key, identity := bytes.Clone(opts.PSK), []byte(opts.PSKIdentity)
		l, err := coapNet.NewDTLSListener("udp", addr, coapNet.NewDTLSServerOptions(
			piondtls.WithPSK(func(hint []byte) ([]byte, error) {
				if subtle.ConstantTimeCompare(hint, identity) != 1 {
					return nil, fmt.Errorf("%w: unknown PSK identity", mgmt.ErrDenied)
				}
				return key, nil
			}),
			piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8),
		))
		if err != nil {
			cancel()
			stopServing()
			return nil, fmt.Errorf("%w: listen on %s: %w", mgmt.ErrUnavailable, addr, err)
		}
		srv := dtls.NewServer(asOptions[dtlsServer.Option](common)...)
		s.l, s.addr, s.srv = l, l.Addr(), srv
		serve = func() error { return srv.Serve(l) }
	}
	go func() {
		defer close(s.done)
		if err := serve(); err != nil {
			opts.Errors(fmt.Errorf("coap server stopped: %w", err))
		}
	}()
	context.AfterFunc(sctx, func() { _ = s.Close() })
	return s, nil
}

// sweepEvery is how often the server runs go-coap's sweep of its clients'
// connections (inactivity, expired cached responses, and the state of
// connections closed since: evicted and recycled ones). go-coap's default
// is every 4 s; evicted connections' state would pile up that long under
// a flood of new addresses. (It never recycles a connection: see
// recycleMonitor.)
const sweepEvery = 100 * time.Millisecond

// periodic is the server's periodic runner (options.WithPeriodicRunner):
// go-coap hands it its sweep once per Serve, and it runs it until the
// server stops or the sweep says done.
func (s *Server) periodic(goCoapSweep func(now time.Time) bool) {
	go func() {
		t := time.NewTicker(sweepEvery)
		defer t.Stop()
		for {
			select {
			case <-s.serving.Done():
				return
			case now := <-t.C:
				if !goCoapSweep(now) {
					return
				}
			}
		}
	}()
}

// socketBuffer is the receive buffer asked for the server's socket (the
// system may grant less): a burst of datagrams while the device is busy
// waits there instead of being dropped, which would cost a client a
// retransmission (2 s or more).
const socketBuffer = 1 << 20

func listenUDP(addr string) (*coapNet.UDPConn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, err
	}
	_ = c.SetReadBuffer(socketBuffer) // best effort
	return coapNet.NewUDPConn("udp", c), nil
}

// minPSK is the shortest pre-shared key accepted: 128 bits.
const minPSK = 16

// connMonitors sets the inactivity monitor of every server connection
// (go-coap's options.WithInactivityMonitor takes only a timeout and a
// callback; the servers' configurations take any monitor).
type connMonitors func() client.InactivityMonitor

func (f connMonitors) UDPServerApply(cfg *udpServer.Config)   { cfg.CreateInactivityMonitor = f }
func (f connMonitors) DTLSServerApply(cfg *dtlsServer.Config) { cfg.CreateInactivityMonitor = f }

// serverOption is a go-coap option that applies to both the UDP and the
// DTLS server.
type serverOption interface {
	udpServer.Option
	dtlsServer.Option
}

func asOptions[T any](opts []serverOption) []T {
	out := make([]T, len(opts))
	for i, o := range opts {
		out[i] = any(o).(T)
	}
	return out
}

// checkListenAddr refuses addresses that would expose the device beyond
// this host without an explicit opt-in (SPEC section 7).
func checkListenAddr(addr string, allowRemote bool) error {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return fmt.Errorf("%w: listen address %q: %w", mgmt.ErrInvalid, addr, err)
	}
	if allowRemote || (ua.IP != nil && ua.IP.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("%w: %q is not a loopback address; listening beyond this host needs AllowRemote", mgmt.ErrDenied, addr)
}

// Addr is the bound UDP address.
func (s *Server) Addr() net.Addr { return s.addr }

// Close stops serving, ends every observation and waits for the server's
// goroutines. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.done
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	// The notification loops say goodbye to their observers (bounded by
	// goodbyeTimeout) while the socket still serves: go-coap's context
	// (serving) ends only after, or its connections would be closed
	// under them.
	s.wg.Wait()
	s.stopServing()
	s.srv.Stop()
	// Stop closes the socket only once Serve has registered it.
	_ = s.l.Close()
	<-s.done
	return nil
}

// goNotify starts a notification loop unless the server is closing.
func (s *Server) goNotify(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// uriOf extracts the raw Uri-Path and Uri-Query options.
func uriOf(opts message.Options) (segments, queries []string) {
	for _, o := range opts {
		switch o.ID {
		case message.URIPath:
			segments = append(segments, string(o.Value))
		case message.URIQuery:
			queries = append(queries, string(o.Value))
		}
	}
	return segments, queries
}

func isBodyMethod(c codes.Code) bool {
	return c == codes.POST || c == codes.PUT || c == codes.FETCH || c == codes.PATCH || c == codes.IPATCH
}

// limitFor is the body cap of a request, chosen by its path.
func (s *Server) limitFor(segments []string) int64 {
	if len(segments) == 1 && segments[0] == "deploy" {
		return s.opts.MaxImage
	}
	return s.opts.MaxCommand
}

// monitor sees every datagram before go-coap's block-wise layer buffers it:
// it refuses a block that would take an upload past its cap (4.13) or start
// one upload too many (5.03), and notices resets of notifications.
func (s *Server) monitor(cc *client.Conn, r *pool.Message) (bool, error) {
	s.peers.seen(cc, r, time.Now())
	if r.Type() == message.Reset {
		s.obs.reset(cc.RemoteAddr().String(), r.MessageID())
		return false, nil
	}
	if !isBodyMethod(r.Code()) {
		return false, nil
	}
	n, err := r.BodySize()
	if err != nil {
		n = 0
	}
	size1 := int64(-1)
	if v, err := r.GetOptionUint32(message.Size1); err == nil {
		size1 = int64(v)
	}
	block, errB := r.GetOptionUint32(message.Block1)
	segments, _ := uriOf(r.Options())
	limit := s.limitFor(segments)
	v := s.uploads.check(transfer{
		key:      cc.RemoteAddr().String() + "|" + string(r.Token()),
		hasBlock: errB == nil,
		block:    block,
		size1:    size1,
		n:        n,
		limit:    limit,
	}, time.Now())
	if v.code == 0 {
		return false, nil
	}
	s.reject(cc, r, v, limit)
	s.peers.answered(cc, r.MessageID()) // dropped here: go-coap never processes it
	return true, nil
}

// reject answers a request from the monitor, which runs before go-coap's
// own response path: a piggy-backed ACK for CON, a NON for NON.
func (s *Server) reject(cc *client.Conn, r *pool.Message, v verdict, limit int64) {
	m := cc.AcquireMessage(cc.Context())
	defer cc.ReleaseMessage(m)
	m.SetCode(v.code)
	m.SetToken(r.Token())
	if r.Type() == message.Confirmable {
		m.SetType(message.Acknowledgement)
		m.SetMessageID(r.MessageID())
	} else {
		m.SetType(message.NonConfirmable)
		m.SetMessageID(cc.GetMessageID())
	}
	switch v.code {
	case codes.RequestEntityTooLarge:
		// RFC 7959 section 2.9.3: Size1 tells the client the largest body.
		m.SetOptionUint32(message.Size1, uint32(min(limit, int64(^uint32(0)))))
	case codes.ServiceUnavailable:
		m.SetOptionUint32(message.MaxAge, uint32(v.retryAfter/time.Second)+1)
	}
	m.SetContentFormat(message.TextPlain)
	m.SetBody(bytes.NewReader([]byte(v.msg)))
	if err := cc.Session().WriteMessage(m); err != nil {
		s.opts.Errors(fmt.Errorf("coap: answer %v to %v: %w", v.code, cc.RemoteAddr(), err))
	}
}

// handle serves one complete (reassembled) request.
func (s *Server) handle(w *responsewriter.ResponseWriter[*client.Conn], r *pool.Message) {
	s.peers.begin(w.Conn())
	defer s.peers.end(w.Conn())
	defer func() { // a response beyond one block is a transfer: see peers.go
		if w.Message().Body() != nil {
			if n, err := w.Message().BodySize(); err == nil {
				s.peers.responding(w.Conn(), r, int(n), time.Now())
			}
		}
	}()
	if s.ctx.Err() != nil { // closing: only the goodbyes still go out
		s.fail(w, errShuttingDown)
		return
	}
	segments, queries := uriOf(r.Options())
	req, err := parseRequest(r.Code(), segments, queries)
	if err != nil {
		s.fail(w, err)
		return
	}
	mt, err := negotiate(r.Options(), req.res)
	if err != nil {
		s.fail(w, err)
		return
	}
	if req.res == resLogs {
		if obs, err := r.Observe(); err == nil {
			if obs == 0 {
				s.observe(w, r, req, mt)
				return
			}
			// Observe 1 deregisters (RFC 7641 section 3.6) and is
			// otherwise an ordinary GET.
			s.obs.remove(obsKey{w.Conn().RemoteAddr().String(), string(r.Token())}, nil)
		}
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.CallTimeout)
	defer cancel()
	var (
		v    any
		code = codes.Content
	)
	switch req.res {
	case resCore:
		s.discover(ctx, w, req)
		return
	case resList, resStats:
		var list []mgmt.ContainerStatus
		if list, err = nonNil(s.dev.List(ctx)); err == nil {
			v = list
			if req.table {
				v = newTable(list)
			}
		}
	case resInfo:
		v, err = s.dev.Info(ctx)
	case resTenants:
		v, err = nonNil(s.dev.Tenants(ctx))
	case resStatus, resContainerStats:
		v, err = s.dev.Status(ctx, req.name)
	case resMeta:
		var b []byte
		if b, err = s.dev.Meta(ctx, req.name); err == nil {
			v = json.RawMessage(b)
		}
	case resLogs:
		v, err = nonNil(s.dev.Logs(ctx, req.name, req.after, req.max))
	case resAudit:
		v, err = nonNil(s.dev.Audit(ctx, req.limit))
	case resDeploy, resExec:
		var body []byte
		if body, err = s.readBody(r, s.limitFor(segments)); err != nil {
			break
		}
		code = codes.Changed
		if req.res == resDeploy {
			v, err = s.dev.Deploy(ctx, body)
		} else {
			var b []byte
			if b, err = s.dev.Exec(ctx, body); err == nil {
				v = json.RawMessage(b)
			}
		}
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	s.reply(w, code, v, mt)
}

// nonNil makes an empty result encode as [] rather than null.
func nonNil[T any](v []T, err error) ([]T, error) {
	if v == nil && err == nil {
		v = []T{}
	}
	return v, err
}

// readBody returns the request body, checked against the cap once more in
// case it arrived in a single datagram.
func (s *Server) readBody(r *pool.Message, limit int64) ([]byte, error) {
	if r.Body() == nil {
		return nil, fmt.Errorf("%w: empty body", mgmt.ErrInvalid)
	}
	n, err := r.BodySize()
	if err != nil {
		return nil, fmt.Errorf("%w: body: %w", mgmt.ErrInvalid, err)
	}
	if n > limit {
		return nil, fmt.Errorf("%w: body of %d bytes exceeds %d", mgmt.ErrTooLarge, n, limit)
	}
	b, err := r.ReadBody()
	if err != nil {
		return nil, fmt.Errorf("%w: body: %w", mgmt.ErrInvalid, err)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty body", mgmt.ErrInvalid)
	}
	return b, nil
}

func (s *Server) discover(ctx context.Context, w *responsewriter.ResponseWriter[*client.Conn], req request) {
	list, err := s.dev.List(ctx)
	if err != nil {
		s.fail(w, err)
		return
	}
	names := make([]string, 0, len(list))
	for _, c := range list {
		if validName(c.Name) {
			names = append(names, c.Name)
		}
	}
	doc := formatLinks(filterLinks(coreLinks(names), req.filterKey, req.filterVal))
	if err := w.SetResponse(codes.Content, message.AppLinkFormat, bytes.NewReader(doc)); err != nil {
		s.opts.Errors(fmt.Errorf("coap: respond: %w", err))
		return
	}
	w.Message().SetOptionBytes(message.ETag, etagOf(doc))
}

func (s *Server) reply(w *responsewriter.ResponseWriter[*client.Conn], code codes.Code, v any, mt message.MediaType) {
	b, err := encode(v, mt)
	if err != nil {
		s.fail(w, fmt.Errorf("encode response: %w", err))
		return
	}
	if err := w.SetResponse(code, mt, bytes.NewReader(b)); err != nil {
		s.opts.Errors(fmt.Errorf("coap: respond: %w", err))
		return
	}
	if code == codes.Content {
		w.Message().SetOptionBytes(message.ETag, etagOf(b))
	}
}

// etagOf is the ETag of a representation (RFC 7252 section 5.10.6): a
// hash of its bytes. Every block of a block-wise response carries it
// (go-coap copies the options into each block), so a client can tell when
// a later block belongs to another rendering of the resource: one made
// afresh because the server's state of the transfer was lost (its
// connection evicted or recycled, or a lost last block retransmitted
// after that) while the resource had changed (RFC 7959 section 2.4).
func etagOf(b []byte) []byte {
	h := fnv.New64a()
	_, _ = h.Write(b)
	return h.Sum(nil)
}

// fail answers with the code of err's class and err's text as diagnostic
// payload (RFC 7252 section 5.5.2).
func (s *Server) fail(w *responsewriter.ResponseWriter[*client.Conn], err error) {
	code := codeFor(err)
	if code == codes.InternalServerError {
		s.opts.Errors(fmt.Errorf("coap: device error: %w", err))
	}
	if err := w.SetResponse(code, message.TextPlain, bytes.NewReader(errorText(err))); err != nil {
		s.opts.Errors(fmt.Errorf("coap: respond: %w", err))
	}
}

func errorText(err error) []byte {
	msg := err.Error()
	if len(msg) > maxErrorText {
		msg = msg[:maxErrorText]
	}
	return []byte(msg)
}
