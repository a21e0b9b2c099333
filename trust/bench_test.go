package trust

import (
	"crypto/rand"
	"testing"
)

// benchCodeSize matches a typical small WebAssembly guest (13 KB), the
// size the cold-deploy budget is stated for.
const benchCodeSize = 13 << 10

func benchImage(b *testing.B) ([]byte, []byte) {
	code := make([]byte, benchCodeSize)
	if _, err := rand.Read(code); err != nil {
		b.Fatal(err)
	}
	return []byte(testManifest), code
}

func BenchmarkPack(b *testing.B) {
	_, priv := testKey(1)
	manifest, code := benchImage(b)
	b.SetBytes(benchCodeSize)
	for b.Loop() {
		if _, err := Pack(manifest, code, priv); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenImageVerify(b *testing.B) {
	pub, priv := testKey(1)
	manifest, code := benchImage(b)
	img, err := Pack(manifest, code, priv)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(img)))
	for b.Loop() {
		im, err := OpenImage(img)
		if err != nil {
			b.Fatal(err)
		}
		if err := im.Verify(pub); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenCommandVerify(b *testing.B) {
	pub, priv := testKey(1)
	cmd, err := SignCommand(testCommand(), priv)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s, err := OpenCommand(cmd)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Verify(pub); err != nil {
			b.Fatal(err)
		}
	}
}
