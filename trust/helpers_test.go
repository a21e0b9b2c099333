package trust

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// testKey is a fixed key pair derived from n, so signatures (Ed25519 is
// deterministic) and golden files are reproducible.
func testKey(n int) (ed25519.PublicKey, ed25519.PrivateKey) {
	seed := sha256.Sum256([]byte(fmt.Sprintf("tinycontainer trust test key %d", n)))
	priv := ed25519.NewKeyFromSeed(seed[:])
	return priv.Public().(ed25519.PublicKey), priv
}

const testManifest = `{"name":"thermo","tenant":"acme","version":3,"runtime":"wasm"}`

var testCode = []byte("\x00asm\x01\x00\x00\x00 pretend this is a WebAssembly module")

func wantClass(t *testing.T, err, class error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", class)
	}
	if c := classOf(err); c != class {
		t.Fatalf("got %v (class %v), want class %v", err, c, class)
	}
}

// classOf returns the one error class err wraps, or nil when it wraps none
// or several.
func classOf(err error) error {
	var found error
	for _, c := range []error{ErrMalformed, ErrSignature, ErrKey} {
		if errors.Is(err, c) {
			if found != nil {
				return nil
			}
			found = c
		}
	}
	return found
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) []byte {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	return want
}

// rawSign1 builds a COSE_Sign1 by hand with a valid signature over any
// protected header map, unprotected header and payload, so tests can
// check that the decoder refuses well-signed but ill-formed documents.
func rawSign1(t testing.TB, protectedMap map[int]any, unprotected, payload []byte, priv ed25519.PrivateKey) []byte {
	t.Helper()
	hdr, err := encMode.Marshal(protectedMap)
	if err != nil {
		t.Fatal(err)
	}
	return rawSign1Bytes(t, hdr, unprotected, payload, priv)
}

func rawSign1Bytes(t testing.TB, headerMap, unprotected, payload []byte, priv ed25519.PrivateKey) []byte {
	t.Helper()
	protected, err := encMode.Marshal(headerMap)
	if err != nil {
		t.Fatal(err)
	}
	tbs, err := encMode.Marshal([]any{"Signature1", cbor.RawMessage(protected), []byte{}, payload})
	if err != nil {
		t.Fatal(err)
	}
	sig := ed25519.Sign(priv, tbs)
	out, err := encMode.Marshal(cbor.Tag{Number: 18, Content: []any{
		cbor.RawMessage(protected), cbor.RawMessage(unprotected), payload, sig,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func headerFor(k kind, pub ed25519.PublicKey) map[int]any {
	kid := keyIDBytes(pub)
	return map[int]any{1: -8, 3: k.contentType, 4: kid[:]}
}

func mustCBOR(t testing.TB, v any) []byte {
	t.Helper()
	b, err := encMode.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
