package cli_test

import (
	"io"
	"net"
	"os"
	"strings"
	"testing"
)

// TestPsUnreachableDevice is issue 13's item 8: `ps --device` at a port
// where nothing listens waited 10 s and printed go-coap's "recvmsg:
// connection refused" on stdout, corrupting --json. It fails at once with
// exit 1, the error on stderr and nothing at all on stdout, even on the
// process's own stdout, where a library would print.
func TestPsUnreachableDevice(t *testing.T) {
	l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := l.LocalAddr().String()
	l.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	res := tc("ps", "--json", "--device", addr, "--timeout", "10m")
	os.Stdout = stdout
	w.Close()
	leaked, _ := io.ReadAll(r)
	if res.code != 1 || res.stdout != "" || len(leaked) != 0 {
		t.Fatalf("%s\nprinted on the process's stdout: %q", res, leaked)
	}
	if !strings.Contains(res.stderr, "refused") {
		t.Fatalf("stderr does not say the connection was refused: %q", res.stderr)
	}
}
