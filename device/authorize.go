package device

import (
	"fmt"

	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
)

// The one authorizer. Every state-changing request, whatever its verb and
// whatever the transport it came by (CoAP, the fleet), is decided by
// Authorize and nowhere else; transports only establish who signed
// (Manager.Identify) and what is asked (a Request).

// Verbs a Request may name. The command verbs double as the verbs of
// signed management commands (trust.Command.Verb).
const (
	VerbDeploy       = "deploy"
	VerbStart        = "start"
	VerbStop         = "stop"
	VerbRemove       = "rm"
	VerbMetaApply    = "meta-apply"
	VerbTenantAdd    = "tenant-add"
	VerbTenantRevoke = "tenant-revoke"
)

// Signer is who signed a request, as established from the device's keys by
// Manager.Identify.
type Signer struct {
	// KeyID is the signing key's id (trust.KeyID).
	KeyID string
	// Owner: the device owner's key, verified. The owner may do anything
	// and is not bound by tenant ceilings (only by the tenant's code size).
	Owner bool
	// Tenant is the tenant whose key signed, verified; "" otherwise.
	Tenant string
	// Unverified: a device in insecure mode accepted a signature it could
	// not verify (an unknown key, or a bad signature). Such a signer may act
	// for any tenant but is bound by that tenant's ceiling, like the tenant
	// itself, and may not change tenants.
	Unverified bool
}

func (s Signer) String() string {
	switch {
	case s.Owner:
		return "the owner (key " + s.KeyID + ")"
	case s.Tenant != "":
		return "tenant " + s.Tenant + " (key " + s.KeyID + ")"
	}
	return "an unverified key " + s.KeyID
}

// Request is what a signed request asks for.
type Request struct {
	Verb string
	// Tenant is the tenant acted on: the manifest's (deploy, meta-apply),
	// the target container's (start, stop, rm) or the grant's (tenant-add,
	// tenant-revoke).
	Tenant string
	// Manifest is the metadata asked for (deploy, meta-apply); nil otherwise.
	Manifest *meta.Manifest
	// CodeSize is the size of the guest code in bytes (deploy).
	CodeSize int
	// Installed is the metadata in force of the container of that name, nil
	// when there is none.
	Installed *meta.Manifest
}

// State is what of the device's current state a decision depends on.
type State struct {
	// Insecure: the device accepts signatures it cannot verify (Signer.Unverified).
	Insecure bool
	// Ceilings are the installed tenants' ceilings, by tenant. Read only.
	Ceilings map[string]*meta.Ceiling
}

// Authorize decides whether signer s may do r on a device in state st: nil,
// or an error wrapping mgmt.ErrDenied (not allowed), mgmt.ErrConflict (a
// container of another tenant is in the way), mgmt.ErrTooLarge (code above
// the tenant's max code size) or mgmt.ErrInvalid (a malformed request). It
// does not check signatures (Identify did) nor versions and replay (the
// store's counters do).
//
// The rules:
//   - tenant-add and tenant-revoke: the owner only;
//   - container verbs: the owner, an unverified signer (insecure mode), or
//     the tenant acted on; a container's tenant never changes (deploy and
//     meta-apply over another tenant's container are refused);
//   - deploy and meta-apply by anyone but the owner: the manifest within its
//     tenant's ceiling (a tenant signer always has one; an unverified signer
//     acting for a tenant without a grant is not bound);
//   - deploy, by anyone: code within the tenant's max code size
//     (meta.DefaultMaxCode for a tenant without a grant).
func Authorize(s Signer, r Request, st State) error {
	if !s.Owner && !s.Unverified && s.Tenant == "" {
		return fmt.Errorf("%w: no signer", mgmt.ErrDenied)
	}
	switch r.Verb {
	case VerbTenantAdd, VerbTenantRevoke:
		if !s.Owner {
			return fmt.Errorf("%w: %s: only the owner may %s, not %s", mgmt.ErrDenied, r.Tenant, r.Verb, s)
		}
		return nil
	case VerbDeploy, VerbMetaApply:
		if r.Manifest == nil {
			return fmt.Errorf("%w: %s without metadata", mgmt.ErrInvalid, r.Verb)
		}
		if r.Manifest.Tenant != r.Tenant {
			return fmt.Errorf("%w: metadata of tenant %q acted on as tenant %q", mgmt.ErrInvalid, r.Manifest.Tenant, r.Tenant)
		}
	case VerbStart, VerbStop, VerbRemove:
	default:
		return fmt.Errorf("%w: unknown verb %q", mgmt.ErrInvalid, r.Verb)
	}
	if !s.Owner && !s.Unverified && s.Tenant != r.Tenant {
		return fmt.Errorf("%w: %s may not act for tenant %q", mgmt.ErrDenied, s, r.Tenant)
	}
	if in := r.Installed; in != nil && in.Tenant != r.Tenant {
		if s.Owner {
			return fmt.Errorf("%w: %s belongs to tenant %q, not %q (remove it first)", mgmt.ErrConflict, in.Name, in.Tenant, r.Tenant)
		}
		return fmt.Errorf("%w: %s belongs to tenant %q, not %q", mgmt.ErrDenied, in.Name, in.Tenant, r.Tenant)
	}
	if r.Manifest == nil {
		return nil
	}
	c, granted := st.Ceilings[r.Tenant]
	if r.Verb == VerbDeploy {
		limit := uint64(meta.DefaultMaxCode)
		if granted {
			limit = c.MaxCode
		}
		if r.CodeSize < 0 || uint64(r.CodeSize) > limit {
			return fmt.Errorf("%w: code of %d bytes is above tenant %s's max code size of %d bytes", mgmt.ErrTooLarge, r.CodeSize, r.Tenant, limit)
		}
	}
	if s.Owner {
		return nil
	}
	if !granted {
		if s.Unverified {
			return nil
		}
		return fmt.Errorf("%w: tenant %q has no grant on this device", mgmt.ErrDenied, r.Tenant)
	}
	if err := c.Permits(r.Manifest); err != nil {
		return fmt.Errorf("%w: %w", mgmt.ErrDenied, err)
	}
	return nil
}
