package trust

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
)

// imagePayload is the signed content of an image. Integer keys keep it
// compact on constrained links; the digest lets inspect and the device
// check the code before any signature work.
type imagePayload struct {
	Version  uint64 `cbor:"1,keyasint"`
	Manifest bstr   `cbor:"2,keyasint"`
	Code     bstr   `cbor:"3,keyasint"`
	Digest   bstr   `cbor:"4,keyasint"`
}

// Image is a decoded signed container image. Fields are valid after
// OpenImage; they are authentic only after Verify returns nil.
type Image struct {
	Manifest []byte   // the container metadata, JSON, as packed
	Code     []byte   // the guest code (WebAssembly module or eBPF ELF)
	KeyID    string   // id of the signing key (see KeyID)
	Digest   [32]byte // SHA-256 of Code

	env *envelope
}

// Pack builds a signed image of a manifest (opaque JSON) and guest code.
func Pack(manifestJSON, code []byte, key ed25519.PrivateKey) ([]byte, error) {
	if err := checkImageParts(manifestJSON, code); err != nil {
		return nil, err
	}
	digest := sha256.Sum256(code)
	payload, err := encMode.Marshal(imagePayload{
		Version:  formatVersion,
		Manifest: manifestJSON,
		Code:     code,
		Digest:   digest[:],
	})
	if err != nil {
		return nil, malformed("encode image payload: %v", err)
	}
	return sign(kindImage, payload, key)
}

// OpenImage decodes a signed image and checks its structure and code
// digest, without verifying the signature (for inspect; a device must also
// call Verify with the tenant's key).
func OpenImage(b []byte) (*Image, error) {
	env, err := open(kindImage, b)
	if err != nil {
		return nil, err
	}
	var p imagePayload
	if err := env.decodePayload(&p); err != nil {
		return nil, err
	}
	if err := checkVersion(kindImage, p.Version); err != nil {
		return nil, err
	}
	if err := checkImageParts(p.Manifest, p.Code); err != nil {
		return nil, err
	}
	digest := sha256.Sum256(p.Code)
	if len(p.Digest) != len(digest) {
		return nil, malformed("image payload: code digest has %d bytes, want %d", len(p.Digest), len(digest))
	}
	if !bytes.Equal(p.Digest, digest[:]) {
		return nil, malformed("image payload: code digest does not match the code")
	}
	return &Image{Manifest: p.Manifest, Code: p.Code, KeyID: env.keyID, Digest: digest, env: env}, nil
}

// Verify checks that the image was signed by pub. ErrSignature when it was
// not; ErrKey when pub is not an Ed25519 public key.
func (img *Image) Verify(pub ed25519.PublicKey) error {
	if img == nil || img.env == nil {
		return malformed("image was not produced by OpenImage")
	}
	return img.env.verify(pub)
}

func checkImageParts(manifestJSON, code []byte) error {
	if len(manifestJSON) == 0 {
		return malformed("image: empty manifest")
	}
	if !json.Valid(manifestJSON) {
		return malformed("image: manifest is not valid JSON")
	}
	if len(code) == 0 {
		return malformed("image: empty code")
	}
	return nil
}
