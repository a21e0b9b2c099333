package coap

import (
	"bytes"
	"context"
	"testing"
)

// redialEvery bounds the exchanges of one benchmark connection: CoAP
// forbids reusing a message ID within EXCHANGE_LIFETIME (247 s), and a
// benchmark loop would wrap the 16-bit ID space well within that, after
// which the server's duplicate detection answers from its cache.
const redialEvery = 1000

// benchClient returns a client that is replaced, off the clock, every
// redialEvery calls.
func benchClient(b *testing.B, s *Server) func() *Client {
	var c *Client
	n := 0
	return func() *Client {
		if n%redialEvery == 0 {
			b.StopTimer()
			if c != nil {
				_ = c.Close()
			}
			c = dialServer(b, s)
			b.StartTimer()
		}
		n++
		return c
	}
}

// BenchmarkStatusRoundTrip is one GET /c/{name} on loopback through the Go
// client: request, device call, JSON both ways.
func BenchmarkStatusRoundTrip(b *testing.B) {
	s, _ := startServer(b, ServerOptions{Errors: func(error) {}})
	client := benchClient(b, s)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client().Status(ctx, "thermo"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDeploy13KB is a 13 KB image uploaded block-wise (13 blocks of
// 1024 bytes and a final one) with POST /deploy.
func BenchmarkDeploy13KB(b *testing.B) {
	s, _ := startServer(b, ServerOptions{Errors: func(error) {}})
	client := benchClient(b, s)
	img := append([]byte("bench\n"), bytes.Repeat([]byte{0xa5}, 13<<10)...)
	ctx := context.Background()
	b.SetBytes(int64(len(img)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client().Deploy(ctx, img); err != nil {
			b.Fatal(err)
		}
	}
}
