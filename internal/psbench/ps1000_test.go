//go:build ps1000

// Package psbench measures `tinycontainer ps --json` of 1,000 containers
// from the command line (`make ps1000`, not in CI; BENCHMARKS.md): it
// builds the tinycontainer binary (with the repository's default.pgo, as
// `go build` does), starts it as a device (CoAP on loopback), installs
// TC_PS_CONTAINERS (default 1,000) small containers through the Go
// management client, then runs `tinycontainer ps --json --device ADDR` as
// a fresh process TC_PS_RUNS times (default 30), each after a
// `tinycontainer --version` (process start alone, the baseline), and prints
// the wall and CPU time of each. It reports figures; it has no verdict
// (wall-clock time on a shared machine).
package psbench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt/coap"
	"github.com/tinycontainer/tinycontainer/trust"
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

var readyAddr = regexp.MustCompile(`msg="device ready" coap=(\S+)`)

// run is one timed process.
type run struct{ wall, cpu time.Duration }

func TestPs1000(t *testing.T) {
	n, runs := envInt("TC_PS_CONTAINERS", 1000), envInt("TC_PS_RUNS", 30)
	dir := t.TempDir()
	bin := filepath.Join(dir, "tinycontainer")
	build := exec.Command("go", "build", "-o", bin, "./cmd/tinycontainer")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	pub, owner, err := trust.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := trust.MarshalPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "owner.pub"), pubPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	dev := exec.Command(bin, "device", "--data", filepath.Join(dir, "state"), "--owner", filepath.Join(dir, "owner.pub"),
		"--listen", "127.0.0.1:0")
	stderr, err := dev.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = dev.Process.Kill(); _ = dev.Wait() }()
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := readyAddr.FindStringSubmatch(sc.Text()); m != nil {
				ready <- m[1]
			}
		}
	}()
	var addr string
	select {
	case addr = <-ready:
	case <-time.After(time.Minute):
		t.Fatal("the device did not become ready within a minute")
	}

	// Install the containers: blinker's code, one manifest each.
	code, err := os.ReadFile(filepath.Join("..", "..", "examples", "blinker", "blinker.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := coap.Dial(ctx, addr, coap.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t0 := time.Now()
	for i := range n {
		m, err := meta.Parse(fmt.Appendf(nil, `name: c-%04d
tenant: t%d
version: 1
runtime: wasm
code: blinker.wasm
schedule:
  trigger: periodic
  period: 1s
  budget: 5ms
  priority: 3
limits:
  memory: 64KiB
endpoints:
  - name: actuator/led0
    ops: [read, write]
  - name: log
    ops: [write]
`, i, i%3))
		if err != nil {
			t.Fatal(err)
		}
		mj, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		img, err := trust.Pack(mj, code, owner)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Deploy(ctx, img); err != nil {
			t.Fatalf("deploy c-%04d: %v", i, err)
		}
	}
	t.Logf("%d containers installed in %v; device at %s", n, time.Since(t0).Round(time.Millisecond), addr)

	// One process: its wall time, and its CPU (user + system).
	proc := func(args ...string) (run, []byte) {
		cmd := exec.Command(bin, args...)
		var out bytes.Buffer
		cmd.Stdout = &out
		t0 := time.Now()
		if err := cmd.Run(); err != nil {
			t.Fatalf("tinycontainer %v: %v", args, err)
		}
		wall := time.Since(t0)
		return run{wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}, out.Bytes()
	}
	var ps, version []run
	for i := range runs {
		r, _ := proc("--version")
		version = append(version, r)
		r, out := proc("ps", "--json", "--device", addr)
		ps = append(ps, r)
		if i == 0 {
			var list []map[string]any
			if err := json.Unmarshal(out, &list); err != nil || len(list) != n {
				t.Fatalf("ps --json: %d containers, %v", len(list), err)
			}
			t.Logf("ps --json writes %d bytes for %d containers", len(out), n)
		}
	}
	report := func(what string, rs []run) {
		q := func(d []time.Duration, p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
		var wall, cpu []time.Duration
		for _, r := range rs {
			wall, cpu = append(wall, r.wall), append(cpu, r.cpu)
		}
		slices.Sort(wall)
		slices.Sort(cpu)
		ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }
		t.Logf("%-42s wall ms: min %s p50 %s p90 %s max %s | CPU ms: min %s p50 %s max %s", what,
			ms(wall[0]), ms(q(wall, 0.5)), ms(q(wall, 0.9)), ms(wall[len(wall)-1]), ms(cpu[0]), ms(q(cpu, 0.5)), ms(cpu[len(cpu)-1]))
	}
	t.Logf("%d runs each, alternating; load average at the end: %s", runs, loadavg())
	report("tinycontainer --version", version)
	report(fmt.Sprintf("tinycontainer ps --json (%d containers)", n), ps)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return string(bytes.TrimSpace(b))
}
