// Package scale is the fleet's scale benchmark (make bench-fleet; not
// part of go test ./... unless TC_FLEET_SCALE is set): a mosquitto on
// this machine, TC_FLEET_SCALE devices in one process, and the controller
// (tinycontainer fleet rollout --json) in another. It rolls a 13 KB image
// out in a 5 % canary then 25 % waves with a 2 s health window, then rolls
// out a version that faults everywhere, and reports time per wave, the
// controller's and each device's memory, broker messages per device and
// how long the faulting canary took to be back.
package scale

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/cli"
	"github.com/tinycontainer/tinycontainer/fleet/ctl"
	"github.com/tinycontainer/tinycontainer/fleet/doc"
	"github.com/tinycontainer/tinycontainer/internal/mqttc"
	"github.com/tinycontainer/tinycontainer/internal/testbroker"
	"github.com/tinycontainer/tinycontainer/trust"
)

// The test binary plays the other processes' parts: the controller and
// the simulated devices are both the command line (tinycontainer fleet
// rollout, tinycontainer fleet simulate).
func TestMain(m *testing.M) {
	if os.Getenv("TC_FLEET_ROLE") == "cli" {
		os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func self(t *testing.T, role string, env []string, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(append(os.Environ(), "TC_FLEET_ROLE="+role), env...)
	cmd.Stderr = os.Stderr
	return cmd
}

// counter counts the messages published on the fleet's topics, by kind,
// from its start to stop (live ones only: not the retained copies a
// subscription brings).
type counter struct {
	cli  *mqttc.Client
	mu   sync.Mutex
	by   map[string]int
	done bool
}

func countMessages(t *testing.T, broker string) *counter {
	t.Helper()
	c := &counter{by: map[string]int{}}
	cl, err := mqttc.Start(mqttc.ClientConfig{Config: mqttc.Config{URL: broker, ClientID: "tc-bench-counter", MaxPacketSize: 4 << 20,
		ReceiveMaximum: 65535,
		OnMessage: func(m mqttc.Message) {
			if m.Retain {
				return
			}
			tp, err := doc.ParseTopic(m.Topic)
			if err != nil {
				return
			}
			c.mu.Lock()
			if !c.done {
				c.by[tp.Kind.String()]++
			}
			c.mu.Unlock()
		}},
		OnConnect: func(ctx context.Context, conn *mqttc.Conn) error {
			_, err := conn.Subscribe(ctx, []mqttc.Filter{{Topic: "tc/v1/#", QoS: 0}})
			return err
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.WaitConnected(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.cli = cl
	time.Sleep(time.Second) // let the retained copies of the subscription pass
	c.mu.Lock()
	c.by = map[string]int{}
	c.mu.Unlock()
	return c
}

func (c *counter) stop() map[string]int {
	time.Sleep(time.Second) // the last messages in flight
	c.mu.Lock()
	c.done = true
	by := c.by
	c.mu.Unlock()
	c.cli.Close(time.Second)
	return by
}

type byKind map[string]int

func (b byKind) perDevice(n int) string {
	var parts []string
	total := 0
	for _, k := range []string{"status", "reported", "grant", "desired", "img", "rollout"} {
		if b[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %.2f", k, float64(b[k])/float64(n)))
			total += b[k]
		}
	}
	return fmt.Sprintf("%.2f (%s)", float64(total)/float64(n), strings.Join(parts, ", "))
}

// image packs examples/thermo at version v, its module padded with a
// custom section to make a 13 KB image; faulty images carry
// examples/runaway's code instead (a budget overrun at every activation).
func image(t *testing.T, key ed25519.PrivateKey, v uint64, faulty bool) []byte {
	t.Helper()
	src := "../../examples/thermo/thermo.wasm"
	if faulty {
		src = "../../examples/runaway/runaway.wasm"
	}
	code, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	pad := 13000 - len(code) - 600
	name := "padding"
	payload := append([]byte{byte(len(name))}, name...)
	payload = append(payload, make([]byte, pad)...)
	code = append(code, 0)
	for n := len(payload); ; n >>= 7 { // LEB128 section size
		if n < 0x80 {
			code = append(code, byte(n))
			break
		}
		code = append(code, byte(n&0x7f|0x80))
	}
	code = append(code, payload...)
	m := fmt.Sprintf(`{"name":"thermo","tenant":"acme","version":%d,"runtime":"wasm","code":"thermo.wasm",
		"schedule":{"trigger":"periodic","period":"200ms","budget":"5ms","on_fault":"restart","max_faults":3},
		"limits":{"memory":"64KiB","storage":"1KiB"},
		"endpoints":[{"name":"sensor/temperature","ops":["read"]},{"name":"log","ops":["write"]},{"name":"kv","ops":["get","put"]}]}`, v)
	img, err := trust.Pack([]byte(m), code, key)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

type rolloutResult struct {
	events  []ctl.Event
	elapsed time.Duration
	maxRSS  int64 // KiB
	code    int
}

func rollout(t *testing.T, brokerURL, img, key string, extra ...string) rolloutResult {
	t.Helper()
	args := append([]string{"fleet", "rollout", img, "--key", key, "--broker", brokerURL, "--all", "--json", "--settle", "1s", "--timeout", "60s"}, extra...)
	cmd := self(t, "cli", nil, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var res rolloutResult
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e ctl.Event
		if os.Getenv("TC_FLEET_VERBOSE") != "" {
			fmt.Fprintln(os.Stderr, sc.Text())
		}
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Kind != "" {
			res.events = append(res.events, e)
		}
	}
	exited := make(chan struct{})
	go func() {
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Signal(syscall.SIGQUIT) // a goroutine dump on stderr
		}
	}()
	_ = cmd.Wait()
	close(exited)
	res.elapsed = time.Since(start)
	res.code = cmd.ProcessState.ExitCode()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.maxRSS = int64(ru.Maxrss)
	}
	return res
}

func TestScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("TC_FLEET_SCALE"))
	if n <= 0 {
		t.Skip("set TC_FLEET_SCALE=1000 (make bench-fleet)")
	}
	dir := t.TempDir()
	p := func(f string) string { return filepath.Join(dir, f) }
	br := testbroker.StartWith(t, "allow_anonymous true\nsys_interval 1\nmax_queued_messages 100000\n")
	for _, k := range []string{"owner", "acme"} {
		if code := cli.Main([]string{"keygen", "--out", p(k)}, io.Discard, os.Stderr); code != 0 {
			t.Fatal("keygen")
		}
	}
	if code := cli.Main([]string{"tenant", "grant", "--owner-key", p("owner.key"), "--tenant", "acme", "--pub", p("acme.pub"),
		"--allow", "sensor/+:read", "--allow", "log:write", "--allow", "kv:get,put", "--max-memory", "64KiB",
		"--max-storage", "4KiB", "--max-budget", "10ms", "--min-period", "50ms", "-o", p("acme.grant")}, io.Discard, os.Stderr); code != 0 {
		t.Fatal("tenant grant")
	}
	key, err := trust.LoadPrivateKey(p("acme.key"))
	if err != nil {
		t.Fatal(err)
	}
	imgs := map[uint64]string{}
	for _, v := range []uint64{1, 2, 3} {
		b := image(t, key, v, v == 3)
		imgs[v] = p(fmt.Sprintf("thermo-v%d.img", v))
		if err := os.WriteFile(imgs[v], b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("image v%d: %d bytes", v, len(b))
	}

	// The devices: tinycontainer fleet simulate in its own process.
	sim := self(t, "cli", nil, "fleet", "simulate", "--owner", p("owner.pub"), "--devices", fmt.Sprint(n), "--broker", br.URL(), "--json")
	stdout, _ := sim.StdoutPipe()
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Process.Signal(os.Interrupt); _ = sim.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"started"`) {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Minute):
		t.Fatal("devices did not start")
	}
	f, err := ctl.Open(context.Background(), ctl.Options{Broker: br.URL(), Settle: time.Second, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	testbroker.WaitFor(t, "every device online", func() bool {
		on := 0
		for _, d := range f.Devices(ctl.All()) {
			if d.Online {
				on++
			}
		}
		return on == n
	})
	f.Close()
	idleRSS := rssKiB(t, sim.Process.Pid)
	t.Logf("%d simulated devices online; their process RSS %d KiB: %.0f KiB per device (no container yet)", n, idleRSS, float64(idleRSS)/float64(n))

	// Setup (not measured): the grant, then version 1 everywhere at once.
	if code := cli.Main([]string{"fleet", "grant", p("acme.grant"), "--key", p("owner.key"), "--all", "--broker", br.URL(),
		"--settle", "1s", "--timeout", "60s", "--wait", "60s"}, io.Discard, os.Stderr); code != 0 {
		t.Fatalf("fleet grant exit %d", code)
	}
	if r := rollout(t, br.URL(), imgs[1], p("acme.key"), "--canary", "100%", "--health", "0s"); r.code != 0 {
		t.Fatalf("setup rollout exit %d", r.code)
	}

	obs := countMessages(t, br.URL())
	r := rollout(t, br.URL(), imgs[2], p("acme.key"), "--canary", "5%", "--wave", "25%", "--health", "2s")
	if r.code != 0 {
		t.Fatalf("rollout exit %d", r.code)
	}
	counts := byKind(obs.stop())
	busyRSS := rssKiB(t, sim.Process.Pid)
	t.Logf("ROLLOUT of a 13 KB image to %d devices, 5%% canary then 25%% waves, health 2s: %v (controller process, start to exit)",
		n, r.elapsed.Round(time.Millisecond))
	logWaves(t, r.events)
	t.Logf("controller max RSS %d KiB; devices' process RSS %d KiB: %.0f KiB per device (one container running)", r.maxRSS, busyRSS, float64(busyRSS)/float64(n))
	t.Logf("messages published during the rollout, per device: %s", counts.perDevice(n))

	// A version that faults everywhere: it must abort before its first full
	// wave, the canaries back on version 2.
	fr := rollout(t, br.URL(), imgs[3], p("acme.key"), "--canary", "5%", "--wave", "25%", "--health", "2s")
	if fr.code != 1 {
		t.Fatalf("faulting rollout exit %d", fr.code)
	}
	var abortAt, abortedAt time.Time
	fullWave := false
	for _, e := range fr.events {
		switch e.Kind {
		case ctl.EvAborting:
			abortAt = e.Time
		case ctl.EvAborted:
			abortedAt = e.Time
		case ctl.EvWave:
			fullWave = fullWave || e.Wave > 0
		}
	}
	t.Logf("FAULTING rollout: exit 1 after %v; a full wave started: %v; canaries back on version 2 %v after the abort began",
		fr.elapsed.Round(time.Millisecond), fullWave, abortedAt.Sub(abortAt).Round(time.Millisecond))
	logWaves(t, fr.events)
	if fullWave {
		t.Error("the faulting rollout reached a full wave")
	}
}

func logWaves(t *testing.T, evs []ctl.Event) {
	var start time.Time
	for _, e := range evs {
		switch e.Kind {
		case ctl.EvWave:
			start = e.Time
		case ctl.EvWaveDone:
			t.Logf("  wave %d: %v (%v)", e.Wave, e.Time.Sub(start).Round(time.Millisecond), e.Counts)
		}
	}
}

func rssKiB(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}
