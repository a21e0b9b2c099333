package cli

import (
	"context"
	"errors"

	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/mgmt/web"
)

// serveWeb starts the read-only dashboard and /metrics of src on addr
// (SPEC section 9). A bad or non-loopback address (without allowRemote)
// is the caller's to fix.
func serveWeb(ctx context.Context, addr string, allowRemote bool, src mgmt.Reader, onErr func(error)) (*web.Server, error) {
	s, err := web.Serve(ctx, addr, src, web.Options{AllowRemote: allowRemote, Errors: onErr})
	if errors.Is(err, mgmt.ErrInvalid) || errors.Is(err, mgmt.ErrDenied) {
		return nil, usageError{err}
	}
	return s, err
}
