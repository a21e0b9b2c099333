// Package web is the device's web face (SPEC section 9): a dashboard page,
// the JSON behind it under /api/, and /metrics in the Prometheus text
// format. It is an adapter of the management port beside mgmt/coap, and
// reads the device only through mgmt.Reader: nothing it serves changes the
// device (GET and HEAD only).
package web

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// Options configures Serve. Zero values take the defaults given.
type Options struct {
	// AllowRemote permits a listening address that is not loopback. Without
	// it, requests must also name a loopback host (Host header), so a web
	// page elsewhere cannot read the dashboard through DNS rebinding.
	AllowRemote bool
	// MaxConns caps open connections; more wait in the kernel's accept
	// queue until one closes. Default 32.
	MaxConns int
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout bound
	// slow clients; defaults 5 s, 10 s, 30 s and 30 s.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// CallTimeout bounds each read of the device; default 10 s.
	CallTimeout time.Duration
	// Errors, when set, is told of errors serving connections.
	Errors func(error)
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 32
	}
	def(&o.ReadHeaderTimeout, 5*time.Second)
	def(&o.ReadTimeout, 10*time.Second)
	def(&o.WriteTimeout, 30*time.Second)
	def(&o.IdleTimeout, 30*time.Second)
	def(&o.CallTimeout, 10*time.Second)
	return o
}

// maxHeaderBytes bounds a request's line and headers (query string
// included); a longer one is refused with 431 before any handler runs.
const maxHeaderBytes = 8 << 10

// Server serves a device's web face on one TCP address.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
	once sync.Once
	err  error
}

// Serve listens on the TCP address addr and serves src until ctx ends or
// Close is called. It returns once the socket is bound. A non-loopback
// addr is refused unless opts.AllowRemote.
func Serve(ctx context.Context, addr string, src mgmt.Reader, opts Options) (*Server, error) {
	if src == nil {
		return nil, fmt.Errorf("%w: no device", mgmt.ErrInvalid)
	}
	return listen(ctx, addr, NewHandler(src, opts), opts)
}

// serveOn serves h on ln until ctx ends or Close.
func serveOn(ctx context.Context, ln net.Listener, h http.Handler, opts Options) *Server {
	s := &Server{ln: ln, done: make(chan struct{})}
	s.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		ReadTimeout:       opts.ReadTimeout,
		WriteTimeout:      opts.WriteTimeout,
		IdleTimeout:       opts.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          nil,
	}
	go func() {
		defer close(s.done)
		err := s.srv.Serve(ln)
		if err != nil && !errors.Is(err, http.ErrServerClosed) && opts.Errors != nil {
			opts.Errors(err)
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.done:
		}
	}()
	return s
}

// Addr is the bound TCP address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL is the dashboard's address, e.g. http://127.0.0.1:8080/.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() + "/" }

// Close stops serving, closes every connection and waits for the server's
// goroutines. It is safe to call more than once.
func (s *Server) Close() error {
	s.once.Do(func() { s.err = s.srv.Close() })
	<-s.done
	return s.err
}

// CheckAddr tells whether Serve would accept addr (a host:port,
// loopback unless allowRemote), so a command can refuse a bad address
// before it starts anything.
func CheckAddr(addr string, allowRemote bool) error { return checkListenAddr(addr, allowRemote) }

// checkListenAddr refuses a non-loopback address unless allowRemote.
func checkListenAddr(addr string, allowRemote bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w: listen address %q: %w", mgmt.ErrInvalid, addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%w: listen address %q: bad port", mgmt.ErrInvalid, addr)
	}
	if allowRemote {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%w: %q is not a loopback address; listening beyond this host needs AllowRemote", mgmt.ErrDenied, addr)
}
