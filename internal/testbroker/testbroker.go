// Package testbroker starts a real MQTT broker (Debian's mosquitto) on a
// free loopback port for tests, with mosquitto_sub and mosquitto_pub as
// outside clients. Tests skip when mosquitto is missing, or fail when
// TC_REQUIRE_MOSQUITTO=1 (as in CI).
package testbroker

import (
	"bufio"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/internal/testwait"
)

const mosquittoPath = "/usr/sbin/mosquitto"

// requireTool skips the test when an external binary is missing, or fails it
// when TC_REQUIRE_MOSQUITTO=1 (as in CI).
func requireTool(t testing.TB, path string) string {
	t.Helper()
	p, err := exec.LookPath(path)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found (%v); install Debian's mosquitto and mosquitto-clients", path, err)
	if os.Getenv("TC_REQUIRE_MOSQUITTO") == "1" {
		t.Fatal(msg + " (TC_REQUIRE_MOSQUITTO=1)")
	}
	t.Skip(msg)
	return ""
}

// Broker is a real mosquitto on a free loopback port.
type Broker struct {
	t       testing.TB
	bin     string
	port    int
	tlsPort int
	roots   *x509.CertPool
	conf    string
	cmd     *exec.Cmd
	exit    chan struct{}
	log     *os.File
}

// Opts add to the broker's configuration.
type Opts struct {
	// TLS adds a TLS listener with a certificate for 127.0.0.1 issued by
	// a CA made for the test (see TLSURL and Roots).
	TLS bool
	// Extra is appended to mosquitto.conf (per_listener_settings is not
	// set, so allow_anonymous, password_file and acl_file apply to every
	// listener). Without allow_anonymous true, mosquitto 2 refuses
	// anonymous clients.
	Extra string
}

// Start starts a broker that stops when the test ends, open to anonymous
// clients.
func Start(t testing.TB) *Broker {
	t.Helper()
	return StartOpts(t, Opts{Extra: "allow_anonymous true\n"})
}

// StartWith starts a broker with extra configuration lines (for example
// allow_anonymous, password_file and acl_file) after its listener.
func StartWith(t testing.TB, extra string) *Broker {
	t.Helper()
	return StartOpts(t, Opts{Extra: extra})
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartOpts starts a broker configured by o that stops when the test ends.
func StartOpts(t testing.TB, o Opts) *Broker {
	t.Helper()
	bin := requireTool(t, mosquittoPath)
	requireTool(t, "mosquitto_pub")
	requireTool(t, "mosquitto_sub")
	requireTool(t, "stdbuf")
	port := freePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	cfg := fmt.Sprintf("listener %d 127.0.0.1\n", port)
	var tlsPort int
	var roots *x509.CertPool
	if o.TLS {
		tlsPort = freePort(t)
		var ca, cert, key string
		ca, cert, key, roots = writeTLSFiles(t, dir)
		cfg += fmt.Sprintf("listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n", tlsPort, ca, cert, key)
	}
	cfg += "persistence false\n" + o.Extra + "\n"
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "mosquitto.log"))
	if err != nil {
		t.Fatal(err)
	}
	br := &Broker{t: t, bin: bin, port: port, tlsPort: tlsPort, roots: roots, conf: conf, log: logf}
	br.Start()
	t.Cleanup(func() {
		br.Stop()
		if t.Failed() {
			if b, err := os.ReadFile(logf.Name()); err == nil {
				t.Logf("mosquitto log:\n%s", b)
			}
		}
		logf.Close()
	})
	return br
}

// URL is the broker's address for the bridge.
func (br *Broker) URL() string { return fmt.Sprintf("mqtt://127.0.0.1:%d", br.port) }

// TLSURL is the address of the TLS listener (Opts.TLS).
func (br *Broker) TLSURL() string { return fmt.Sprintf("mqtts://127.0.0.1:%d", br.tlsPort) }

// Roots holds the CA of the TLS listener's certificate.
func (br *Broker) Roots() *x509.CertPool { return br.roots }

// Start (re)starts a stopped broker on the same port.
func (br *Broker) Start() {
	br.t.Helper()
	cmd := exec.Command(br.bin, "-c", br.conf)
	cmd.Stdout, cmd.Stderr = br.log, br.log
	if err := cmd.Start(); err != nil {
		br.t.Fatal(err)
	}
	br.cmd, br.exit = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(br.exit) }()
	WaitFor(br.t, "mosquitto to listen", func() bool {
		select {
		case <-br.exit:
			br.t.Fatalf("mosquitto exited at start")
		default:
		}
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", br.port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// Stop stops the broker.
func (br *Broker) Stop() {
	if br.cmd == nil {
		return
	}
	// SIGTERM, not SIGINT: a test run in the background inherits SIGINT
	// ignored, and mosquitto may not have installed its handler yet.
	_ = br.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-br.exit:
	case <-time.After(5 * time.Second):
		// A broker that has not acted on SIGTERM (seen once on a loaded
		// machine: a test hung 9 minutes here) is killed.
		_ = br.cmd.Process.Kill()
		<-br.exit
	}
	br.cmd = nil
}

// WaitFor polls cond until it holds, failing the test after 15 s.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, what, cond)
}

// Sub is a mosquitto_sub process, ready once the broker acknowledged
// its subscription.
type Sub struct {
	lines chan string
	cmd   *exec.Cmd
}

// Sub starts mosquitto_sub on topic, with extra arguments (for example
// -u USER -P PASSWORD).
func (br *Broker) Sub(t testing.TB, topic string, extra ...string) *Sub {
	t.Helper()
	// stdbuf: mosquitto_sub's stdout is block-buffered on a pipe.
	args := append([]string{"-oL", "mosquitto_sub", "-d", "-V", "5", "-h", "127.0.0.1", "-p", fmt.Sprint(br.port), "-t", topic, "-v"}, extra...)
	cmd := exec.Command("stdbuf", args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	s := &Sub{lines: make(chan string, 1024), cmd: cmd}
	ready := make(chan struct{})
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.Contains(line, "received SUBACK"):
				close(ready)
			case strings.HasPrefix(line, "Client ") || strings.HasPrefix(line, "Subscribed "):
			default:
				s.lines <- line
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case <-ready:
	case <-time.After(testwait.Guard()):
		t.Fatal("mosquitto_sub did not subscribe (a hang guard)")
	}
	return s
}

// Next returns the next "topic payload" line mosquitto_sub printed.
func (s *Sub) Next(t testing.TB) string {
	t.Helper()
	select {
	case l, ok := <-s.lines:
		if !ok {
			t.Fatal("mosquitto_sub exited")
		}
		return l
	case <-time.After(testwait.Guard()):
		t.Fatal("mosquitto_sub received nothing (a hang guard)")
	}
	return ""
}

// Pub runs mosquitto_pub with args, feeding stdin.
func (br *Broker) Pub(t testing.TB, stdin string, args ...string) {
	t.Helper()
	if out, err := br.PubOutput(stdin, args...); err != nil {
		t.Fatalf("mosquitto_pub %q: %v\n%s", args, err, out)
	}
}

// PubOutput runs mosquitto_pub with args, feeding stdin, and returns what
// it printed: a publish the broker refused (MQTT v5 reason code) shows as a
// warning there, with exit status 0.
func (br *Broker) PubOutput(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), testwait.Guard())
	defer cancel()
	all := append([]string{"-V", "5", "-h", "127.0.0.1", "-p", fmt.Sprint(br.port)}, args...)
	cmd := exec.CommandContext(ctx, "mosquitto_pub", all...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
