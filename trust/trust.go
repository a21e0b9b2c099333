// Package trust holds TinyContainer's built-in security primitives: Ed25519
// keys, signed container images, owner-signed tenant grants and signed
// management commands with replay counters.
//
// Every signed document is a COSE_Sign1 message (RFC 9052, CBOR tag 18)
// signed with EdDSA (Ed25519). The protected header carries exactly the
// algorithm, a content type naming the document kind and the signer's key
// id; the unprotected header is always empty, so nothing unauthenticated
// rides along. The payload is a small CBOR map with integer keys whose
// first entry is a format version.
//
// Decoding is strict (see cbor.go) and never trusts a length it has not
// bounded: the size of a document is checked before any CBOR is parsed.
package trust

import (
	"errors"
	"fmt"
)

// Error classes. Every error returned by this package wraps exactly one of
// them with %w, so callers can branch with errors.Is.
var (
	// ErrMalformed: the bytes are not a well-formed document of the
	// expected kind (bad CBOR, wrong structure, size, version, digest).
	ErrMalformed = errors.New("trust: malformed document")
	// ErrSignature: the document is well formed but not validly signed by
	// the given key (wrong key, tampered content, bad signature, or a
	// command bound to another device).
	ErrSignature = errors.New("trust: signature check failed")
	// ErrKey: a key or key file is unusable (wrong type, wrong PEM block,
	// truncated, wrong size, I/O error).
	ErrKey = errors.New("trust: bad key")
)

// Size caps, checked before decoding. An image carries the guest code of a
// container: at most the largest max code a grant may give (4 MiB, SPEC
// section 5; the tenant's own max code is enforced where the code is
// compiled) plus room for the manifest and signature. A command may carry
// a whole image as its body (deploy, update), hence the extra room.
const (
	MaxImageSize   = 4<<20 + 64<<10
	MaxGrantSize   = 64 << 10
	MaxCommandSize = MaxImageSize + 64<<10
)

// formatVersion is the version of every payload layout in this package.
const formatVersion = 1

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

func badSignature(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrSignature}, args...)...)
}

func badKey(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrKey}, args...)...)
}
