package trust

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyPairFiles(t *testing.T) {
	pub, priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(t.TempDir(), "alice")
	if err := WriteKeyPair(name, priv); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(name + ".key")
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		t.Fatalf("private key file mode %v, want no group/other access", st.Mode().Perm())
	}
	gotPriv, err := LoadPrivateKey(name + ".key")
	if err != nil {
		t.Fatal(err)
	}
	gotPub, err := LoadPublicKey(name + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if !gotPriv.Equal(priv) || !gotPub.Equal(pub) {
		t.Fatal("keys changed through files")
	}
	// Never overwrite an existing key, and leave both files intact.
	_, other, _ := GenerateKey()
	wantClass(t, WriteKeyPair(name, other), ErrKey)
	if again, err := LoadPrivateKey(name + ".key"); err != nil || !again.Equal(priv) {
		t.Fatal("existing key was changed by a refused WriteKeyPair")
	}
	// A stale .pub alone also blocks, and no .key is left behind.
	lone := filepath.Join(t.TempDir(), "bob")
	if err := os.WriteFile(lone+".pub", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantClass(t, WriteKeyPair(lone, priv), ErrKey)
	if _, err := os.Stat(lone + ".key"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("half key pair left behind: %v", err)
	}
	wantClass(t, WriteKeyPair("", priv), ErrKey)
	wantClass(t, WriteKeyPair(filepath.Join(t.TempDir(), "no", "such", "dir"), priv), ErrKey)
	wantClass(t, WriteKeyPair(filepath.Join(t.TempDir(), "short"), priv[:12]), ErrKey)
}

func TestKeyID(t *testing.T) {
	pub, _ := testKey(1)
	id := KeyID(pub)
	if len(id) != 16 {
		t.Fatalf("KeyID %q, want 16 hex digits", id)
	}
	if _, err := hex.DecodeString(id); err != nil {
		t.Fatal(err)
	}
	if KeyID(pub) != id {
		t.Fatal("KeyID not stable")
	}
	pub2, _ := testKey(2)
	if KeyID(pub2) == id {
		t.Fatal("two keys share an id")
	}
	// Pinned so the on-wire kid cannot change unnoticed.
	if id != "10abee70394a66b2" {
		t.Fatalf("KeyID of test key 1 is %s; did the id scheme change?", id)
	}
}

func TestLoadKeyErrors(t *testing.T) {
	dir := t.TempDir()
	pub, priv := testKey(1)
	privPEM, _ := MarshalPrivateKey(priv)
	pubPEM, _ := MarshalPublicKey(pub)

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	ecPubDER, _ := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	ecPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})
	ecPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecPubDER})
	withHeader := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: privPEM})
	garbledDER := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{0x30, 0x03, 0x02, 0x01}})

	privCases := map[string]struct {
		data []byte
		msg  string
	}{
		"empty":           {nil, "no PRIVATE KEY PEM block"},
		"truncated":       {privPEM[:len(privPEM)/2], "no PRIVATE KEY PEM block"},
		"public instead":  {pubPEM, `PEM block is "PUBLIC KEY"`},
		"ecdsa":           {ecPEM, "ECDSA, want Ed25519"},
		"trailing":        {append(append([]byte{}, privPEM...), privPEM...), "unexpected data"},
		"pem headers":     {withHeader, "headers"},
		"bad der":         {garbledDER, "not a PKCS#8"},
		"raw binary seed": {priv.Seed(), "no PRIVATE KEY PEM block"},
	}
	for name, tc := range privCases {
		t.Run("private "+name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".key")
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadPrivateKey(path)
			wantClass(t, err, ErrKey)
			if !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q should mention %q and the file", err, tc.msg)
			}
		})
	}
	pubCases := map[string]struct {
		data []byte
		msg  string
	}{
		"empty":           {nil, "no PUBLIC KEY PEM block"},
		"truncated":       {pubPEM[:len(pubPEM)-20], "no PUBLIC KEY PEM block"},
		"private instead": {privPEM, `PEM block is "PRIVATE KEY"`},
		"ecdsa":           {ecPubPEM, "ECDSA, want Ed25519"},
		"bad der":         {pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}}), "not a PKIX"},
	}
	for name, tc := range pubCases {
		t.Run("public "+name, func(t *testing.T) {
			_, err := ParsePublicKey(tc.data)
			wantClass(t, err, ErrKey)
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q should mention %q", err, tc.msg)
			}
		})
	}

	_, err = LoadPublicKey(filepath.Join(dir, "missing.pub"))
	wantClass(t, err, ErrKey)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v should also match fs.ErrNotExist", err)
	}
	big := filepath.Join(dir, "big.key")
	if err := os.WriteFile(big, make([]byte, maxKeyFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadPrivateKey(big)
	wantClass(t, err, ErrKey)
	_, err = LoadPublicKey(dir) // a directory
	wantClass(t, err, ErrKey)
	_, err = MarshalPublicKey(pub[:5])
	wantClass(t, err, ErrKey)
}
