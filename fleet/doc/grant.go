package doc

import (
	"crypto/ed25519"
	"fmt"

	"github.com/tinycontainer/tinycontainer/trust"
)

// Grant is an owner-signed fleet grant: the tenant grant of package trust
// (the very document `tenant add` installs over CoAP) for the named
// devices, or the revocation of the tenant there. Published retained on
// tc/v1/dev/{id}/grant/{tenant}.
type Grant struct {
	V       int      `json:"v"`
	Tenant  string   `json:"tenant"`
	Devices []string `json:"devices"`
	Seq     uint64   `json:"seq"`
	Grant   []byte   `json:"grant,omitempty"`  // trust.SignGrant output (base64 in JSON); absent when Revoke
	Revoke  bool     `json:"revoke,omitempty"` // the tenant is revoked on these devices: its containers stop
}

func (g *Grant) check() error {
	if err := checkVersion("grant", g.V); err != nil {
		return err
	}
	if err := ValidTenant(g.Tenant); err != nil {
		return err
	}
	if err := checkDevices("grant", g.Devices); err != nil {
		return err
	}
	if g.Seq == 0 {
		return malformed("grant: seq must be positive")
	}
	switch {
	case g.Revoke && len(g.Grant) > 0:
		return malformed("grant: a revocation carries no grant")
	case !g.Revoke && len(g.Grant) == 0:
		return malformed("grant: no grant and not a revocation")
	case len(g.Grant) > trust.MaxGrantSize:
		return malformed("grant: inner grant of %d bytes, more than %d", len(g.Grant), trust.MaxGrantSize)
	}
	return nil
}

// SignGrant signs g with the owner's key.
func SignGrant(g Grant, owner ed25519.PrivateKey) ([]byte, error) {
	g.V = Version
	if err := g.check(); err != nil {
		return nil, err
	}
	return sealed(trust.DocGrant, g, owner)
}

// OpenGrant decodes a fleet grant and verifies it was signed by owner. The
// inner grant is not opened here: the device installs it through the same
// path as over CoAP.
func OpenGrant(b []byte, owner ed25519.PublicKey) (*Grant, error) {
	var g Grant
	if _, err := unseal(trust.DocGrant, b, owner, &g); err != nil {
		return nil, err
	}
	if err := g.check(); err != nil {
		return nil, err
	}
	return &g, nil
}

// CheckFor refuses a grant that does not name device or whose tenant is
// not the topic's.
func (g *Grant) CheckFor(device, tenant string) error {
	if g.Tenant != tenant {
		return fmt.Errorf("%w: grant for tenant %q on the topic of tenant %q", ErrNotForDevice, g.Tenant, tenant)
	}
	if !names(g.Devices, device) {
		return fmt.Errorf("%w: grant does not name device %q", ErrNotForDevice, device)
	}
	return nil
}
