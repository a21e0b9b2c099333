package device

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tinycontainer/tinycontainer/container"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/store"
	"github.com/tinycontainer/tinycontainer/trust"
)

// The fleet transport (mgmt/fleet) acts on a Manager through these
// methods. Who signed is established by identify, what is allowed by the
// one authorizer (Authorize), exactly as for CoAP; what differs is only
// where the documents come from, and that a fleet may return a container
// to the exact version it ran before (FleetWant.Revert, checked by the
// fleet adapter against its own record).

// Owner is the device owner's public key (nil on an insecure device
// without one).
func (mg *Manager) Owner() ed25519.PublicKey { return mg.owner }

// TenantKey returns the key of an installed tenant.
func (mg *Manager) TenantKey(name string) (ed25519.PublicKey, bool) {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	t, ok := mg.tenants[name]
	if !ok {
		return nil, false
	}
	return t.key, true
}

// Store is the device's store (the fleet adapter keeps its replay state
// there, under a namespace no container name can take).
func (mg *Manager) Store() store.Store { return mg.st }

// SetFleetManaged marks a tenant as managed by a fleet: from then on
// the tenant's own signed requests over CoAP are refused (the owner's
// still work), since its containers come from its desired state.
func (mg *Manager) SetFleetManaged(tenant string, managed bool) {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	if mg.fleetManaged == nil {
		mg.fleetManaged = map[string]bool{}
	}
	if managed {
		mg.fleetManaged[tenant] = true
	} else {
		delete(mg.fleetManaged, tenant)
	}
}

// fleetLocked refuses a CoAP request by a non-owner for a fleet-managed
// tenant; mg.mu held.
func (mg *Manager) fleetLocked(s Signer, tenant string) error {
	if s.Owner || !mg.fleetManaged[tenant] {
		return nil
	}
	return fmt.Errorf("%w: tenant %q is managed by a fleet: change its desired state through the broker (tc/v1/dev/{id}/desired/%s); only the owner's requests are taken here", ErrDenied, tenant, tenant)
}

// FleetVerifier makes the identify arguments for a fleet document already
// verified under pub: its key id and a check that the key is pub.
func FleetVerifier(pub ed25519.PublicKey) (string, func(ed25519.PublicKey) error) {
	return trust.KeyID(pub), func(k ed25519.PublicKey) error {
		if !k.Equal(pub) {
			return fmt.Errorf("%w: signed by another key", ErrDenied)
		}
		return nil
	}
}

// FleetGrant installs tenant's owner-signed grant (the document of
// `tenant add`) on behalf of a fleet document signed by keyID.
func (mg *Manager) FleetGrant(keyID string, verify func(ed25519.PublicKey) error, tenant string, grant []byte) error {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	s, err := mg.identify(keyID, verify)
	if err != nil {
		return err
	}
	if mg.owner == nil {
		return fmt.Errorf("%w: tenant grants need a device started with an owner key", ErrDenied)
	}
	g, err := trust.OpenGrant(grant, mg.owner)
	if err != nil {
		return fmt.Errorf("%w: grant: %w", ErrDenied, err)
	}
	c, err := meta.ParseCeiling(g.CeilingJSON)
	if err != nil {
		return fmt.Errorf("%w: grant: %w", ErrInvalid, err)
	}
	if c.Tenant != tenant {
		return fmt.Errorf("%w: the grant is for tenant %q, the document for %q", ErrInvalid, c.Tenant, tenant)
	}
	_, err = mg.tenantAdd(s, grant)
	return err
}

// FleetRevoke revokes tenant on behalf of a document signed by keyID,
// exactly as `tenant revoke` does over CoAP (its containers stop, its
// grant goes). A tenant not (or no longer) on the device is not an error.
func (mg *Manager) FleetRevoke(keyID string, verify func(ed25519.PublicKey) error, tenant string) error {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	s, err := mg.identify(keyID, verify)
	if err != nil {
		return err
	}
	if _, err := mg.tenantRevoke(s, tenant); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// StateRunning is the state name of a running container.
const StateRunning = mgmt.StateRunning

// FleetWant is what a fleet desired state asks of one container.
type FleetWant struct {
	Tenant  string
	Name    string
	Version uint64
	// Revert allows Version below the installed one: the fleet adapter
	// has checked it is exactly the version that ran before.
	Revert bool
}

// FleetDeploy installs, upgrades or (Revert) returns a container to the
// signed image, which must be exactly what want names, signed by the
// tenant (or the owner), within the tenant's ceiling; then starts it.
// The code compiles outside the manager's lock, as in Deploy.
func (mg *Manager) FleetDeploy(ctx context.Context, image []byte, want FleetWant) (st mgmt.ContainerStatus, err error) {
	defer func() { mg.auditRefusal(err, "fleet-deploy", want.Name, want.Tenant) }()
	img, m, err := openDeploy(image)
	if err != nil {
		return st, err
	}
	if m.Tenant != want.Tenant || m.Name != want.Name || m.Version != want.Version {
		return st, fmt.Errorf("%w: the image is %s/%s version %d, the desired state names %s/%s version %d",
			ErrInvalid, m.Tenant, m.Name, m.Version, want.Tenant, want.Name, want.Version)
	}
	return mg.deploy(ctx, image, img, m, deployRoute{
		place: func(ctx context.Context, cur *container.Container, rec store.Container) (bool, error) {
			switch {
			case cur == nil:
				return true, mg.install(ctx, rec, m, img.Code)
			case want.Revert && m.Version < cur.Manifest().Version:
				// The version floor is left where it is: only a fleet
				// revert goes below it.
				return true, mg.replace(ctx, rec, m, img.Code)
			case m.Version == cur.Manifest().Version:
				// Already in force (a restart, or a state that caught
				// up): start it.
				return false, nil
			default:
				return true, mg.upgrade(ctx, cur.Manifest().Version, rec, m, img.Code)
			}
		},
	})
}

// FleetRemove removes a container of tenant that its desired state no
// longer lists, on behalf of a document signed by keyID.
func (mg *Manager) FleetRemove(ctx context.Context, keyID string, verify func(ed25519.PublicKey) error, tenant, name string) error {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	s, err := mg.identify(keyID, verify)
	if err != nil {
		return err
	}
	cur, err := mg.dev.Container(name)
	if err != nil {
		return err
	}
	if err := mg.authorize(s, Request{Verb: VerbRemove, Tenant: tenant, Installed: cur.Manifest()}); err != nil {
		return err
	}
	_, err = mg.remove(ctx, name, cur.Manifest().Version)
	return err
}

// Audit records a refusal of the fleet transport (a document or message
// refused, with why) in the device's audit log.
func (mg *Manager) AuditFleet(op, container, tenant, reason string) {
	if len(reason) > maxAuditReason {
		reason = reason[:maxAuditReason]
	}
	mg.dev.audit.add(mgmt.AuditEntry{Time: time.Now(), Container: container, Tenant: tenant,
		Endpoint: "fleet", Op: op, Reason: strings.ToValidUTF8(reason, "?")})
}

// ImageDigest is the content address (hex SHA-256 of the signed image's
// bytes) of the image a container was installed from.
func (mg *Manager) ImageDigest(name string) (string, error) {
	mg.recMu.Lock()
	rec, err := mg.st.GetContainer(name)
	mg.recMu.Unlock()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(rec.Image)
	return hex.EncodeToString(sum[:]), nil
}
