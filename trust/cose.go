package trust

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"
)

// kind is one sort of signed document. Its content type sits in the
// protected header, so a signature over one kind can never be passed off as
// another (a grant replayed as a command, say).
type kind struct {
	name        string
	contentType string
	maxSize     int
}

var (
	kindImage   = kind{"image", "application/vnd.tinycontainer.image+cbor", MaxImageSize}
	kindGrant   = kind{"grant", "application/vnd.tinycontainer.grant+cbor", MaxGrantSize}
	kindCommand = kind{"command", "application/vnd.tinycontainer.command+cbor", MaxCommandSize}
)

func kindName(contentType string) string {
	for _, k := range []kind{kindImage, kindGrant, kindCommand} {
		if k.contentType == contentType {
			return k.name
		}
	}
	for _, k := range docKinds {
		if k.contentType == contentType {
			return k.name
		}
	}
	return fmt.Sprintf("content type %q", contentType)
}

var (
	encMode cbor.EncMode
	// topDec accepts a tag only at the top; innerDec refuses all tags.
	// Both refuse duplicate map keys, indefinite lengths, unknown struct
	// fields, invalid UTF-8, and bound nesting and container sizes, so the
	// decoder's work is linear in the (already capped) input size.
	topDec, innerDec cbor.DecMode
)

func init() {
	var err error
	encMode, err = cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err) // static options; cannot fail
	}
	opts := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		MaxNestedLevels:   4,
		MaxArrayElements:  16,
		MaxMapPairs:       16,
		TagsMd:            cbor.TagsAllowed,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
	}
	if topDec, err = opts.DecMode(); err != nil {
		panic(err)
	}
	opts.TagsMd = cbor.TagsForbidden
	if innerDec, err = opts.DecMode(); err != nil {
		panic(err)
	}
}

// bstr is a CBOR byte string that refuses every other major type; plain
// []byte would also accept an array of small integers.
type bstr []byte

func (b *bstr) UnmarshalCBOR(data []byte) error {
	if len(data) == 0 || data[0]>>5 != 2 {
		return errors.New("want a byte string")
	}
	var v []byte
	if err := innerDec.Unmarshal(data, &v); err != nil {
		return err
	}
	*b = v
	return nil
}

// sign1 is the untagged COSE_Sign1 array (RFC 9052 section 4.2).
type sign1 struct {
	_           struct{} `cbor:",toarray"`
	Protected   cbor.RawMessage
	Unprotected cbor.RawMessage
	Payload     bstr
	Signature   bstr
}

// protectedHeader lists the only labels accepted; any other (crit
// included) is refused as an unknown field.
type protectedHeader struct {
	Alg         *int64 `cbor:"1,keyasint"`
	ContentType string `cbor:"3,keyasint"`
	KeyID       bstr   `cbor:"4,keyasint"`
}

// emptyMap is the only accepted unprotected header.
var emptyMap = []byte{0xa0}

// envelope is a decoded, not yet verified, COSE_Sign1 document.
type envelope struct {
	kind         kind
	rawProtected []byte // the protected bstr exactly as signed
	keyID        string
	payload      []byte
	signature    []byte
}

// sign wraps payload (already CBOR) into a COSE_Sign1 signed by priv.
func sign(k kind, payload []byte, priv ed25519.PrivateKey) ([]byte, error) {
	if err := checkPrivateKey(priv); err != nil {
		return nil, err
	}
	if len(payload) > k.maxSize {
		return nil, malformed("%s payload is %d bytes, more than the %d allowed", k.name, len(payload), k.maxSize)
	}
	kid := keyIDBytes(priv.Public().(ed25519.PublicKey))
	signer, err := cose.NewSigner(cose.AlgorithmEdDSA, priv)
	if err != nil {
		return nil, badKey("%v", err)
	}
	headers := cose.Headers{
		Protected: cose.ProtectedHeader{
			cose.HeaderLabelAlgorithm:   cose.AlgorithmEdDSA,
			cose.HeaderLabelContentType: k.contentType,
			cose.HeaderLabelKeyID:       kid[:],
		},
		Unprotected: cose.UnprotectedHeader{},
	}
	out, err := cose.Sign1(rand.Reader, signer, headers, payload, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: sign %s: %v", ErrKey, k.name, err)
	}
	if len(out) > k.maxSize {
		return nil, malformed("signed %s is %d bytes, more than the %d allowed", k.name, len(out), k.maxSize)
	}
	return out, nil
}

// open decodes b as a COSE_Sign1 document of kind k without verifying it.
func open(k kind, b []byte) (*envelope, error) {
	if len(b) > k.maxSize {
		return nil, malformed("%s is %d bytes, more than the %d allowed", k.name, len(b), k.maxSize)
	}
	if len(b) == 0 {
		return nil, malformed("%s is empty", k.name)
	}
	// Only the one-byte form of tag 18 is accepted: every encoder emits it,
	// and one encoding per document leaves nothing to play with.
	if b[0] != 0xd2 {
		return nil, malformed("%s: not a COSE_Sign1 (does not start with tag 18)", k.name)
	}
	var tag cbor.RawTag
	if err := topDec.Unmarshal(b, &tag); err != nil {
		return nil, malformed("%s: not a tagged COSE_Sign1: %v", k.name, err)
	}
	var msg sign1
	if err := innerDec.Unmarshal(tag.Content, &msg); err != nil {
		return nil, malformed("%s: COSE_Sign1 structure: %v", k.name, err)
	}
	var protected bstr
	if err := protected.UnmarshalCBOR(msg.Protected); err != nil {
		return nil, malformed("%s: protected header: %v", k.name, err)
	}
	var hdr protectedHeader
	if err := innerDec.Unmarshal(protected, &hdr); err != nil {
		return nil, malformed("%s: protected header: %v", k.name, err)
	}
	switch {
	case hdr.Alg == nil:
		return nil, malformed("%s: protected header has no algorithm", k.name)
	case *hdr.Alg != int64(cose.AlgorithmEdDSA):
		return nil, malformed("%s: algorithm %d, want EdDSA (%d)", k.name, *hdr.Alg, cose.AlgorithmEdDSA)
	case hdr.ContentType != k.contentType:
		if hdr.ContentType == "" {
			return nil, malformed("%s: protected header has no content type", k.name)
		}
		return nil, malformed("%s: document is a %s", k.name, kindName(hdr.ContentType))
	case len(hdr.KeyID) != keyIDLen:
		return nil, malformed("%s: key id has %d bytes, want %d", k.name, len(hdr.KeyID), keyIDLen)
	}
	if !bytes.Equal(msg.Unprotected, emptyMap) {
		return nil, malformed("%s: unprotected header must be empty", k.name)
	}
	if msg.Payload == nil {
		return nil, malformed("%s: payload missing", k.name)
	}
	if len(msg.Signature) != ed25519.SignatureSize {
		return nil, malformed("%s: signature has %d bytes, want %d", k.name, len(msg.Signature), ed25519.SignatureSize)
	}
	return &envelope{
		kind:         k,
		rawProtected: msg.Protected,
		keyID:        hex.EncodeToString(hdr.KeyID),
		payload:      msg.Payload,
		signature:    msg.Signature,
	}, nil
}

// verify checks the envelope's signature under pub.
func (e *envelope) verify(pub ed25519.PublicKey) error {
	if err := checkPublicKey(pub); err != nil {
		return err
	}
	if id := KeyID(pub); id != e.keyID {
		return badSignature("%s is signed by key %s, not by key %s", e.kind.name, e.keyID, id)
	}
	verifier, err := cose.NewVerifier(cose.AlgorithmEdDSA, pub)
	if err != nil {
		return badKey("%v", err)
	}
	msg := cose.Sign1Message{
		Headers: cose.Headers{
			RawProtected: e.rawProtected,
			Protected:    cose.ProtectedHeader{cose.HeaderLabelAlgorithm: cose.AlgorithmEdDSA},
		},
		Payload:   e.payload,
		Signature: e.signature,
	}
	if err := msg.Verify(nil, verifier); err != nil {
		return badSignature("%s signature does not verify under key %s", e.kind.name, e.keyID)
	}
	return nil
}

// decodePayload decodes the envelope's payload strictly into v.
func (e *envelope) decodePayload(v any) error {
	if err := innerDec.Unmarshal(e.payload, v); err != nil {
		return malformed("%s payload: %v", e.kind.name, err)
	}
	return nil
}

func checkVersion(k kind, v uint64) error {
	if v != formatVersion {
		return malformed("%s payload: format version %d, want %d", k.name, v, formatVersion)
	}
	return nil
}
