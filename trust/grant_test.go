package trust

import (
	"bytes"
	"testing"
)

const testCeiling = `{"tenant":"acme","endpoints":[{"name":"sensor/#","ops":["read"]}],"memory":65536}`

func TestGrantRoundTrip(t *testing.T) {
	ownerPub, owner := testKey(10)
	tenantPub, _ := testKey(1)
	b, err := SignGrant([]byte(testCeiling), tenantPub, owner)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, golden(t, "grant.cose", b)) {
		t.Fatal("SignGrant output differs from testdata/grant.cose (rerun with -update if intended)")
	}
	g, err := OpenGrant(b, ownerPub)
	if err != nil {
		t.Fatal(err)
	}
	if string(g.CeilingJSON) != testCeiling || !g.TenantKey.Equal(tenantPub) ||
		g.TenantKeyID != KeyID(tenantPub) || g.OwnerKeyID != KeyID(ownerPub) {
		t.Fatalf("grant changed in round trip: %+v", g)
	}
	// The tenant's own key, or any other, is not the owner.
	_, err = OpenGrant(b, tenantPub)
	wantClass(t, err, ErrSignature)
	_, err = OpenGrant(b, nil)
	wantClass(t, err, ErrKey)
}

func TestSignGrantRefusesBadInput(t *testing.T) {
	_, owner := testKey(10)
	tenantPub, _ := testKey(1)
	_, err := SignGrant(nil, tenantPub, owner)
	wantClass(t, err, ErrMalformed)
	_, err = SignGrant([]byte("not json"), tenantPub, owner)
	wantClass(t, err, ErrMalformed)
	_, err = SignGrant([]byte(testCeiling), tenantPub[:31], owner)
	wantClass(t, err, ErrKey)
	_, err = SignGrant([]byte(testCeiling), tenantPub, owner[:10])
	wantClass(t, err, ErrKey)
	_, err = SignGrant(bytes.Repeat([]byte(" "), MaxGrantSize), tenantPub, owner)
	wantClass(t, err, ErrMalformed)
}

func TestGrantTampered(t *testing.T) {
	ownerPub, owner := testKey(10)
	tenantPub, tenant := testKey(1)
	b, err := SignGrant([]byte(testCeiling), tenantPub, owner)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x04
		g, err := OpenGrant(c, ownerPub)
		if err == nil {
			t.Fatalf("byte %d: tampered grant accepted: %+v", i, g)
		}
		if c := classOf(err); c != ErrMalformed && c != ErrSignature {
			t.Fatalf("byte %d: %v, want ErrMalformed or ErrSignature", i, err)
		}
	}
	// A tenant cannot swap in its own key or sign its own grant.
	selfSigned, err := SignGrant([]byte(`{"memory":1e9}`), tenantPub, tenant)
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenGrant(selfSigned, ownerPub)
	wantClass(t, err, ErrSignature)

	hdr := headerFor(kindGrant, ownerPub)
	for name, payload := range map[string]map[int]any{
		"short tenant key": {1: 1, 2: []byte(testCeiling), 3: []byte(tenantPub[:16])},
		"no tenant key":    {1: 1, 2: []byte(testCeiling)},
		"ceiling not json": {1: 1, 2: []byte("{"), 3: []byte(tenantPub)},
		"version 0":        {1: 0, 2: []byte(testCeiling), 3: []byte(tenantPub)},
		"extra field":      {1: 1, 2: []byte(testCeiling), 3: []byte(tenantPub), 4: "x"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := OpenGrant(rawSign1(t, hdr, emptyMap, mustCBOR(t, payload), owner), ownerPub)
			wantClass(t, err, ErrMalformed)
		})
	}
	// Kind confusion: an image signed by the owner is not a grant.
	img, err := Pack([]byte(testManifest), testCode, owner)
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenGrant(img, ownerPub)
	wantClass(t, err, ErrMalformed)
	_, err = OpenGrant(make([]byte, MaxGrantSize+1), ownerPub)
	wantClass(t, err, ErrMalformed)
}
