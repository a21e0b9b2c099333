package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/cli"
	"github.com/tinycontainer/tinycontainer/internal/testwait"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/trust"
)

// specFields are the container object fields of SPEC section 6.
var specFields = []string{"name", "tenant", "runtime", "state", "version", "activations", "faults",
	"last_fault", "missed_deadlines", "endpoint_calls", "denied_calls", "cpu_time_us"}

// specAuditFields are the audit entry fields of SPEC section 6.
var specAuditFields = []string{"time", "container", "tenant", "endpoint", "op", "reason"}

// result is one run of the command line.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// tc runs the command line in this process.
func tc(args ...string) result {
	var out, errb bytes.Buffer
	code := cli.Main(args, &out, &errb)
	return result{code, out.String(), errb.String()}
}

// must runs args and fails the test unless the exit code is want.
func must(t *testing.T, want int, args ...string) result {
	t.Helper()
	r := tc(args...)
	if r.code != want {
		t.Fatalf("tinycontainer %s: want exit %d, got %s", strings.Join(args, " "), want, r)
	}
	if want != 0 && !strings.Contains(r.stderr, "tinycontainer:") {
		t.Fatalf("tinycontainer %s: a failure must say why on stderr: %s", strings.Join(args, " "), r)
	}
	return r
}

// keys writes the owner's, acme's and globex's key pairs to dir with keygen.
func keys(t *testing.T, dir string) {
	t.Helper()
	for _, n := range []string{"owner", "acme", "globex"} {
		r := must(t, 0, "keygen", "--out", filepath.Join(dir, n))
		if !strings.Contains(r.stdout, "key id") {
			t.Fatalf("keygen output: %s", r.stdout)
		}
	}
}

// deviceTest begins a test that drives a device child process (skipped
// inside the child): a fresh directory holding the keys (keys) and the
// tenants' grants (grants), and p, which names a file in it.
func deviceTest(t *testing.T) (dir string, p func(string) string) {
	t.Helper()
	if os.Getenv(deviceArgsEnv) != "" {
		t.Skip("inside the device child")
	}
	dir = t.TempDir()
	keys(t, dir)
	grants(t, dir)
	return dir, func(n string) string { return filepath.Join(dir, n) }
}

// grants writes acme.grant and globex.grant with tenant grant.
func grants(t *testing.T, dir string) {
	t.Helper()
	p := func(n string) string { return filepath.Join(dir, n) }
	must(t, 0, "tenant", "grant", "--owner-key", p("owner.key"), "--tenant", "acme", "--pub", p("acme.pub"),
		"--allow", "sensor/+:read", "--allow", "log:write", "--allow", "kv:get,put", "--allow", "msg/acme/#:publish",
		"--max-memory", "64KiB", "--max-storage", "4KiB", "--max-budget", "10ms", "--min-period", "50ms", "-o", p("acme.grant"))
	must(t, 0, "tenant", "grant", "--owner-key", p("owner.key"), "--tenant", "globex", "--pub", p("globex.pub"),
		"--allow", "actuator/led0:read,write", "--allow", "log:write", "-o", p("globex.grant"))
}

// example is the path of an example manifest.
func example(name string) string { return filepath.Join("..", "examples", name, name+".yaml") }

// manifestVariant writes a copy of an example manifest changed by edit and
// returns its path (for meta apply, which sends no code).
func manifestVariant(t *testing.T, dir, name string, edit func(*meta.Manifest)) string {
	t.Helper()
	y, err := os.ReadFile(example(name))
	if err != nil {
		t.Fatal(err)
	}
	m, err := meta.Parse(y)
	if err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := m.YAML()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, fmt.Sprintf("%s-v%d.yaml", name, m.Version))
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOfflineVerbs(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	keys(t, dir)
	// keygen never overwrites a key.
	must(t, 1, "keygen", "--out", p("acme"))
	grants(t, dir)
	g, err := os.ReadFile(p("acme.grant"))
	if err != nil {
		t.Fatal(err)
	}
	owner, err := trust.LoadPublicKey(p("owner.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if gr, err := trust.OpenGrant(g, owner); err != nil || !bytes.Contains(gr.CeilingJSON, []byte(`"acme"`)) {
		t.Fatalf("acme.grant: %v", err)
	}

	r := must(t, 0, "pack", "--manifest", example("thermo"), "--key", p("acme.key"), "-o", p("thermo.img"))
	if !strings.Contains(r.stdout, "thermo v1") {
		t.Fatalf("pack output: %s", r.stdout)
	}
	acme, err := trust.LoadPublicKey(p("acme.pub"))
	if err != nil {
		t.Fatal(err)
	}
	r = must(t, 0, "inspect", p("thermo.img"))
	for _, want := range []string{"signed by key " + trust.KeyID(acme), "name: thermo", "tenant: acme", "sensor/temperature"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = must(t, 0, "inspect", "--json", p("thermo.img"))
	var ins struct {
		KeyID     string          `json:"key_id"`
		CodeBytes int             `json:"code_bytes"`
		SHA       string          `json:"code_sha256"`
		Manifest  json.RawMessage `json:"manifest"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &ins); err != nil {
		t.Fatalf("inspect --json: %v\n%s", err, r.stdout)
	}
	code, _ := os.ReadFile(filepath.Join("..", "examples", "thermo", "thermo.wasm"))
	if ins.KeyID != trust.KeyID(acme) || ins.CodeBytes != len(code) || len(ins.SHA) != 64 {
		t.Fatalf("inspect --json: %+v", ins)
	}
	if m, err := meta.Parse(ins.Manifest); err != nil || m.Name != "thermo" || m.Version != 1 {
		t.Fatalf("inspect --json manifest: %v", err)
	}

	// Usage errors exit 2.
	if err := os.WriteFile(p("bad.yaml"), []byte("name: Thermo\nbogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p("junk.img"), []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Code over the largest max code a grant may give (4 MiB).
	if err := os.WriteFile(p("big.wasm"), make([]byte, 4<<20+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p("big.yaml"), []byte("name: big\ntenant: acme\nversion: 1\nruntime: wasm\ncode: big.wasm\nschedule:\n  trigger: once\n  budget: 5ms\nlimits:\n  memory: 64KiB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"pack", "--manifest", example("thermo"), "-o", p("x.img")},                         // no --key
		{"pack", "--manifest", p("bad.yaml"), "--key", p("acme.key"), "-o", p("x.img")},     // bad manifest
		{"pack", "--manifest", example("thermo"), "--key", p("acme.pub"), "-o", p("x.img")}, // a public key
		{"pack", "--manifest", p("none.yaml"), "--key", p("acme.key"), "-o", p("x.img")},    // no such file
		{"pack", "--manifest", p("big.yaml"), "--key", p("acme.key"), "-o", p("x.img")},     // code over 4 MiB
		{"inspect", p("junk.img")},
		{"inspect"},
		{"keygen"},
		{"tenant", "grant", "--owner-key", p("owner.key"), "--tenant", "acme", "--pub", p("acme.pub"), "--allow", "log:fly", "-o", p("x.grant")},
		{"tenant", "grant", "--owner-key", p("owner.key"), "--tenant", "Acme!", "--pub", p("acme.pub"), "-o", p("x.grant")},
		{"ps", "--no-such-flag"},
		{"stop", "thermo"}, // no --key
		{"meta", "apply", "thermo", "--manifest", p("bad.yaml"), "--key", p("acme.key")},
		{"tenant", "add", p("none.grant"), "--key", p("owner.key")},
		{"deploy", p("none.img")},
		{"run", example("thermo")}, // unsigned manifest without --insecure
		{"run", "--insecure", p("bad.yaml")},
		{"device", "--data", p("state")}, // neither --owner nor --insecure
	} {
		r := must(t, 2, args...)
		if len(r.stderr) > 2000 {
			t.Errorf("%v: overly long error: %s", args, r.stderr)
		}
	}
	if _, err := os.Stat(p("x.img")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused pack left x.img behind: %v", err)
	}
	// Every verb has --help.
	for _, v := range [][]string{{"device"}, {"run"}, {"keygen"}, {"tenant", "grant"}, {"tenant", "add"}, {"pack"}, {"inspect"},
		{"deploy"}, {"ps"}, {"status"}, {"start"}, {"stop"}, {"rm"}, {"meta", "get"}, {"meta", "apply"}, {"logs"}, {"stats"}, {"audit"}} {
		r := must(t, 0, append(v, "--help")...)
		if !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("%v --help: %s", v, r.stdout)
		}
	}
}

func TestRunStats(t *testing.T) {
	dir := t.TempDir()
	stats := filepath.Join(dir, "stats.json")
	r := must(t, 0, "run", "--insecure", "--for", "1s", "--stats", stats, example("thermo"), example("blinker"))
	if !strings.Contains(r.stdout, "thermo: temperature ") || !strings.Contains(r.stdout, "blinker: led0 ") {
		t.Fatalf("run prints no container log lines as NAME: TEXT:\n%s", r.stdout)
	}
	b, err := os.ReadFile(stats)
	if err != nil {
		t.Fatal(err)
	}
	objs := checkContainerArray(t, b, 2)
	for _, o := range objs {
		if o["state"] != mgmt.StateRunning || o["activations"].(float64) < 1 {
			t.Errorf("run --stats: %v", o)
		}
	}
}

// checkContainerArray checks that b is a JSON array of n container objects
// with every SPEC field, and returns them.
func checkContainerArray(t *testing.T, b []byte, n int) []map[string]any {
	t.Helper()
	var objs []map[string]any
	if err := json.Unmarshal(b, &objs); err != nil {
		t.Fatalf("not a JSON array of objects: %v\n%s", err, b)
	}
	if len(objs) != n {
		t.Fatalf("%d container objects, want %d:\n%s", len(objs), n, b)
	}
	for _, o := range objs {
		checkFields(t, o, specFields)
	}
	return objs
}

func checkFields(t *testing.T, o map[string]any, fields []string) {
	t.Helper()
	for _, f := range fields {
		if _, ok := o[f]; !ok {
			t.Errorf("object lacks SPEC field %q: %v", f, o)
		}
	}
}

// Environment of the device child: its arguments, JSON.
const deviceArgsEnv = "TC_CLI_DEVICE_ARGS"

// TestDeviceChild is the `tinycontainer device` process of the end-to-end
// tests; it does nothing unless started by them.
func TestDeviceChild(t *testing.T) {
	a := os.Getenv(deviceArgsEnv)
	if a == "" {
		t.Skip("helper process of TestDeviceEndToEnd")
	}
	var args []string
	if err := json.Unmarshal([]byte(a), &args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	os.Exit(cli.Main(args, os.Stdout, os.Stderr))
}

// deviceProc is a `tinycontainer device` running in a child process.
type deviceProc struct {
	cmd  *exec.Cmd
	addr string
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
}

var readyAddr = regexp.MustCompile(`msg="device ready" coap=(\S+)`)

// startDevice runs `tinycontainer device ARGS --listen 127.0.0.1:0` in a
// child process and waits until it serves.
func startDevice(t *testing.T, args ...string) *deviceProc {
	t.Helper()
	args = append([]string{"device", "--listen", "127.0.0.1:0"}, args...)
	a, _ := json.Marshal(args)
	d := &deviceProc{cmd: exec.Command(os.Args[0], "-test.run=^TestDeviceChild$", "-test.count=1"), done: make(chan struct{})}
	d.cmd.Env = append(os.Environ(), deviceArgsEnv+"="+string(a))
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		if errors.Is(err, syscall.ENOEXEC) {
			// Under qemu-user without binfmt_misc (make test-arm32) a
			// copy of this test binary cannot be started.
			t.Skipf("cannot start a device child: %v", err)
		}
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			d.mu.Lock()
			d.log.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
			if m := readyAddr.FindStringSubmatch(sc.Text()); m != nil {
				ready <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Kill()
			_ = d.cmd.Wait()
		}
	})
	select {
	case d.addr = <-ready:
	case <-time.After(testwait.Guard()):
		t.Fatalf("the device did not become ready (a hang guard):\n%s", d.logText())
	case <-d.done:
		_ = d.cmd.Wait()
		t.Fatalf("the device exited (%v):\n%s", d.cmd.ProcessState, d.logText())
	}
	return d
}

func (d *deviceProc) logText() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// stop ends the device with SIGTERM and checks it exits cleanly.
func (d *deviceProc) stop(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-d.done
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("device after SIGTERM: %v\n%s", err, d.logText())
	}
}

// TestDeviceEndToEnd drives a `tinycontainer device` process with the
// management verbs, as a user would.
func TestDeviceEndToEnd(t *testing.T) {
	dir, p := deviceTest(t)
	must(t, 0, "pack", "--manifest", example("thermo"), "--key", p("acme.key"), "-o", p("thermo.img"))
	must(t, 0, "pack", "--manifest", example("blinker"), "--key", p("globex.key"), "-o", p("blinker.img"))
	must(t, 0, "pack", "--manifest", example("thermo"), "--key", p("globex.key"), "-o", p("thermo-globex.img"))
	data := p("state")
	d := startDevice(t, "--data", data, "--owner", p("owner.pub"))
	dev := []string{"--device", d.addr}
	m := func(want int, args ...string) result { t.Helper(); return must(t, want, append(args, dev...)...) }

	r := m(0, "ps", "--json")
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("ps --json on an empty device: %q", r.stdout)
	}
	// A tenant's image is refused before its grant is installed.
	m(1, "deploy", p("thermo.img"))
	r = m(0, "tenant", "add", p("acme.grant"), "--key", p("owner.key"), "--json")
	if !strings.Contains(r.stdout, `"tenant": "acme"`) {
		t.Fatalf("tenant add: %s", r.stdout)
	}
	m(1, "tenant", "add", p("globex.grant"), "--key", p("acme.key")) // only the owner adds tenants
	m(0, "tenant", "add", p("globex.grant"), "--key", p("owner.key"))

	r = m(0, "deploy", p("thermo.img"))
	if !strings.Contains(r.stdout, "deployed thermo v1 (tenant acme): running") {
		t.Fatalf("deploy: %s", r.stdout)
	}
	m(0, "deploy", p("blinker.img"))
	m(1, "deploy", p("thermo.img"))        // same version again
	m(1, "deploy", p("thermo-globex.img")) // signed by another tenant

	r = m(0, "ps", "--json")
	objs := checkContainerArray(t, []byte(r.stdout), 2)
	if objs[0]["name"] != "blinker" || objs[1]["name"] != "thermo" || objs[1]["tenant"] != "acme" || objs[1]["runtime"] != "wasm" {
		t.Fatalf("ps --json: %s", r.stdout)
	}
	r = m(0, "ps")
	if !strings.Contains(r.stdout, "NAME") || !strings.Contains(r.stdout, "thermo") {
		t.Fatalf("ps: %s", r.stdout)
	}
	waitFor(t, "thermo's log", func() bool {
		return strings.Contains(tc(append([]string{"logs", "thermo"}, dev...)...).stdout, "thermo: temperature ")
	})
	r = m(0, "status", "thermo", "--json")
	var st map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	checkFields(t, st, specFields)
	if st["state"] != mgmt.StateRunning || st["version"] != 1.0 {
		t.Fatalf("status --json: %v", st)
	}
	checkContainerArray(t, []byte(m(0, "stats", "--json").stdout), 2)
	checkContainerArray(t, []byte(m(0, "stats", "thermo", "--json").stdout), 1)
	var info mgmt.DeviceInfo
	if err := json.Unmarshal([]byte(m(0, "info", "--json").stdout), &info); err != nil ||
		info.Containers[mgmt.StateRunning] != 2 || len(info.Runtimes) != 2 || info.MQTT != nil {
		t.Fatalf("info --json: %v, %+v", err, info)
	}
	if r := m(0, "info"); !strings.Contains(r.stdout, "containers  2 running") || !strings.Contains(r.stdout, "wasm (compiler)") ||
		!strings.Contains(r.stdout, "mqtt        none") {
		t.Fatalf("info: %s", r.stdout)
	}
	m(1, "status", "nothere")

	r = m(0, "meta", "get", "thermo")
	if got, err := meta.Parse([]byte(r.stdout)); err != nil || got.Name != "thermo" || got.Version != 1 {
		t.Fatalf("meta get: %v\n%s", err, r.stdout)
	}
	r = m(0, "meta", "get", "thermo", "--json")
	if !json.Valid([]byte(r.stdout)) {
		t.Fatalf("meta get --json: %s", r.stdout)
	}
	// Revoke the log permission live: thermo's next log call is denied.
	v2 := manifestVariant(t, dir, "thermo", func(m *meta.Manifest) {
		m.Version = 2
		var keep []meta.EndpointRule
		for _, e := range m.Endpoints {
			if e.Name != "log" {
				keep = append(keep, e)
			}
		}
		m.Endpoints = keep
	})
	m(1, "meta", "apply", "thermo", "--manifest", v2, "--key", p("globex.key"))
	m(0, "meta", "apply", "thermo", "--manifest", v2, "--key", p("acme.key"))
	m(1, "meta", "apply", "thermo", "--manifest", v2, "--key", p("acme.key")) // not newer
	if got, _ := meta.Parse([]byte(m(0, "meta", "get", "thermo").stdout)); got == nil || got.Version != 2 || got.Allowed("log") != 0 {
		t.Fatalf("meta get after apply: %+v", got)
	}
	waitFor(t, "thermo's denied log call in the audit", func() bool {
		r := tc(append([]string{"audit", "--json"}, dev...)...)
		return strings.Contains(r.stdout, `"endpoint": "log"`)
	})
	var audit []map[string]any
	if err := json.Unmarshal([]byte(m(0, "audit", "--json").stdout), &audit); err != nil || len(audit) == 0 {
		t.Fatalf("audit --json: %v", err)
	}
	for _, e := range audit {
		checkFields(t, e, specAuditFields)
	}
	if r := m(0, "audit"); !strings.Contains(r.stdout, "thermo (acme)") {
		t.Fatalf("audit: %s", r.stdout)
	}

	r = m(0, "stop", "thermo", "--key", p("acme.key"), "--json")
	if !strings.Contains(r.stdout, `"state": "stopped"`) {
		t.Fatalf("stop: %s", r.stdout)
	}
	m(1, "start", "thermo", "--key", p("globex.key"))
	r = m(0, "start", "thermo", "--key", p("owner.key"), "--json")
	if !strings.Contains(r.stdout, `"state": "running"`) {
		t.Fatalf("start: %s", r.stdout)
	}
	m(0, "stop", "blinker", "--key", p("globex.key"))
	m(1, "stop", "nothere", "--key", p("acme.key"))
	m(2, "stop", "thermo")

	libcoap(t, d.addr)

	// The state survives a restart of the device process.
	d.stop(t)
	d = startDevice(t, "--data", data, "--owner", p("owner.pub"))
	dev = []string{"--device", d.addr}
	objs = checkContainerArray(t, []byte(m(0, "ps", "--json").stdout), 2)
	if objs[0]["state"] != mgmt.StateStopped || objs[1]["state"] != mgmt.StateRunning || objs[1]["version"] != 2.0 {
		t.Fatalf("after restart: %v", objs)
	}
	r = m(0, "rm", "thermo", "--key", p("acme.key"), "--json")
	if !strings.Contains(r.stdout, `"removed": "thermo"`) {
		t.Fatalf("rm: %s", r.stdout)
	}
	m(1, "deploy", p("thermo.img")) // rollback after rm
	checkContainerArray(t, []byte(m(0, "ps", "--json").stdout), 1)
	d.stop(t)
	// Nothing listens any more: a device error, exit 1.
	must(t, 1, "ps", "--device", d.addr, "--timeout", "300ms")
}

// libcoap reads the device with libcoap's command-line client.
func libcoap(t *testing.T, addr string) {
	t.Helper()
	const bin = "/usr/bin/coap-client-notls"
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("TC_REQUIRE_COAP_CLIENT") == "1" {
			t.Fatalf("%s is required (TC_REQUIRE_COAP_CLIENT=1): %v", bin, err)
		}
		t.Logf("skipping the libcoap checks: %s not installed (Debian package libcoap3-bin): %v", bin, err)
		return
	}
	get := func(path string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), testwait.Guard())
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "-m", "get", "-B", "10", "coap://"+addr+path).Output()
		if err != nil {
			t.Fatalf("%s GET %s: %v\n%s", bin, path, err, out)
		}
		return string(out)
	}
	core := get("/.well-known/core")
	for _, res := range []string{"</c>", "</c/thermo>", "</c/blinker>", "</deploy>"} {
		if !strings.Contains(core, res) {
			t.Errorf("GET /.well-known/core lacks %s: %s", res, core)
		}
	}
	checkContainerArray(t, []byte(get("/c")), 2)
	var st mgmt.ContainerStatus
	if out := get("/c/thermo"); json.Unmarshal([]byte(out), &st) != nil || st.Name != "thermo" || st.Tenant != "acme" || st.State != mgmt.StateRunning {
		t.Fatalf("GET /c/thermo: %q", out)
	}
}

// waitFor polls cond until it holds (testwait.For).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, what, cond)
}
