// Package rec holds what the store implementations share: input validation
// against the limits of package store, and the binary encoding of records
// that boltstore writes to disk.
package rec

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/tinycontainer/tinycontainer/store"
)

// CheckName validates a container, tenant or signer name used as a key.
func CheckName(what, name string) error {
	if len(name) == 0 || len(name) > store.MaxNameLen {
		return fmt.Errorf("%w: %s name length %d outside 1..%d", store.ErrInvalid, what, len(name), store.MaxNameLen)
	}
	return nil
}

// CheckKV validates the arguments of a kv write.
func CheckKV(container, key string, value []byte) error {
	if err := CheckName("container", container); err != nil {
		return err
	}
	if len(key) == 0 || len(key) > store.MaxKeyLen {
		return fmt.Errorf("%w: kv key length %d outside 1..%d", store.ErrInvalid, len(key), store.MaxKeyLen)
	}
	if len(value) > store.MaxValueLen {
		return fmt.Errorf("%w: kv value length %d above %d", store.ErrInvalid, len(value), store.MaxValueLen)
	}
	return nil
}

// CheckContainer validates a container record.
func CheckContainer(c *store.Container) error {
	if err := CheckName("container", c.Name); err != nil {
		return err
	}
	if err := CheckName("tenant", c.Tenant); err != nil {
		return fmt.Errorf("container %q: %w", c.Name, err)
	}
	switch c.State {
	case store.StateRunning, store.StateStopped, store.StateFaulted:
	default:
		return fmt.Errorf("%w: container %q: state %q is not running, stopped or faulted", store.ErrInvalid, c.Name, c.State)
	}
	for _, b := range []struct {
		field string
		n     int
	}{{"image", len(c.Image)}, {"manifest", len(c.Manifest)}, {"compiled", len(c.Compiled)}} {
		if b.n > store.MaxBlobLen {
			return fmt.Errorf("%w: container %q: %s of %d bytes above %d", store.ErrInvalid, c.Name, b.field, b.n, store.MaxBlobLen)
		}
	}
	return nil
}

// CheckTenant validates a tenant record.
func CheckTenant(t *store.Tenant) error {
	if err := CheckName("tenant", t.Name); err != nil {
		return err
	}
	if len(t.Grant) > store.MaxBlobLen {
		return fmt.Errorf("%w: tenant %q: grant of %d bytes above %d", store.ErrInvalid, t.Name, len(t.Grant), store.MaxBlobLen)
	}
	return nil
}

// CheckAudit validates an audit record.
func CheckAudit(a *store.Audit) error {
	for _, f := range []struct{ field, v string }{
		{"container", a.Container}, {"tenant", a.Tenant}, {"endpoint", a.Endpoint}, {"op", a.Op}, {"reason", a.Reason},
	} {
		if len(f.v) > store.MaxAuditField {
			return fmt.Errorf("%w: audit %s of %d bytes above %d", store.ErrInvalid, f.field, len(f.v), store.MaxAuditField)
		}
	}
	if _, err := a.Time.MarshalBinary(); err != nil {
		return fmt.Errorf("%w: audit time: %v", store.ErrInvalid, err)
	}
	return nil
}

// Clone copies b; empty input gives nil so both stores return the same.
func Clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

// CloneContainer deep-copies c.
func CloneContainer(c store.Container) store.Container {
	c.Image, c.Manifest, c.Compiled = Clone(c.Image), Clone(c.Manifest), Clone(c.Compiled)
	return c
}

// Record encoding: a kind byte, a format version byte, length-prefixed
// fields, and a CRC-32C of everything before it. bbolt checksums only its
// meta pages, so the CRC is what catches a flipped bit inside a record.
const (
	kindContainer = 'C'
	kindAudit     = 'A'
	formatV1      = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// EncodeContainer encodes a validated container record.
func EncodeContainer(c *store.Container) []byte {
	n := 2 + 6*binary.MaxVarintLen64 + len(c.Name) + len(c.Tenant) + len(c.State) +
		binary.MaxVarintLen64 + len(c.Image) + len(c.Manifest) + len(c.Compiled) + 4
	b := make([]byte, 0, n)
	b = append(b, kindContainer, formatV1)
	b = appendBytes(b, []byte(c.Name))
	b = appendBytes(b, []byte(c.Tenant))
	b = binary.AppendUvarint(b, c.Version)
	b = appendBytes(b, []byte(c.State))
	b = appendBytes(b, c.Image)
	b = appendBytes(b, c.Manifest)
	b = appendBytes(b, c.Compiled)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// DecodeContainer decodes and validates a container record; the result does
// not alias b.
func DecodeContainer(b []byte) (store.Container, error) {
	d, err := open(b, kindContainer)
	if err != nil {
		return store.Container{}, err
	}
	var c store.Container
	c.Name = string(d.bytes())
	c.Tenant = string(d.bytes())
	c.Version = d.uvarint()
	c.State = string(d.bytes())
	c.Image = Clone(d.bytes())
	c.Manifest = Clone(d.bytes())
	c.Compiled = Clone(d.bytes())
	if err := d.finish(); err != nil {
		return store.Container{}, err
	}
	if err := CheckContainer(&c); err != nil {
		return store.Container{}, fmt.Errorf("stored container record: %w", err)
	}
	return c, nil
}

// EncodeAudit encodes a validated audit record.
func EncodeAudit(a *store.Audit) []byte {
	tb, _ := a.Time.MarshalBinary() // CheckAudit made sure this succeeds
	b := make([]byte, 0, 2+6*binary.MaxVarintLen64+len(tb)+len(a.Container)+len(a.Tenant)+len(a.Endpoint)+len(a.Op)+len(a.Reason)+4)
	b = append(b, kindAudit, formatV1)
	b = appendBytes(b, tb)
	for _, s := range []string{a.Container, a.Tenant, a.Endpoint, a.Op, a.Reason} {
		b = appendBytes(b, []byte(s))
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// DecodeAudit decodes and validates an audit record.
func DecodeAudit(b []byte) (store.Audit, error) {
	d, err := open(b, kindAudit)
	if err != nil {
		return store.Audit{}, err
	}
	var a store.Audit
	tb := d.bytes()
	a.Container = string(d.bytes())
	a.Tenant = string(d.bytes())
	a.Endpoint = string(d.bytes())
	a.Op = string(d.bytes())
	a.Reason = string(d.bytes())
	if err := d.finish(); err != nil {
		return store.Audit{}, err
	}
	if err := a.Time.UnmarshalBinary(tb); err != nil {
		return store.Audit{}, fmt.Errorf("%w: audit record time: %v", store.ErrInvalid, err)
	}
	if err := CheckAudit(&a); err != nil {
		return store.Audit{}, fmt.Errorf("stored audit record: %w", err)
	}
	return a, nil
}

// StripTime drops the monotonic clock reading, which cannot be stored.
func StripTime(t time.Time) time.Time { return t.Round(0) }

func appendBytes(b, v []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(v))), v...)
}

// decoder reads fields sequentially; the first error sticks and later reads
// return zero values, so callers check once in finish.
type decoder struct {
	b   []byte
	err error
}

func open(b []byte, kind byte) (*decoder, error) {
	if len(b) < 2+4 {
		return nil, fmt.Errorf("%w: corrupt record: %d bytes is too short", store.ErrInvalid, len(b))
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("%w: corrupt record: checksum mismatch", store.ErrInvalid)
	}
	if body[0] != kind {
		return nil, fmt.Errorf("%w: corrupt record: kind %q, want %q", store.ErrInvalid, body[0], kind)
	}
	if body[1] != formatV1 {
		return nil, fmt.Errorf("%w: corrupt record: unsupported format version %d", store.ErrInvalid, body[1])
	}
	return &decoder{b: body[2:]}, nil
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: corrupt record: bad varint", store.ErrInvalid)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("%w: corrupt record: field of %d bytes overruns record", store.ErrInvalid, n)
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) finish() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: corrupt record: %d trailing bytes", store.ErrInvalid, len(d.b))
	}
	return d.err
}
