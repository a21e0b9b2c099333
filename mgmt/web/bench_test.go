package web

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/meta"
	tcruntime "github.com/tinycontainer/tinycontainer/runtime"
)

// benchContainers is the device size of the performance target.
const benchContainers = 1000

// busyDevice runs n containers of bench/testdata/idle.wasm (it reads the
// temperature and keeps it in memory), four tenants, every 200 ms.
func busyDevice(b *testing.B, n int) *device.Device {
	b.Helper()
	code, err := os.ReadFile(filepath.Join("..", "..", "bench", "testdata", "idle.wasm"))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := device.New(ctx, device.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		m, err := meta.Parse([]byte(fmt.Sprintf(`name: c%04d
tenant: tenant-%d
version: 1
runtime: wasm
schedule: {trigger: periodic, period: 200ms, budget: 5ms, priority: %d}
limits: {memory: 64KiB}
endpoints:
  - {name: sensor/temperature, ops: [read]}
`, i, i%4, i%8)))
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Install(ctx, m, code); err != nil {
			b.Fatal(err)
		}
		if err := d.Start(m.Name); err != nil {
			b.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	b.Cleanup(func() {
		cancel()
		<-done
		d.Close(context.Background())
	})
	return d
}

// promAccept is an Accept header allowing UTF-8 names, as Prometheus 3
// sends (no escaping of names needed).
const promAccept = "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,*/*;q=0.1"

// fetch GETs url as a scraper would (gzip, not decompressed here: that is
// the scraper's cost, not the device's) and reads the whole answer; it
// returns its size.
func fetch(b *testing.B, c *http.Client, url string) int64 {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("Accept", promAccept)
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("%s: %d %v", url, resp.StatusCode, err)
	}
	return n
}

// BenchmarkScrape1000 is one /metrics scrape, and one round of the page's
// polling, of a device running 1,000 containers, through HTTP.
func BenchmarkScrape1000(b *testing.B) {
	d := busyDevice(b, benchContainers)
	srv := httptest.NewServer(NewHandler(d.Reader(), Options{}))
	defer srv.Close()
	c := srv.Client()
	b.Run("metrics", func(b *testing.B) {
		var size int64
		for b.Loop() {
			size = fetch(b, c, srv.URL+"/metrics")
		}
		b.ReportMetric(float64(size), "gzip-bytes/scrape")
	})
	// The handler alone on this goroutine's thread, its CPU time measured
	// (the machine is shared: wall time swings, thread CPU time holds).
	// "plain" asks as curl does; "utf8" allows UTF-8 names in Accept, as
	// Prometheus 3 does, which spares expfmt escaping every name.
	h := NewHandler(d.Reader(), Options{})
	for _, accept := range []struct{ name, header string }{{"plain", ""},
		{"utf8", promAccept}} {
		b.Run("metrics-handler-"+accept.name, func(b *testing.B) {
			goruntime.LockOSThread()
			defer goruntime.UnlockOSThread()
			var cpu time.Duration
			for b.Loop() {
				r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
				r.Host = "127.0.0.1"
				r.Header.Set("Accept-Encoding", "gzip")
				if accept.header != "" {
					r.Header.Set("Accept", accept.header)
				}
				w := httptest.NewRecorder()
				t0, _ := tcruntime.ThreadCPU()
				h.ServeHTTP(w, r)
				t1, _ := tcruntime.ThreadCPU()
				cpu += t1 - t0
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/scrape")
		})
	}
	b.Run("dashboard-poll", func(b *testing.B) {
		for b.Loop() {
			for _, p := range []string{"/api/info", "/api/containers", "/api/audit?limit=100", "/api/logs?tail=300"} {
				fetch(b, c, srv.URL+p)
			}
		}
	})
}

// window is what 1,000 containers did in one measured period.
type window struct {
	activations, missed, cpuUS uint64
	serverCPU                  time.Duration // this process's CPU time spent serving (scraped windows)
}

func totals(d *device.Device) (act, missed, cpu uint64) {
	for _, c := range d.List() {
		act += c.Activations
		missed += c.MissedDeadlines
		cpu += c.CPUTimeUS
	}
	return
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkScrapeCost1000 compares what 1,000 containers do in windows of
// 5 s with nobody watching and with /metrics scraped and the dashboard
// polled once a second, alternating (quiet, watched) four times. The
// scraper is another process (curl), as Prometheus and a browser are: this
// process pays only for serving. Run it with -benchtime=1x; the figures
// are in BENCHMARKS.md.
func BenchmarkScrapeCost1000(b *testing.B) {
	if testing.Short() {
		b.Skip("long")
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		b.Skip("needs curl as the outside scraper")
	}
	d := busyDevice(b, benchContainers)
	srv := httptest.NewServer(NewHandler(d.Reader(), Options{}))
	defer srv.Close()
	// One curl run is what a second of watching asks: a scrape and one
	// round of the page's polling.
	args := []string{"-sf", "-H", "Accept-Encoding: gzip", "-H", "Accept: " + promAccept}
	for _, p := range []string{"/metrics", "/api/info", "/api/containers", "/api/audit?limit=100", "/api/logs?tail=300"} {
		args = append(args, "-o", "/dev/null", srv.URL+p)
	}
	const span, rounds = 5 * time.Second, 4
	measure := func(watched bool) window {
		stop := make(chan struct{})
		served := make(chan time.Duration)
		go func() {
			var spent time.Duration
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					served <- spent
					return
				case <-tick.C:
					if !watched {
						continue
					}
					t0 := processCPU()
					if out, err := exec.Command(curl, args...).CombinedOutput(); err != nil {
						b.Errorf("curl: %v %s", err, out)
					}
					spent += processCPU() - t0
				}
			}
		}()
		a0, m0, c0 := totals(d)
		time.Sleep(span)
		a1, m1, c1 := totals(d)
		close(stop)
		return window{activations: a1 - a0, missed: m1 - m0, cpuUS: c1 - c0, serverCPU: <-served}
	}
	time.Sleep(2 * time.Second) // every container has run a few times
	for range b.N {
		var lines []string
		for round := range rounds {
			for _, watched := range []bool{false, true} {
				w := measure(watched)
				what := "quiet  "
				if watched {
					what = "watched"
				}
				lines = append(lines, fmt.Sprintf("round %d %s: %d activations, %d missed deadlines, %.2f us CPU/activation, process CPU during the curl runs %v (an upper bound: the containers ran meanwhile)",
					round+1, what, w.activations, w.missed, float64(w.cpuUS)/float64(w.activations), w.serverCPU.Round(time.Microsecond)))
			}
		}
		b.Log("\n" + strings.Join(lines, "\n"))
	}
}
