package doc

import (
	"crypto/ed25519"
	"fmt"

	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/trust"
)

// Desired is a tenant-signed desired state: every container the tenant
// wants on the named devices (a container of the tenant not listed is
// removed). Published retained on tc/v1/dev/{id}/desired/{tenant}.
type Desired struct {
	V          int                `json:"v"`
	Tenant     string             `json:"tenant"`
	Devices    []string           `json:"devices"`
	Seq        uint64             `json:"seq"`
	Containers []DesiredContainer `json:"containers"`
}

// DesiredContainer is one container of a desired state.
type DesiredContainer struct {
	Name    string `json:"name"`
	Version uint64 `json:"version"`
	// Digest is the content address of the signed image (Digest of its
	// bytes), fetched from tc/v1/img/{tenant}/{digest}; Size its length.
	Digest string `json:"digest"`
	Size   int    `json:"size"`
	// Health is how long a new version must run without a fault before
	// the device reports it healthy.
	Health Duration `json:"health"`
	// Rollout names the rollout that asked for this version, if any.
	Rollout string `json:"rollout,omitempty"`
	// Revert, when set, asks to return to the version the device ran
	// before From: Version and Digest must be exactly that previous
	// version, and From exactly the version being left, or the device
	// refuses (no rollback to any other version).
	Revert *Revert `json:"revert,omitempty"`
}

// Revert names the version a return leaves.
type Revert struct {
	From Ref `json:"from"`
}

// Ref returns the version the entry asks for.
func (c DesiredContainer) Ref() Ref { return Ref{Version: c.Version, Digest: c.Digest} }

func (d *Desired) check() error {
	if err := checkVersion("desired", d.V); err != nil {
		return err
	}
	if err := ValidTenant(d.Tenant); err != nil {
		return err
	}
	if err := checkDevices("desired", d.Devices); err != nil {
		return err
	}
	if d.Seq == 0 {
		return malformed("desired: seq must be positive")
	}
	if len(d.Containers) > MaxContainers {
		return malformed("desired: %d containers, at most %d", len(d.Containers), MaxContainers)
	}
	seen := map[string]bool{}
	for _, c := range d.Containers {
		if err := meta.ValidName(c.Name); err != nil {
			return malformed("desired: container name: %v", err)
		}
		if seen[c.Name] {
			return malformed("desired: container %q listed twice", c.Name)
		}
		seen[c.Name] = true
		if c.Version == 0 {
			return malformed("desired: container %q: version must be positive", c.Name)
		}
		if err := ValidDigest(c.Digest); err != nil {
			return fmt.Errorf("desired: container %q: %w", c.Name, err)
		}
		if c.Size <= 0 || c.Size > MaxImageSize {
			return malformed("desired: container %q: size %d outside 1..%d", c.Name, c.Size, MaxImageSize)
		}
		if c.Rollout != "" {
			if err := ValidID(c.Rollout); err != nil {
				return fmt.Errorf("desired: container %q: rollout: %w", c.Name, err)
			}
		}
		if r := c.Revert; r != nil {
			if err := ValidDigest(r.From.Digest); err != nil {
				return fmt.Errorf("desired: container %q: revert: %w", c.Name, err)
			}
			if r.From.Version <= c.Version {
				return malformed("desired: container %q: a revert goes from a higher version (%d) to a lower one (%d)", c.Name, r.From.Version, c.Version)
			}
		}
	}
	return nil
}

// SignDesired signs d with the tenant's key.
func SignDesired(d Desired, tenant ed25519.PrivateKey) ([]byte, error) {
	d.V = Version
	if d.Containers == nil {
		d.Containers = []DesiredContainer{}
	}
	if err := d.check(); err != nil {
		return nil, err
	}
	return sealed(trust.DocDesired, d, tenant)
}

// OpenDesired decodes a desired state and verifies it was signed by the
// tenant's key.
func OpenDesired(b []byte, tenant ed25519.PublicKey) (*Desired, error) {
	var d Desired
	if _, err := unseal(trust.DocDesired, b, tenant, &d); err != nil {
		return nil, err
	}
	if err := d.check(); err != nil {
		return nil, err
	}
	return &d, nil
}

// DesiredSigner returns the key id that signed a desired state, without
// verifying it (to say which key a refused document came from).
func DesiredSigner(b []byte) (string, error) {
	d, err := trust.OpenDoc(trust.DocDesired, b)
	if err != nil {
		return "", fromTrust(err)
	}
	return d.KeyID, nil
}

// CheckFor refuses a desired state that does not name device or whose
// tenant is not the topic's.
func (d *Desired) CheckFor(device, tenant string) error {
	if d.Tenant != tenant {
		return fmt.Errorf("%w: desired state of tenant %q on the topic of tenant %q", ErrNotForDevice, d.Tenant, tenant)
	}
	if !names(d.Devices, device) {
		return fmt.Errorf("%w: desired state does not name device %q", ErrNotForDevice, device)
	}
	return nil
}
