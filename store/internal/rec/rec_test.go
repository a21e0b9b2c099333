package rec

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/store"
)

func TestContainerRoundTrip(t *testing.T) {
	c := store.Container{Name: "thermo", Tenant: "acme", Version: 1 << 40, Image: []byte("img"),
		Manifest: []byte("{}"), State: store.StateFaulted}
	b := EncodeContainer(&c)
	got, err := DecodeContainer(b)
	if err != nil || got.Name != c.Name || got.Tenant != c.Tenant || got.Version != c.Version ||
		got.State != c.State || !bytes.Equal(got.Image, c.Image) || !bytes.Equal(got.Manifest, c.Manifest) || got.Compiled != nil {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	// Every single-bit flip is caught by the checksum.
	for i := range len(b) * 8 {
		m := bytes.Clone(b)
		m[i/8] ^= 1 << (i % 8)
		if _, err := DecodeContainer(m); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("bit %d flipped: %v", i, err)
		}
	}
	if _, err := DecodeAudit(b); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("container record decoded as audit: %v", err)
	}
}

func TestAuditRoundTrip(t *testing.T) {
	a := store.Audit{Time: time.Date(2026, 5, 1, 2, 3, 4, 5, time.FixedZone("", -7200)), Container: "c",
		Tenant: "t", Endpoint: "kv", Op: "put", Reason: "quota"}
	got, err := DecodeAudit(EncodeAudit(&a))
	if err != nil || !got.Time.Equal(a.Time) || got.Reason != a.Reason || got.Op != a.Op ||
		got.Endpoint != a.Endpoint || got.Tenant != a.Tenant || got.Container != a.Container {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, b := range [][]byte{nil, {1}, {kindAudit, formatV1, 0, 0, 0, 0}} {
		if _, err := DecodeAudit(b); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("DecodeAudit(%x): %v", b, err)
		}
	}
}

func FuzzDecodeContainer(f *testing.F) {
	f.Add(EncodeContainer(&store.Container{Name: "a", Tenant: "t", State: store.StateRunning}))
	f.Add(EncodeContainer(&store.Container{Name: "thermo", Tenant: "acme", Version: 3, Image: []byte("wasm"),
		Manifest: []byte(`{"x":1}`), State: store.StateStopped, Compiled: []byte{1, 2}}))
	f.Add([]byte{kindContainer, formatV1})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeContainer(b)
		if err != nil {
			if !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("error outside ErrInvalid: %v", err)
			}
			return
		}
		// Whatever decodes is valid and survives a re-encode.
		again, err := DecodeContainer(EncodeContainer(&c))
		if CheckContainer(&c) != nil || err != nil || again.Name != c.Name || again.Version != c.Version ||
			!bytes.Equal(again.Image, c.Image) || !bytes.Equal(again.Compiled, c.Compiled) {
			t.Fatalf("decoded %+v does not round-trip: %v", c, err)
		}
	})
}

func FuzzDecodeAudit(f *testing.F) {
	f.Add(EncodeAudit(&store.Audit{Time: time.Unix(1, 2), Reason: "r"}))
	f.Add(EncodeAudit(&store.Audit{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 3600)),
		Container: "c", Tenant: "t", Endpoint: "sensor/x", Op: "read", Reason: "denied"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := DecodeAudit(b)
		if err != nil {
			if !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("error outside ErrInvalid: %v", err)
			}
			return
		}
		if CheckAudit(&a) != nil {
			t.Fatalf("decoded invalid record %+v", a)
		}
		again, err := DecodeAudit(EncodeAudit(&a))
		if err != nil || !again.Time.Equal(a.Time) || again.Reason != a.Reason {
			t.Fatalf("re-encode of %+v: %+v, %v", a, again, err)
		}
	})
}
