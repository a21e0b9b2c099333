package trust

import (
	"crypto/ed25519"
	"sync/atomic"
	"time"
	"unicode"
)

// Limits on the command fields. Verbs are short tokens chosen by the device
// (deploy, stop, meta-apply, ...); targets are container or tenant names.
const (
	maxVerbLen   = 32
	maxTargetLen = 255
	maxDeviceLen = 64
)

// Command is a state-changing management request.
//
// Replay protection: Counter must be strictly greater than the last counter
// the device accepted from the same signing key. The device verifies the
// signature, then calls store.UseCounter(signed.KeyID, Counter), which
// records the counter atomically and refuses a replayed or older one.
// NewCounter gives wall-clock based counters, so separate CLI runs on one
// machine keep increasing without any client state. Device, when set, binds
// the command to one device so it cannot be replayed on another one that
// trusts the same key (see SignedCommand.CheckDevice).
type Command struct {
	Verb    string
	Target  string
	Body    []byte
	Counter uint64
	Device  string // optional binding to one device id; "" for any device
}

type commandPayload struct {
	Version uint64 `cbor:"1,keyasint"`
	Verb    string `cbor:"2,keyasint"`
	Target  string `cbor:"3,keyasint,omitempty"`
	Body    bstr   `cbor:"4,keyasint,omitempty"`
	Counter uint64 `cbor:"5,keyasint"`
	Device  string `cbor:"6,keyasint,omitempty"`
}

// SignedCommand is a decoded signed command. Command and KeyID are valid
// after OpenCommand; they are authentic only after Verify returns nil.
type SignedCommand struct {
	Command Command
	KeyID   string // id of the signing key: pick the verification key by it

	env *envelope
}

// SignCommand signs c with key.
func SignCommand(c Command, key ed25519.PrivateKey) ([]byte, error) {
	if err := checkCommand(c); err != nil {
		return nil, err
	}
	payload, err := encMode.Marshal(commandPayload{
		Version: formatVersion,
		Verb:    c.Verb,
		Target:  c.Target,
		Body:    c.Body,
		Counter: c.Counter,
		Device:  c.Device,
	})
	if err != nil {
		return nil, malformed("encode command payload: %v", err)
	}
	return sign(kindCommand, payload, key)
}

// OpenCommand decodes a signed command without verifying it, so the device
// can find the signer's key by KeyID first.
func OpenCommand(b []byte) (*SignedCommand, error) {
	env, err := open(kindCommand, b)
	if err != nil {
		return nil, err
	}
	var p commandPayload
	if err := env.decodePayload(&p); err != nil {
		return nil, err
	}
	if err := checkVersion(kindCommand, p.Version); err != nil {
		return nil, err
	}
	c := Command{Verb: p.Verb, Target: p.Target, Body: p.Body, Counter: p.Counter, Device: p.Device}
	if err := checkCommand(c); err != nil {
		return nil, err
	}
	return &SignedCommand{Command: c, KeyID: env.keyID, env: env}, nil
}

// Verify checks that the command was signed by pub. It does not check the
// counter (the device's store does) nor the device binding (CheckDevice).
func (s *SignedCommand) Verify(pub ed25519.PublicKey) error {
	if s == nil || s.env == nil {
		return malformed("command was not produced by OpenCommand")
	}
	return s.env.verify(pub)
}

// CheckDevice refuses, with ErrSignature, a command bound to a device other
// than id. An unbound command is accepted by any device.
func (s *SignedCommand) CheckDevice(id string) error {
	if s.Command.Device != "" && s.Command.Device != id {
		return badSignature("command is bound to device %q, this is %q", s.Command.Device, id)
	}
	return nil
}

var lastCounter atomic.Uint64

// NewCounter returns a replay counter: the current Unix time in
// nanoseconds, bumped when needed so that it strictly increases within the
// process even if the clock stalls or steps back.
func NewCounter() uint64 {
	for {
		now := uint64(max(time.Now().UnixNano(), 0))
		last := lastCounter.Load()
		next := max(now, last+1)
		if lastCounter.CompareAndSwap(last, next) {
			return next
		}
	}
}

func checkCommand(c Command) error {
	if c.Verb == "" || len(c.Verb) > maxVerbLen {
		return malformed("command: verb must be 1 to %d bytes", maxVerbLen)
	}
	for i, r := range c.Verb {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || i > 0 && (r == '-' || r == '_' || r == '.')
		if !ok {
			return malformed("command: verb %q: want a lower-case token [a-z0-9][a-z0-9._-]*", c.Verb)
		}
	}
	if err := checkText("target", c.Target, maxTargetLen); err != nil {
		return err
	}
	if err := checkText("device", c.Device, maxDeviceLen); err != nil {
		return err
	}
	if c.Counter == 0 {
		return malformed("command: counter must be positive")
	}
	return nil
}

// checkText bounds a name field and keeps control characters out, since
// these strings end up in audit records and terminal output.
func checkText(field, s string, maxLen int) error {
	if len(s) > maxLen {
		return malformed("command: %s is %d bytes, more than %d", field, len(s), maxLen)
	}
	for _, r := range s {
		if r == unicode.ReplacementChar || unicode.IsControl(r) {
			return malformed("command: %s %q contains a control or invalid character", field, s)
		}
	}
	return nil
}
