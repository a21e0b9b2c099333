package cli_test

// Regression tests of issue 13, "a newcomer's first hour": each is named
// after what went wrong.

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/tinycontainer/tinycontainer/cli"
	"github.com/tinycontainer/tinycontainer/internal/testwait"
	"github.com/tinycontainer/tinycontainer/meta"
)

// syncBuffer is a buffer a command writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// copyFile copies src to dst.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestMisleadingMessages: `run --trust K corrupt.img` suggested --insecure,
// `deploy hot.yaml` spoke of COSE_Sign1 tags and `keygen` over an existing
// name said "bad key".
func TestMisleadingMessages(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	keys(t, dir)
	must(t, 0, "pack", "--manifest", example("thermo"), "--key", p("acme.key"), "-o", p("thermo.img"))
	img, err := os.ReadFile(p("thermo.img"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p("corrupt.img"), img[:len(img)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	r := must(t, 2, "run", "--trust", p("acme.pub"), p("corrupt.img"))
	if strings.Contains(r.stderr, "--insecure") || !strings.Contains(r.stderr, "not a valid signed image") {
		t.Errorf("run of a corrupt image: %s", r)
	}
	// A manifest where an image is expected: say so, and how to pack it.
	for _, args := range [][]string{
		{"deploy", example("thermo"), "--device", "127.0.0.1:9"},
		{"run", "--trust", p("acme.pub"), example("thermo")},
	} {
		r := must(t, 2, args...)
		if !strings.Contains(r.stderr, "is a manifest, not a signed image") || strings.Contains(r.stderr, "COSE") {
			t.Errorf("%v: %s", args, r)
		}
	}
	if r := tc("deploy", example("thermo")); !strings.Contains(r.stderr, "tinycontainer pack --manifest "+example("thermo")) {
		t.Errorf("deploy of a manifest does not say how to pack it: %s", r)
	}
	r = must(t, 1, "keygen", "--out", p("acme"))
	if !strings.Contains(r.stderr, "acme.key already exists") || strings.Contains(r.stderr, "bad key") {
		t.Errorf("keygen over an existing key: %s", r)
	}
}

// TestBadInputExits2WhereverDetected: the same bad input gave 2 when
// checked here and 1 when the device refused it.
func TestBadInputExits2WhereverDetected(t *testing.T) {
	dir, p := deviceTest(t)
	// Code over the default 1 MiB: pack refuses it as deploy would; packed
	// anyway (a grant may allow more), the device refuses it.
	big := make([]byte, 1<<20+1000)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p("big.wasm"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	bigYAML := manifestVariant(t, dir, "thermo", func(m *meta.Manifest) { m.Name, m.Code = "big", "big.wasm" })
	r := must(t, 2, "pack", "--manifest", bigYAML, "--key", p("acme.key"), "-o", p("big.img"))
	if !strings.Contains(r.stderr, "over the max code size of 1048576 bytes") || !strings.Contains(r.stderr, "--max-code") {
		t.Errorf("pack of oversized code: %s", r)
	}
	must(t, 0, "pack", "--manifest", bigYAML, "--key", p("acme.key"), "--max-code", "2MiB", "-o", p("big.img"))
	must(t, 0, "pack", "--manifest", example("thermo"), "--key", p("acme.key"), "-o", p("thermo.img"))
	if err := os.WriteFile(p("junk.img"), []byte{0xd2, 0x84, 0x40, 0xa0, 0x00, 0x01, 0x02}, 0o644); err != nil {
		t.Fatal(err)
	}

	d := startDevice(t, "--data", p("state"), "--owner", p("owner.pub"))
	dev := []string{"--device", d.addr}
	m := func(want int, args ...string) result { t.Helper(); return must(t, want, append(args, dev...)...) }
	m(0, "tenant", "add", p("acme.grant"), "--key", p("owner.key"))
	m(2, "deploy", p("junk.img"))
	m(2, "deploy", example("thermo"))
	m(2, "deploy", p("big.img")) // refused by the device: too large
	m(0, "deploy", p("thermo.img"))
	// Refused by the device as invalid: metadata for another container.
	other := manifestVariant(t, dir, "thermo", func(m *meta.Manifest) { m.Name, m.Version = "other", 2 })
	r = m(2, "meta", "apply", "thermo", "--manifest", other, "--key", p("acme.key"))
	if !strings.Contains(r.stderr, `metadata is for "other"`) {
		t.Errorf("meta apply of another container's metadata: %s", r)
	}
	// Refusals that are not about the input stay failures.
	m(1, "deploy", p("thermo.img")) // not newer
	m(1, "status", "nothere")
	d.stop(t)

	// A bad --mqtt URL is bad input, in run and in device.
	must(t, 2, "run", "--insecure", "--for", "1ms", "--mqtt", "http://127.0.0.1:1883", example("thermo"))
	must(t, 2, "device", "--insecure", "--data", p("state2"), "--listen", "127.0.0.1:0", "--mqtt", "mqtt//nohost")
}

// TestOutputConvention: tenant add, rm, stop, start and meta apply dumped
// raw JSON, tenant grant printed nothing, ps cut names, there was no
// --version, an empty audit printed nothing and log timestamps changed
// width.
func TestOutputConvention(t *testing.T) {
	if os.Getenv(deviceArgsEnv) != "" {
		t.Skip("inside the device child")
	}
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	if r := must(t, 0, "--version"); !regexp.MustCompile(`^tinycontainer \S+`).MatchString(r.stdout) {
		t.Errorf("--version: %s", r)
	}
	keys(t, dir)
	r := must(t, 0, "tenant", "grant", "--owner-key", p("owner.key"), "--tenant", "acme", "--pub", p("acme.pub"),
		"--allow", "sensor/+:read", "--allow", "log:write", "--allow", "kv:get,put", "--allow", "msg/acme/#:publish",
		"--max-budget", "10ms", "--min-period", "50ms", "-o", p("acme.grant"))
	if !strings.Contains(r.stdout, "wrote "+p("acme.grant")+": tenant acme") || !strings.Contains(r.stdout, "sensor/+ [read]") {
		t.Errorf("tenant grant: %s", r)
	}
	r = must(t, 0, "tenant", "grant", "--owner-key", p("owner.key"), "--tenant", "acme", "--pub", p("acme.pub"),
		"--allow", "sensor/+:read", "--allow", "log:write", "-o", p("acme2.grant"), "--json")
	checkJSONObject(t, r.stdout, "file", "tenant_key", "owner_key", "ceiling")
	checkJSONObject(t, must(t, 0, "pack", "--manifest", example("thermo"), "--key", p("acme.key"), "-o", p("thermo.img"), "--json").stdout,
		"file", "name", "version", "key_id")
	// A name longer than the old 10-column cut.
	copyFile(t, filepath.Join("..", "examples", "thermo", "thermo.wasm"), p("thermo.wasm"))
	long := manifestVariant(t, dir, "thermo", func(m *meta.Manifest) { m.Name = "temperature-sensor-kitchen" })
	r = must(t, 0, "pack", "--manifest", long, "--key", p("acme.key"), "-o", p("long.img"))
	if !strings.HasPrefix(r.stdout, "packed temperature-sensor-kitchen v1 (tenant acme") {
		t.Errorf("pack: %s", r)
	}

	d := startDevice(t, "--data", p("state"), "--owner", p("owner.pub"))
	dev := []string{"--device", d.addr}
	m := func(want int, args ...string) result { t.Helper(); return must(t, want, append(args, dev...)...) }
	if r := m(0, "audit"); r.stdout != "no audit entries: no call or request has been refused\n" {
		t.Errorf("empty audit: %s", r)
	}
	if r := m(0, "audit", "--json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("empty audit --json: %s", r)
	}
	if r := m(0, "tenant", "add", p("acme.grant"), "--key", p("owner.key")); !regexp.MustCompile(`^added tenant acme \(key [0-9a-f]+\)\n$`).MatchString(r.stdout) {
		t.Errorf("tenant add: %s", r)
	}
	if r := m(0, "deploy", p("long.img")); r.stdout != "deployed temperature-sensor-kitchen v1 (tenant acme): running\n" {
		t.Errorf("deploy: %s", r)
	}
	if r := m(0, "ps"); !strings.Contains(r.stdout, "temperature-sensor-kitchen  acme") {
		t.Errorf("ps cuts or misaligns a long name:\n%s", r.stdout)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"stop", "temperature-sensor-kitchen", "--key", p("acme.key")}, "stopped temperature-sensor-kitchen v1 (tenant acme): stopped\n"},
		{[]string{"start", "temperature-sensor-kitchen", "--key", p("acme.key")}, "started temperature-sensor-kitchen v1 (tenant acme): running\n"},
	} {
		if r := m(0, c.args...); r.stdout != c.want {
			t.Errorf("%v: %s", c.args, r)
		}
	}
	v2 := manifestVariant(t, dir, "thermo", func(m *meta.Manifest) { m.Name, m.Version = "temperature-sensor-kitchen", 2 })
	if r := m(0, "meta", "apply", "temperature-sensor-kitchen", "--manifest", v2, "--key", p("acme.key")); !strings.HasPrefix(r.stdout, "applied metadata v2 to temperature-sensor-kitchen") {
		t.Errorf("meta apply: %s", r)
	}
	waitFor(t, "12 log lines", func() bool {
		return strings.Count(tc(append([]string{"logs", "temperature-sensor-kitchen"}, dev...)...).stdout, "\n") >= 12
	})
	stamp := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d) temperature-sensor-kitchen: `)
	for _, l := range strings.Split(strings.TrimSpace(m(0, "logs", "temperature-sensor-kitchen").stdout), "\n") {
		if !stamp.MatchString(l) {
			t.Errorf("log line without a fixed-width timestamp: %q", l)
		}
	}
	if r := m(0, "rm", "temperature-sensor-kitchen", "--key", p("acme.key")); r.stdout != "removed temperature-sensor-kitchen (its kv data too)\n" {
		t.Errorf("rm: %s", r)
	}
	d.stop(t)
}

// checkJSONObject checks that s is one JSON object with the fields.
func checkJSONObject(t *testing.T, s string, fields ...string) {
	t.Helper()
	var o map[string]any
	if err := jsonUnmarshal(s, &o); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, s)
	}
	checkFields(t, o, fields)
}

// TestLogsTailSinceFollow: logs had no --tail or --since, -f replayed all
// history, and after the device got SIGTERM `logs -f` sat silent.
func TestLogsTailSinceFollow(t *testing.T) {
	if os.Getenv(deviceArgsEnv) != "" {
		t.Skip("inside the device child")
	}
	dir := t.TempDir()
	d := startDevice(t, "--data", filepath.Join(dir, "state"), "--insecure")
	// The device address from the environment, for every verb below.
	t.Setenv("TINYCONTAINER_DEVICE", d.addr)
	keys(t, dir)
	must(t, 0, "pack", "--manifest", example("thermo"), "--key", filepath.Join(dir, "acme.key"), "-o", filepath.Join(dir, "thermo.img"))
	must(t, 0, "deploy", filepath.Join(dir, "thermo.img"))
	waitFor(t, "15 log lines", func() bool { return strings.Count(tc("logs", "thermo").stdout, "\n") >= 15 })
	must(t, 0, "stop", "thermo", "--key", filepath.Join(dir, "acme.key")) // no new lines from here on
	all := strings.Split(strings.TrimSpace(must(t, 0, "logs", "thermo").stdout), "\n")
	if got := must(t, 0, "logs", "--tail", "3", "thermo").stdout; got != strings.Join(all[len(all)-3:], "\n")+"\n" {
		t.Errorf("--tail 3: %q, want the last 3 of %q", got, all)
	}
	if got := must(t, 0, "logs", "--tail", "0", "thermo").stdout; got != "" {
		t.Errorf("--tail 0: %q", got)
	}
	if got := strings.Count(must(t, 0, "logs", "--since", "24h", "thermo").stdout, "\n"); got != len(all) {
		t.Errorf("--since 24h: %d lines, want %d", got, len(all))
	}
	if got := must(t, 0, "logs", "--since", "1ns", "thermo").stdout; got != "" {
		t.Errorf("--since 1ns: %q", got)
	}
	must(t, 2, "logs", "--tail", "-5", "thermo")
	r := must(t, 0, "logs", "--tail", "1", "--json", "thermo")
	checkJSONObject(t, r.stdout, "seq", "time", "container", "text")

	// -f shows the newest 10 lines, then follows until the device stops:
	// then it says so on stderr and exits 1.
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() { done <- cli.Main([]string{"logs", "-f", "thermo"}, &out, &errb) }()
	waitFor(t, "logs -f to print the newest lines", func() bool { return strings.Count(out.String(), "\n") >= 10 })
	// A new line reaches the follower: it follows.
	must(t, 0, "start", "thermo", "--key", filepath.Join(dir, "acme.key"))
	waitFor(t, "logs -f to print a new line", func() bool { return strings.Count(out.String(), "\n") > 10 })
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := testwait.Recv(t, "logs -f to end after the device was stopped", done)
	// The device's last notification says it is shutting down, whatever
	// the observation was doing at that moment (a notification still
	// unacknowledged under load ended it silently: run 4 of make
	// test-busy; see mgmt/coap TestShutdownNoticeWhileNotificationUnacknowledged).
	if code != 1 || !strings.Contains(errb.String(), "the device is shutting down") {
		t.Errorf("logs -f when the device stops: exit %d, stderr %s", code, errb.String())
	}
	if got := strings.Split(out.String(), "\n"); strings.Join(got[:10], "\n") != strings.Join(all[len(all)-10:], "\n") {
		t.Errorf("logs -f did not start with the newest 10 retained lines:\n%s", out.String())
	}
	<-d.done
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("device after SIGTERM: %v\n%s", err, d.logText())
	}
}
