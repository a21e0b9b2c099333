package trust

import (
	"crypto/ed25519"
	"encoding/json"
)

// MaxDocSize caps a signed fleet document (the envelope included). Fleet
// documents are small JSON lists (grants, desired states, rollouts); a
// larger one is refused before any decoding.
const MaxDocSize = 256 << 10

// DocKind is one kind of signed fleet document. Each has its own content
// type in the protected header, distinct from images, grants and commands,
// so a signature over one kind is never accepted as another.
type DocKind string

// The fleet document kinds (see docs/fleet.md for their payloads).
const (
	DocGrant    DocKind = "fleet-grant"    // owner-signed: a tenant grant (or its revocation) for named devices
	DocDesired  DocKind = "fleet-desired"  // tenant-signed: a tenant's containers on named devices
	DocRollout  DocKind = "fleet-rollout"  // tenant-signed: what a rollout is (never changes)
	DocProgress DocKind = "fleet-progress" // tenant-signed: how far a rollout has got, and who drives it
)

var docKinds = map[DocKind]kind{
	DocGrant:    {string(DocGrant), "application/vnd.tinycontainer.fleet-grant+json", MaxDocSize},
	DocDesired:  {string(DocDesired), "application/vnd.tinycontainer.fleet-desired+json", MaxDocSize},
	DocRollout:  {string(DocRollout), "application/vnd.tinycontainer.fleet-rollout+json", MaxDocSize},
	DocProgress: {string(DocProgress), "application/vnd.tinycontainer.fleet-progress+json", MaxDocSize},
}

func docKind(k DocKind) (kind, error) {
	dk, ok := docKinds[k]
	if !ok {
		return kind{}, malformed("unknown document kind %q", string(k))
	}
	return dk, nil
}

// SignedDoc is a decoded signed fleet document. Payload and KeyID are
// valid after OpenDoc; they are authentic only after Verify returns nil.
type SignedDoc struct {
	Kind    DocKind
	Payload []byte // JSON, as signed
	KeyID   string // id of the signing key: pick the verification key by it

	env *envelope
}

// SignDoc signs a fleet document's payload (opaque JSON) with key.
func SignDoc(k DocKind, payloadJSON []byte, key ed25519.PrivateKey) ([]byte, error) {
	dk, err := docKind(k)
	if err != nil {
		return nil, err
	}
	if err := checkDocPayload(dk, payloadJSON); err != nil {
		return nil, err
	}
	return sign(dk, payloadJSON, key)
}

// OpenDoc decodes a signed fleet document of kind k without verifying it.
// A document of another kind (an image, a grant, a command or another
// fleet kind) is refused with ErrMalformed.
func OpenDoc(k DocKind, b []byte) (*SignedDoc, error) {
	dk, err := docKind(k)
	if err != nil {
		return nil, err
	}
	env, err := open(dk, b)
	if err != nil {
		return nil, err
	}
	if err := checkDocPayload(dk, env.payload); err != nil {
		return nil, err
	}
	return &SignedDoc{Kind: k, Payload: env.payload, KeyID: env.keyID, env: env}, nil
}

// Verify checks that the document was signed by pub.
func (d *SignedDoc) Verify(pub ed25519.PublicKey) error {
	if d == nil || d.env == nil {
		return malformed("document was not produced by OpenDoc")
	}
	return d.env.verify(pub)
}

func checkDocPayload(k kind, p []byte) error {
	if len(p) == 0 {
		return malformed("%s: empty payload", k.name)
	}
	if !json.Valid(p) {
		return malformed("%s: payload is not valid JSON", k.name)
	}
	return nil
}
