package trust

import (
	"crypto/ed25519"
	"encoding/json"
)

// grantPayload is the signed content of a tenant grant: the ceiling and the
// tenant key it applies to, bound together under the owner's signature.
type grantPayload struct {
	Version   uint64 `cbor:"1,keyasint"`
	Ceiling   bstr   `cbor:"2,keyasint"`
	TenantKey bstr   `cbor:"3,keyasint"`
}

// Grant is a verified owner-signed tenant grant.
type Grant struct {
	CeilingJSON []byte            // the tenant's ceiling, JSON, as signed
	TenantKey   ed25519.PublicKey // the key that signs this tenant's images and commands
	TenantKeyID string
	OwnerKeyID  string
}

// SignGrant signs a tenant's ceiling (opaque JSON) and public key with the
// owner's key.
func SignGrant(ceilingJSON []byte, tenantPub ed25519.PublicKey, owner ed25519.PrivateKey) ([]byte, error) {
	if err := checkCeiling(ceilingJSON); err != nil {
		return nil, err
	}
	if err := checkPublicKey(tenantPub); err != nil {
		return nil, err
	}
	payload, err := encMode.Marshal(grantPayload{
		Version:   formatVersion,
		Ceiling:   ceilingJSON,
		TenantKey: bstr(tenantPub),
	})
	if err != nil {
		return nil, malformed("encode grant payload: %v", err)
	}
	return sign(kindGrant, payload, owner)
}

// OpenGrant decodes a grant and verifies it against the owner's key.
func OpenGrant(b []byte, ownerPub ed25519.PublicKey) (*Grant, error) {
	env, err := open(kindGrant, b)
	if err != nil {
		return nil, err
	}
	var p grantPayload
	if err := env.decodePayload(&p); err != nil {
		return nil, err
	}
	if err := checkVersion(kindGrant, p.Version); err != nil {
		return nil, err
	}
	if err := checkCeiling(p.Ceiling); err != nil {
		return nil, err
	}
	if len(p.TenantKey) != ed25519.PublicKeySize {
		return nil, malformed("grant payload: tenant key has %d bytes, want %d", len(p.TenantKey), ed25519.PublicKeySize)
	}
	if err := env.verify(ownerPub); err != nil {
		return nil, err
	}
	tenant := ed25519.PublicKey(p.TenantKey)
	return &Grant{
		CeilingJSON: p.Ceiling,
		TenantKey:   tenant,
		TenantKeyID: KeyID(tenant),
		OwnerKeyID:  env.keyID,
	}, nil
}

func checkCeiling(ceilingJSON []byte) error {
	if len(ceilingJSON) == 0 {
		return malformed("grant: empty ceiling")
	}
	if !json.Valid(ceilingJSON) {
		return malformed("grant: ceiling is not valid JSON")
	}
	return nil
}
