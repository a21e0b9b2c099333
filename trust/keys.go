package trust

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"os"
)

const (
	pemPrivate = "PRIVATE KEY"
	pemPublic  = "PUBLIC KEY"
	// maxKeyFile bounds what LoadPrivateKey/LoadPublicKey read: an Ed25519
	// PEM file is about 120 bytes, so anything large is not a key file.
	maxKeyFile = 16 << 10
	keyIDLen   = 8
)

// GenerateKey returns a fresh Ed25519 key pair from crypto/rand.
func GenerateKey() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, badKey("generate: %v", err)
	}
	return pub, priv, nil
}

// KeyID is the short stable id of a public key: the hex of the first 8
// bytes of SHA-256 over the raw 32-byte key. Signed documents carry these 8
// bytes as their COSE kid, and the device keys replay counters by it.
func KeyID(pub ed25519.PublicKey) string {
	id := keyIDBytes(pub)
	return hex.EncodeToString(id[:])
}

func keyIDBytes(pub ed25519.PublicKey) [keyIDLen]byte {
	sum := sha256.Sum256(pub)
	var id [keyIDLen]byte
	copy(id[:], sum[:keyIDLen])
	return id
}

// MarshalPrivateKey encodes priv as a PKCS#8 PEM block.
func MarshalPrivateKey(priv ed25519.PrivateKey) ([]byte, error) {
	if err := checkPrivateKey(priv); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, badKey("encode private key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivate, Bytes: der}), nil
}

// MarshalPublicKey encodes pub as a PKIX ("PUBLIC KEY") PEM block.
func MarshalPublicKey(pub ed25519.PublicKey) ([]byte, error) {
	if err := checkPublicKey(pub); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, badKey("encode public key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublic, Bytes: der}), nil
}

// WriteKeyPair writes NAME.key (PKCS#8 PEM, mode 0600) and NAME.pub (PKIX
// PEM, mode 0644) for priv. It refuses to overwrite either file: silently
// replacing a key would lock its owner out of every device that trusts it.
func WriteKeyPair(name string, priv ed25519.PrivateKey) error {
	if name == "" {
		return badKey("write key pair: empty name")
	}
	privPEM, err := MarshalPrivateKey(priv)
	if err != nil {
		return err
	}
	pubPEM, err := MarshalPublicKey(priv.Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	keyPath, pubPath := name+".key", name+".pub"
	for _, p := range []string{keyPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return badKey("write key pair: %s already exists", p)
		}
	}
	if err := writeNew(keyPath, privPEM, 0o600); err != nil {
		return err
	}
	if err := writeNew(pubPath, pubPEM, 0o644); err != nil {
		_ = os.Remove(keyPath) // leave no half-written pair behind
		return err
	}
	return nil
}

// writeNew creates path exclusively and writes data durably; on any failure
// it removes what it created.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKey, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("%w: %w", ErrKey, err)
	}
	return nil
}

// LoadPrivateKey reads an Ed25519 private key from a PKCS#8 PEM file.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	data, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	priv, err := ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return priv, nil
}

// LoadPublicKey reads an Ed25519 public key from a PKIX PEM file.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	data, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	pub, err := ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return pub, nil
}

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	defer f.Close()
	// Read one byte past the cap to tell "exactly at the cap" from "larger".
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	if len(data) > maxKeyFile {
		return nil, badKey("%s: larger than %d bytes, not a key file", path, maxKeyFile)
	}
	return data, nil
}

// ParsePrivateKey decodes a single PKCS#8 "PRIVATE KEY" PEM block holding an
// Ed25519 key.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	der, err := singlePEM(data, pemPrivate)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, badKey("not a PKCS#8 private key: %v", err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, badKey("private key is %s, want Ed25519", keyTypeName(key))
	}
	return priv, nil
}

// ParsePublicKey decodes a single PKIX "PUBLIC KEY" PEM block holding an
// Ed25519 key.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	der, err := singlePEM(data, pemPublic)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, badKey("not a PKIX public key: %v", err)
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, badKey("public key is %s, want Ed25519", keyTypeName(key))
	}
	return pub, nil
}

// singlePEM returns the bytes of the one PEM block of type want in data.
// Anything but whitespace around it is refused so that a concatenated or
// damaged file is noticed rather than half used.
func singlePEM(data []byte, want string) ([]byte, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, badKey("no %s PEM block found (empty, truncated or not PEM)", want)
	}
	if block.Type != want {
		return nil, badKey("PEM block is %q, want %q", block.Type, want)
	}
	if len(block.Headers) != 0 {
		return nil, badKey("PEM block has headers (encrypted keys are not supported)")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, badKey("unexpected data after the %s PEM block", want)
	}
	return block.Bytes, nil
}

func keyTypeName(key any) string {
	switch key.(type) {
	case *rsa.PrivateKey, *rsa.PublicKey:
		return "RSA"
	case *ecdsa.PrivateKey, *ecdsa.PublicKey:
		return "ECDSA"
	case *ecdh.PrivateKey, *ecdh.PublicKey:
		return "X25519 (ECDH)"
	default:
		return fmt.Sprintf("%T", key)
	}
}

func checkPublicKey(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return badKey("public key has %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	return nil
}

// checkPrivateKey also checks that the public half stored in priv belongs to
// its seed: Ed25519 signs with the stored half, so a mismatched key would
// produce signatures that verify under no published key.
func checkPrivateKey(priv ed25519.PrivateKey) error {
	if len(priv) != ed25519.PrivateKeySize {
		return badKey("private key has %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	derived := ed25519.NewKeyFromSeed(priv.Seed())
	if !bytes.Equal(derived[ed25519.SeedSize:], priv[ed25519.SeedSize:]) {
		return badKey("private key is inconsistent (public half does not match the seed)")
	}
	return nil
}
