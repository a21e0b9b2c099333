package trust

import (
	"bytes"
	"testing"
)

func TestDocRoundTrip(t *testing.T) {
	pub, priv := testKey(1)
	other, _ := testKey(2)
	payload := []byte(`{"v":1,"tenant":"acme","devices":["dev-1"],"seq":3}`)
	b, err := SignDoc(DocDesired, payload, priv)
	if err != nil {
		t.Fatal(err)
	}
	d, err := OpenDoc(DocDesired, b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(d.Payload, payload) || d.KeyID != KeyID(pub) || d.Kind != DocDesired {
		t.Fatalf("decoded %+v", d)
	}
	if err := d.Verify(pub); err != nil {
		t.Fatal(err)
	}
	wantClass(t, d.Verify(other), ErrSignature)
}

// A document of one kind is never accepted as another: not as another
// fleet kind, not as an image, grant or command, and none of those as a
// fleet document.
func TestDocKindsDoNotMix(t *testing.T) {
	pub, priv := testKey(1)
	payload := []byte(`{"v":1}`)
	for _, k := range []DocKind{DocGrant, DocDesired, DocRollout, DocProgress} {
		b, err := SignDoc(k, payload, priv)
		if err != nil {
			t.Fatal(err)
		}
		for _, other := range []DocKind{DocGrant, DocDesired, DocRollout, DocProgress} {
			if other == k {
				continue
			}
			_, err := OpenDoc(other, b)
			wantClass(t, err, ErrMalformed)
		}
		_, err = OpenImage(b)
		wantClass(t, err, ErrMalformed)
		_, err = OpenGrant(b, pub)
		wantClass(t, err, ErrMalformed)
		_, err = OpenCommand(b)
		wantClass(t, err, ErrMalformed)
	}
	img, _ := Pack([]byte(testManifest), testCode, priv)
	g, _ := SignGrant([]byte(testCeiling), pub, priv)
	for _, b := range [][]byte{img, g} {
		_, err := OpenDoc(DocDesired, b)
		wantClass(t, err, ErrMalformed)
	}
}

func TestDocRefusesBadPayloadsAndKinds(t *testing.T) {
	_, priv := testKey(1)
	for _, p := range [][]byte{nil, []byte("{"), []byte("not json")} {
		_, err := SignDoc(DocGrant, p, priv)
		wantClass(t, err, ErrMalformed)
	}
	_, err := SignDoc("fleet-other", []byte(`{}`), priv)
	wantClass(t, err, ErrMalformed)
	_, err = OpenDoc(DocGrant, nil)
	wantClass(t, err, ErrMalformed)
	_, err = OpenDoc(DocGrant, make([]byte, MaxDocSize+1))
	wantClass(t, err, ErrMalformed)
	_, err = SignDoc(DocGrant, append([]byte(`"`), append(bytes.Repeat([]byte("a"), MaxDocSize), '"')...), priv)
	wantClass(t, err, ErrMalformed)
}

func FuzzOpenDoc(f *testing.F) {
	pub, priv := testKey(1)
	good, err := SignDoc(DocDesired, []byte(`{"v":1,"seq":1}`), priv)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	img, _ := Pack([]byte(testManifest), testCode, priv)
	f.Add(img)
	f.Add([]byte{0xd2, 0x84, 0x40, 0xa0, 0x40, 0x40})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := OpenDoc(DocDesired, b)
		if err != nil {
			if classOf(err) != ErrMalformed {
				t.Fatalf("OpenDoc error %v is not ErrMalformed", err)
			}
			return
		}
		err = d.Verify(pub)
		if err != nil && classOf(err) != ErrSignature {
			t.Fatalf("Verify error %v is not ErrSignature", err)
		}
	})
}
