package trust

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

func TestImageRoundTrip(t *testing.T) {
	pub, priv := testKey(1)
	b, err := Pack([]byte(testManifest), testCode, priv)
	if err != nil {
		t.Fatal(err)
	}
	img, err := OpenImage(b)
	if err != nil {
		t.Fatal(err)
	}
	if string(img.Manifest) != testManifest || !bytes.Equal(img.Code, testCode) {
		t.Fatalf("round trip changed content: %q %q", img.Manifest, img.Code)
	}
	if img.KeyID != KeyID(pub) {
		t.Fatalf("KeyID %s, want %s", img.KeyID, KeyID(pub))
	}
	if img.Digest != sha256.Sum256(testCode) {
		t.Fatal("wrong digest")
	}
	if err := img.Verify(pub); err != nil {
		t.Fatal(err)
	}
	other, _ := testKey(2)
	wantClass(t, img.Verify(other), ErrSignature)
	wantClass(t, img.Verify(pub[:10]), ErrKey)
	wantClass(t, (&Image{}).Verify(pub), ErrMalformed)
}

func TestImageGolden(t *testing.T) {
	pub, priv := testKey(1)
	b, err := Pack([]byte(testManifest), testCode, priv)
	if err != nil {
		t.Fatal(err)
	}
	want := golden(t, "image.cose", b)
	if !bytes.Equal(b, want) {
		t.Fatalf("Pack output differs from testdata/image.cose (format change? rerun with -update)\n got %x\nwant %x", b, want)
	}
	img, err := OpenImage(want)
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Verify(pub); err != nil {
		t.Fatal(err)
	}
	// The fixed key itself is golden too, so a PEM format change shows.
	privPEM, err := MarshalPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := MarshalPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(privPEM, golden(t, "test.key", privPEM)) || !bytes.Equal(pubPEM, golden(t, "test.pub", pubPEM)) {
		t.Fatal("PEM encoding differs from testdata/test.key or test.pub")
	}
	if k, err := LoadPrivateKey("testdata/test.key"); err != nil || !k.Equal(priv) {
		t.Fatalf("LoadPrivateKey(testdata/test.key) = %v", err)
	}
}

func TestPackRefusesBadInput(t *testing.T) {
	_, priv := testKey(1)
	for name, tc := range map[string]struct{ manifest, code []byte }{
		"empty manifest": {nil, testCode},
		"bad json":       {[]byte("{name: x"), testCode},
		"empty code":     {[]byte(testManifest), nil},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Pack(tc.manifest, tc.code, priv)
			wantClass(t, err, ErrMalformed)
		})
	}
	_, err := Pack([]byte(testManifest), make([]byte, MaxImageSize), priv)
	wantClass(t, err, ErrMalformed)
	_, err = Pack([]byte(testManifest), testCode, priv[:31])
	wantClass(t, err, ErrKey)
	bad := append([]byte(nil), priv...)
	bad[40] ^= 1 // public half no longer matches the seed
	_, err = Pack([]byte(testManifest), testCode, bad)
	wantClass(t, err, ErrKey)
}

// Every single-byte change of a signed image must be refused, by OpenImage
// (ErrMalformed) or by Verify (ErrSignature).
func TestImageEveryByteTampered(t *testing.T) {
	pub, priv := testKey(1)
	b, err := Pack([]byte(testManifest), testCode, priv)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			c := bytes.Clone(b)
			c[i] ^= mask
			img, err := OpenImage(c)
			if err != nil {
				wantClass(t, err, ErrMalformed)
				continue
			}
			if err := img.Verify(pub); err == nil {
				t.Fatalf("byte %d ^ %#x: tampered image verified", i, mask)
			} else {
				wantClass(t, err, ErrSignature)
			}
		}
	}
	// Truncation at every length is malformed.
	for n := range len(b) {
		_, err := OpenImage(b[:n])
		wantClass(t, err, ErrMalformed)
	}
}

func TestImageStructureRefused(t *testing.T) {
	pub, priv := testKey(1)
	good, err := Pack([]byte(testManifest), testCode, priv)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(testCode)
	payload := func(m map[int]any) []byte { return mustCBOR(t, m) }
	okPayload := map[int]any{1: 1, 2: []byte(testManifest), 3: testCode, 4: digest[:]}
	hdr := headerFor(kindImage, pub)
	with := func(m map[int]any, k int, v any) map[int]any {
		c := map[int]any{}
		for kk, vv := range m {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	// The hand-built reference must be accepted, or the cases below prove nothing.
	ref := rawSign1(t, hdr, emptyMap, payload(okPayload), priv)
	if img, err := OpenImage(ref); err != nil {
		t.Fatalf("hand-built image refused: %v", err)
	} else if err := img.Verify(pub); err != nil {
		t.Fatalf("hand-built image does not verify: %v", err)
	}

	otherDigest := sha256.Sum256([]byte("other"))
	dupKeys := []byte{0xa5, 0x01, 0x01, 0x02, 0x41, '1', 0x03, 0x41, 'x', 0x04, 0x41, 'y', 0x01, 0x01}
	indefinite := append([]byte{0xbf}, append(payload(okPayload)[1:], 0xff)...)
	cases := map[string][]byte{
		"wrong alg":           rawSign1(t, with(hdr, 1, -7), emptyMap, payload(okPayload), priv),
		"no alg":              rawSign1(t, with(hdr, 1, nil), emptyMap, payload(okPayload), priv),
		"text alg":            rawSign1(t, with(hdr, 1, "EdDSA"), emptyMap, payload(okPayload), priv),
		"no content type":     rawSign1(t, with(hdr, 3, nil), emptyMap, payload(okPayload), priv),
		"grant content type":  rawSign1(t, with(hdr, 3, kindGrant.contentType), emptyMap, payload(okPayload), priv),
		"numeric ctype":       rawSign1(t, with(hdr, 3, 60), emptyMap, payload(okPayload), priv),
		"no kid":              rawSign1(t, with(hdr, 4, nil), emptyMap, payload(okPayload), priv),
		"short kid":           rawSign1(t, with(hdr, 4, []byte{1, 2}), emptyMap, payload(okPayload), priv),
		"crit header":         rawSign1(t, with(hdr, 2, []any{1}), emptyMap, payload(okPayload), priv),
		"extra header":        rawSign1(t, with(hdr, 99, 1), emptyMap, payload(okPayload), priv),
		"unprotected kid":     rawSign1(t, hdr, mustCBOR(t, map[int]any{4: []byte("12345678")}), payload(okPayload), priv),
		"unprotected array":   rawSign1(t, hdr, []byte{0x80}, payload(okPayload), priv),
		"protected not bstr":  mustCBOR(t, cbor.Tag{Number: 18, Content: []any{hdr, cbor.RawMessage(emptyMap), payload(okPayload), make([]byte, 64)}}),
		"version 2":           rawSign1(t, hdr, emptyMap, payload(with(okPayload, 1, 2)), priv),
		"no version":          rawSign1(t, hdr, emptyMap, payload(with(okPayload, 1, nil)), priv),
		"no manifest":         rawSign1(t, hdr, emptyMap, payload(with(okPayload, 2, nil)), priv),
		"manifest as text":    rawSign1(t, hdr, emptyMap, payload(with(okPayload, 2, testManifest)), priv),
		"manifest not json":   rawSign1(t, hdr, emptyMap, payload(with(okPayload, 2, []byte("{"))), priv),
		"no code":             rawSign1(t, hdr, emptyMap, payload(with(okPayload, 3, nil)), priv),
		"code as array":       rawSign1(t, hdr, emptyMap, payload(with(okPayload, 3, []int{1, 2, 3})), priv),
		"digest mismatch":     rawSign1(t, hdr, emptyMap, payload(with(okPayload, 4, otherDigest[:])), priv),
		"short digest":        rawSign1(t, hdr, emptyMap, payload(with(okPayload, 4, digest[:16])), priv),
		"no digest":           rawSign1(t, hdr, emptyMap, payload(with(okPayload, 4, nil)), priv),
		"unknown field":       rawSign1(t, hdr, emptyMap, payload(with(okPayload, 9, 1)), priv),
		"text keys":           rawSign1(t, hdr, emptyMap, mustCBOR(t, map[string]any{"1": 1, "2": []byte(testManifest), "3": testCode, "4": digest[:]}), priv),
		"duplicate map key":   rawSign1(t, hdr, emptyMap, dupKeys, priv),
		"indefinite map":      rawSign1(t, hdr, emptyMap, indefinite, priv),
		"payload not a map":   rawSign1(t, hdr, emptyMap, []byte{0x01}, priv),
		"payload trailing":    rawSign1(t, hdr, emptyMap, append(payload(okPayload), 0x00), priv),
		"deep payload":        rawSign1(t, hdr, emptyMap, payload(with(okPayload, 9, [][][][]int{{{{1}}}})), priv),
		"tagged payload":      rawSign1(t, hdr, emptyMap, mustCBOR(t, cbor.Tag{Number: 24, Content: okPayload}), priv),
		"wrong tag":           append([]byte{0xd1}, good[1:]...),
		"untagged":            good[1:],
		"long-form tag 18":    append([]byte{0xd8, 0x12}, good[1:]...),
		"nested tag":          append([]byte{0xd2}, good...),
		"trailing bytes":      append(bytes.Clone(good), 0x00),
		"two documents":       append(bytes.Clone(good), good...),
		"empty":               nil,
		"null":                {0xf6},
		"array of 3":          append([]byte{0xd2, 0x83}, good[2:]...),
		"oversized":           make([]byte, MaxImageSize+1),
		"detached payload":    mustCBOR(t, cbor.Tag{Number: 18, Content: []any{cbor.RawMessage(mustCBOR(t, mustCBOR(t, hdr))), cbor.RawMessage(emptyMap), nil, make([]byte, 64)}}),
		"short signature":     mustCBOR(t, cbor.Tag{Number: 18, Content: []any{cbor.RawMessage(mustCBOR(t, mustCBOR(t, hdr))), cbor.RawMessage(emptyMap), payload(okPayload), make([]byte, 63)}}),
		"signature as text":   mustCBOR(t, cbor.Tag{Number: 18, Content: []any{cbor.RawMessage(mustCBOR(t, mustCBOR(t, hdr))), cbor.RawMessage(emptyMap), payload(okPayload), strings.Repeat("x", 64)}}),
		"deep nesting":        append(append([]byte{0xd2, 0x84}, bytes.Repeat([]byte{0x81}, 1000)...), 0x00),
		"huge declared array": {0xd2, 0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			img, err := OpenImage(b)
			if err == nil {
				t.Fatalf("accepted (keyID %s)", img.KeyID)
			}
			wantClass(t, err, ErrMalformed)
			t.Log(err)
		})
	}
	_, err = OpenImage(make([]byte, MaxImageSize+1))
	if !strings.Contains(err.Error(), "more than") {
		t.Fatalf("oversized input: %v, want a size error before decoding", err)
	}
}

func TestImageSignatureRefused(t *testing.T) {
	pub, priv := testKey(1)
	pub2, priv2 := testKey(2)
	a, err := Pack([]byte(testManifest), testCode, priv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Pack([]byte(testManifest), []byte("other code"), priv)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Pack([]byte(testManifest), testCode, priv2)
	if err != nil {
		t.Fatal(err)
	}
	sigA, sigB := a[len(a)-64:], b[len(b)-64:]
	swapped := append(bytes.Clone(a[:len(a)-64]), sigB...)
	img, err := OpenImage(swapped)
	if err != nil {
		t.Fatal(err)
	}
	wantClass(t, img.Verify(pub), ErrSignature)

	// The right signature under a rewritten kid: the kid claims key 1 but
	// the content was signed by key 2.
	kid1, kid2 := keyIDBytes(pub), keyIDBytes(pub2)
	forged := bytes.Replace(c, kid2[:], kid1[:], 1)
	img, err = OpenImage(forged)
	if err != nil {
		t.Fatal(err)
	}
	wantClass(t, img.Verify(pub), ErrSignature)

	// A signature by the right key over the right payload but another
	// protected header (different content type) does not verify.
	hdr := headerFor(kindImage, pub)
	img, err = OpenImage(a)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(img.env.signature, sigA) {
		t.Fatal("signature is not where the test expects it")
	}
	hdr[3] = kindGrant.contentType
	other := rawSign1(t, hdr, emptyMap, img.env.payload, priv)
	spliced := append(bytes.Clone(a[:len(a)-64]), other[len(other)-64:]...)
	img, err = OpenImage(spliced)
	if err != nil {
		t.Fatal(err)
	}
	wantClass(t, img.Verify(pub), ErrSignature)
}
