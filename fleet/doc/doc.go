// Package doc holds the fleet's document formats (SPEC section 8): the
// topic tree on the broker, what a device publishes about itself (status
// and reported state, plain JSON) and the signed documents it acts on
// (owner-signed grants, tenant-signed desired states, tenant-signed
// rollouts and their progress). Images are the signed images of package
// trust, addressed by the SHA-256 of their bytes.
//
// Every signed document is a COSE_Sign1 envelope of package trust (its
// own content type per kind) around a JSON payload. Every one names the
// device(s) it is for (rollouts: the devices they target) and carries a
// sequence number; decoding is strict (unknown fields, trailing data, bad
// names, out-of-range numbers are refused) and bounded in size before
// anything is parsed. The device-side rules (refuse another device's
// document, an older sequence, an unsigned or empty message) are
// CheckFor here and the replay state kept by the device.
//
// The formats are described for users in docs/fleet.md.
package doc

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/tinycontainer/tinycontainer/internal/lazyre"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/trust"
)

// Error classes; every error of this package wraps exactly one.
var (
	// ErrMalformed: not a well-formed document of the expected kind
	// (empty, unsigned, bad JSON, unknown field, bad name, too large).
	ErrMalformed = errors.New("fleet: malformed document")
	// ErrSignature: well formed, but not signed by the expected key.
	ErrSignature = errors.New("fleet: signature check failed")
	// ErrNotForDevice: a signed document that does not name this device,
	// or names another tenant than its topic.
	ErrNotForDevice = errors.New("fleet: document is not for this device")
	// ErrStale: a sequence number at or below one already accepted.
	ErrStale = errors.New("fleet: stale or replayed document")
)

// Version is the format version of every payload ("v").
const Version = 1

// Limits, checked before and while decoding.
const (
	MaxStatusSize   = 16 << 10
	MaxReportedSize = 512 << 10
	MaxDocSize      = trust.MaxDocSize
	MaxImageSize    = trust.MaxImageSize
	MaxDevices      = 10000 // devices named by one document
	MaxContainers   = 64    // containers in one desired state
	MaxLabels       = 32
	MaxLabelLen     = 64
	MaxReasonLen    = 512
	MaxHealth       = 24 * time.Hour
)

var (
	idPattern    = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	labelPattern = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$`)
	digestRE     = lazyre.New(`^[0-9a-f]{64}$`)
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// ValidID checks a device or rollout id: [A-Za-z0-9][A-Za-z0-9._-]{0,63}
// (no MQTT wildcard or level separator, so it is one topic level).
func ValidID(s string) error {
	if !idPattern().MatchString(s) {
		return malformed("id %q must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}", s)
	}
	return nil
}

// ValidTenant checks a tenant name (the rule of the manifest).
func ValidTenant(s string) error {
	if err := meta.ValidName(s); err != nil {
		return malformed("tenant: %v", err)
	}
	return nil
}

// ValidDigest checks a content address: 64 lower-case hex digits.
func ValidDigest(s string) error {
	if !digestRE().MatchString(s) {
		return malformed("digest %q must be 64 lower-case hex digits (SHA-256)", s)
	}
	return nil
}

// ValidLabels checks device labels (keys and values alike).
func ValidLabels(l map[string]string) error {
	if len(l) > MaxLabels {
		return malformed("%d labels, at most %d", len(l), MaxLabels)
	}
	for k, v := range l {
		if !labelPattern().MatchString(k) {
			return malformed("label key %q must match [A-Za-z0-9][A-Za-z0-9._/-]{0,63}", k)
		}
		if v != "" && !labelPattern().MatchString(v) {
			return malformed("label %s: value %q must match [A-Za-z0-9][A-Za-z0-9._/-]{0,63}", k, v)
		}
	}
	return nil
}

// Digest is the content address of an image: the SHA-256 of its bytes
// exactly as published, in hex.
func Digest(image []byte) string {
	s := sha256.Sum256(image)
	return hex.EncodeToString(s[:])
}

// Duration is a time.Duration written as Go's duration text ("2s").
type Duration time.Duration

// MarshalJSON writes d as text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration text between 0 and MaxHealth.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("duration: want a string such as \"2s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %v", err)
	}
	if v < 0 || v > MaxHealth {
		return fmt.Errorf("duration %s outside 0..%s", v, MaxHealth)
	}
	*d = Duration(v)
	return nil
}

// decodeStrict decodes exactly one JSON value into v, refusing unknown
// fields and trailing data.
func decodeStrict(what string, b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return malformed("%s: %v", what, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return malformed("%s: trailing data after the document", what)
	}
	return nil
}

// decodeLoose decodes one JSON value, ignoring unknown fields (what
// devices publish may come from a newer build).
func decodeLoose(what string, b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return malformed("%s: %v", what, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return malformed("%s: trailing data after the document", what)
	}
	return nil
}

func checkVersion(what string, v int) error {
	if v != Version {
		return malformed("%s: format version %d, want %d", what, v, Version)
	}
	return nil
}

// checkDevices validates the device list of a signed document.
func checkDevices(what string, devs []string) error {
	if len(devs) == 0 {
		return malformed("%s: names no device", what)
	}
	if len(devs) > MaxDevices {
		return malformed("%s: names %d devices, at most %d", what, len(devs), MaxDevices)
	}
	for _, d := range devs {
		if err := ValidID(d); err != nil {
			return fmt.Errorf("%s: device: %w", what, err)
		}
	}
	return nil
}

// names reports whether the document's device list includes id.
func names(devs []string, id string) bool { return slices.Contains(devs, id) }

// sealed signs payload v as a document of kind k.
func sealed(k trust.DocKind, v any, key ed25519.PrivateKey) ([]byte, error) {
	p, err := json.Marshal(v)
	if err != nil {
		return nil, malformed("encode %s: %v", k, err)
	}
	b, err := trust.SignDoc(k, p, key)
	if err != nil {
		return nil, fromTrust(err)
	}
	return b, nil
}

// unseal opens a signed document of kind k, verifies it under pub, and
// decodes its payload strictly into v.
func unseal(k trust.DocKind, b []byte, pub ed25519.PublicKey, v any) (keyID string, err error) {
	if len(b) == 0 {
		return "", malformed("%s: empty message", k)
	}
	if len(b) > MaxDocSize {
		return "", malformed("%s: %d bytes, more than %d", k, len(b), MaxDocSize)
	}
	d, err := trust.OpenDoc(k, b)
	if err != nil {
		return "", fromTrust(err)
	}
	if err := d.Verify(pub); err != nil {
		return d.KeyID, fromTrust(err)
	}
	return d.KeyID, decodeStrict(string(k), d.Payload, v)
}

// fromTrust maps trust's error classes onto this package's.
func fromTrust(err error) error {
	switch {
	case errors.Is(err, trust.ErrSignature), errors.Is(err, trust.ErrKey):
		return fmt.Errorf("%w: %w", ErrSignature, err)
	default:
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
}

// CheckDigest refuses an image whose bytes do not hash to want.
func CheckDigest(image []byte, want string) error {
	if got := Digest(image); got != want {
		return malformed("image digest %s does not match its address %s", got, want)
	}
	return nil
}

// CheckSeq applies the replay rule to a signed document with sequence seq
// and content address digest, given the last one accepted on the same
// topic: a higher seq is new; the same seq with the same bytes is a
// duplicate (a retained message seen again, dup true, nothing to do); a
// lower seq, or the same seq with other bytes, is refused with ErrStale.
func CheckSeq(lastSeq uint64, lastDigest string, seq uint64, digest string) (dup bool, err error) {
	switch {
	case seq > lastSeq:
		return false, nil
	case seq == lastSeq && digest == lastDigest:
		return true, nil
	case seq == lastSeq:
		return false, fmt.Errorf("%w: sequence %d was already accepted with other content", ErrStale, seq)
	}
	return false, fmt.Errorf("%w: sequence %d is older than the %d accepted", ErrStale, seq, lastSeq)
}
