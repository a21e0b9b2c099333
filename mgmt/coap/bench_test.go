package coap

import (
	"bytes"
	"context"
	"testing"
)

// BenchmarkStatusRoundTrip is one GET /c/{name} on loopback through the Go
// client: request, device call, JSON both ways.
func BenchmarkStatusRoundTrip(b *testing.B) {
	s, _ := startServer(b, ServerOptions{Errors: func(error) {}})
	c := dialServer(b, s)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Status(ctx, "thermo"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDeploy13KB is a 13 KB image uploaded block-wise (13 blocks of
// 1024 bytes and a final one) with POST /deploy.
func BenchmarkDeploy13KB(b *testing.B) {
	s, _ := startServer(b, ServerOptions{Errors: func(error) {}})
	c := dialServer(b, s)
	img := append([]byte("bench\n"), bytes.Repeat([]byte{0xa5}, 13<<10)...)
	ctx := context.Background()
	b.SetBytes(int64(len(img)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Deploy(ctx, img); err != nil {
			b.Fatal(err)
		}
	}
}
