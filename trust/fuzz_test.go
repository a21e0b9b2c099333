package trust

import (
	"bytes"
	"crypto/sha256"
	"testing"
)

// The fuzzers check that decoding never panics or hangs, that every error
// carries the right class, and that whatever is accepted satisfies the
// documented invariants.

func FuzzOpenImage(f *testing.F) {
	pub, priv := testKey(1)
	good, err := Pack([]byte(testManifest), testCode, priv)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(append(bytes.Clone(good), 0))
	grant, _ := SignGrant([]byte(testCeiling), pub, priv)
	f.Add(grant)
	f.Add([]byte{0xd2, 0x84, 0x40, 0xa0, 0x40, 0x40})
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := OpenImage(b)
		if err != nil {
			if classOf(err) != ErrMalformed {
				t.Fatalf("OpenImage error %v is not ErrMalformed", err)
			}
			return
		}
		if img.Digest != sha256.Sum256(img.Code) || len(img.Manifest) == 0 || len(img.KeyID) != 16 {
			t.Fatalf("accepted image breaks invariants: %+v", img)
		}
		err = img.Verify(pub)
		if err != nil && classOf(err) != ErrSignature {
			t.Fatalf("Verify error %v is not ErrSignature", err)
		}
		if err == nil && !bytes.Equal(b, good) {
			// Only byte-identical content may verify; the envelope
			// has no malleable parts apart from length encodings.
			if !bytes.Equal(img.Code, testCode) || string(img.Manifest) != testManifest {
				t.Fatalf("forged image verified: %x", b)
			}
		}
	})
}

func FuzzOpenGrant(f *testing.F) {
	ownerPub, owner := testKey(10)
	tenantPub, _ := testKey(1)
	good, err := SignGrant([]byte(testCeiling), tenantPub, owner)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:20])
	img, _ := Pack([]byte(testManifest), testCode, owner)
	f.Add(img)
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := OpenGrant(b, ownerPub)
		if err != nil {
			if c := classOf(err); c != ErrMalformed && c != ErrSignature {
				t.Fatalf("OpenGrant error %v has class %v", err, c)
			}
			return
		}
		if string(g.CeilingJSON) != testCeiling || !g.TenantKey.Equal(tenantPub) {
			t.Fatalf("forged grant accepted: %+v", g)
		}
	})
}

func FuzzOpenCommand(f *testing.F) {
	pub, priv := testKey(1)
	good, err := SignCommand(testCommand(), priv)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	minimal, _ := SignCommand(Command{Verb: "ps", Counter: 1}, priv)
	f.Add(minimal)
	f.Add(good[:40])
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := OpenCommand(b)
		if err != nil {
			if classOf(err) != ErrMalformed {
				t.Fatalf("OpenCommand error %v is not ErrMalformed", err)
			}
			return
		}
		if err := checkCommand(s.Command); err != nil {
			t.Fatalf("accepted command is invalid: %v", err)
		}
		err = s.Verify(pub)
		if err != nil && classOf(err) != ErrSignature {
			t.Fatalf("Verify error %v is not ErrSignature", err)
		}
		if err == nil {
			want := testCommand()
			if bytes.Equal(s.Command.Body, want.Body) && s.Command.Counter == want.Counter && s.Command.Verb == want.Verb &&
				s.Command.Target == want.Target && s.Command.Device == want.Device {
				return
			}
			if s.Command.Verb == "ps" && s.Command.Counter == 1 && s.Command.Target == "" && s.Command.Body == nil {
				return
			}
			t.Fatalf("forged command verified: %+v", s.Command)
		}
	})
}

func FuzzParseKeys(f *testing.F) {
	pub, priv := testKey(1)
	privPEM, _ := MarshalPrivateKey(priv)
	pubPEM, _ := MarshalPublicKey(pub)
	f.Add(privPEM)
	f.Add(pubPEM)
	f.Add(privPEM[:50])
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, err := ParsePrivateKey(b); err != nil {
			if classOf(err) != ErrKey {
				t.Fatalf("ParsePrivateKey error %v is not ErrKey", err)
			}
		} else if err := checkPrivateKey(k); err != nil {
			t.Fatalf("ParsePrivateKey returned an unusable key: %v", err)
		}
		if k, err := ParsePublicKey(b); err != nil {
			if classOf(err) != ErrKey {
				t.Fatalf("ParsePublicKey error %v is not ErrKey", err)
			}
		} else if err := checkPublicKey(k); err != nil {
			t.Fatalf("ParsePublicKey returned an unusable key: %v", err)
		}
	})
}
