package web

import (
	"context"
	"fmt"
	"net"
	"net/http"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// FleetReader is what the fleet dashboard reads: a fleet controller's live
// view of the broker's retained state (fleet/ctl). Each call returns a
// JSON-encodable value, so this package needs none of the fleet's types:
// Devices the array of `fleet devices --json`, Containers that of `fleet
// ps --json` (the objects of `ps --json` with a device field), Rollouts an
// array of `fleet status --json` objects, Stats the view's counters
// (connected, ...).
type FleetReader interface {
	Devices(ctx context.Context) (any, error)
	Containers(ctx context.Context) (any, error)
	Rollouts(ctx context.Context) (any, error)
	Stats(ctx context.Context) (any, error)
}

// NewFleetHandler serves the fleet dashboard of src and the JSON behind it
// under /api/ (devices, containers, rollouts, stats), read-only like the
// device's.
func NewFleetHandler(src FleetReader, opts Options) http.Handler {
	opts = opts.withDefaults()
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", page("fleet.html"))
	mux.Handle("GET /assets/", assetHandler())
	mux.HandleFunc("GET /api/devices", reader(opts.CallTimeout, src.Devices))
	mux.HandleFunc("GET /api/containers", reader(opts.CallTimeout, src.Containers))
	mux.HandleFunc("GET /api/rollouts", reader(opts.CallTimeout, src.Rollouts))
	mux.HandleFunc("GET /api/stats", reader(opts.CallTimeout, src.Stats))
	mux.HandleFunc("/", notFound)
	return guard(mux, !opts.AllowRemote)
}

// ServeFleet listens on the TCP address addr and serves the fleet
// dashboard of src until ctx ends or Close is called, as Serve does for a
// device.
func ServeFleet(ctx context.Context, addr string, src FleetReader, opts Options) (*Server, error) {
	if src == nil {
		return nil, fmt.Errorf("%w: no fleet", mgmt.ErrInvalid)
	}
	return listen(ctx, addr, NewFleetHandler(src, opts), opts)
}

// listen binds addr (loopback unless AllowRemote) and serves h.
func listen(ctx context.Context, addr string, h http.Handler, opts Options) (*Server, error) {
	opts = opts.withDefaults()
	if err := checkListenAddr(addr, opts.AllowRemote); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: listen %s: %w", mgmt.ErrUnavailable, addr, err)
	}
	return serveOn(ctx, limitListener(ln, opts.MaxConns), h, opts), nil
}
