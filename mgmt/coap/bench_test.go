package coap

import (
	"bytes"
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/mgmt"
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

// fillContainers gives the fake device n containers with realistic
// figures (names and counters of the width a busy device has).
func fillContainers(d *fakeDevice, n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.containers)
	for i := range n {
		name := fmt.Sprintf("sensor-%04d", i)
		d.containers[name] = mgmt.ContainerStatus{
			Name: name, Tenant: []string{"acme", "globex", "initech"}[i%3], Runtime: "wasm", State: mgmt.StateRunning,
			Version: 3, Activations: 123456 + uint64(i), Faults: 2, LastFault: mgmt.FaultBudget, MissedDeadlines: 17,
			EndpointCalls: 987654, DeniedCalls: 3, CPUTimeUS: 4567890, MemoryBytes: 65536, StorageBytes: 512,
			Priority: 5, Trigger: "periodic", PeriodUS: 100000, BudgetUS: 5000, LogLinesDropped: 1200,
		}
	}
}

// BenchmarkList1000 is `ps --json`'s exchange: GET /c of 1,000
// containers through the Go client, block-wise.
func BenchmarkList1000(b *testing.B) {
	benchList1000(b, func(ctx context.Context, c *Client) ([]mgmt.ContainerStatus, error) { return c.List(ctx) })
}

// benchList1000 runs list, which fetches the fake device's 1,000
// containers, as a benchmark, reporting the process's CPU time per list.
func benchList1000(b *testing.B, list func(context.Context, *Client) ([]mgmt.ContainerStatus, error)) {
	s, dev := startServer(b, ServerOptions{Errors: func(error) {}})
	fillContainers(dev, 1000)
	client := benchClient(b, s)
	ctx := context.Background()
	b.ReportAllocs()
	cpu0 := processCPU()
	for b.Loop() {
		cs, err := list(ctx, client())
		if err != nil || len(cs) != 1000 {
			b.Fatal(len(cs), err)
		}
	}
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
}

// processCPU is the CPU time of this process (client and server), which a
// busy machine stretches less than wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkList1000Plain is BenchmarkList1000 in the uncompressed table
// form (what a device from before the compressed form answers).
func BenchmarkList1000Plain(b *testing.B) {
	benchList1000(b, plainList)
}
