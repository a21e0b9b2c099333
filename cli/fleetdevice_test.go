package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinycontainer/tinycontainer/internal/testbroker"
)

// `device --fleet`: online status with its labels, offline on SIGTERM
// (published before disconnecting), the will when killed.
func TestDeviceFleetStatus(t *testing.T) {
	if os.Getenv(deviceArgsEnv) != "" {
		t.Skip("inside the device child")
	}
	br := testbroker.Start(t)
	dir := t.TempDir()
	keys(t, dir)
	sub := br.Sub(t, "tc/v1/dev/+/status")
	args := []string{"--data", filepath.Join(dir, "state"), "--owner", filepath.Join(dir, "owner.pub"),
		"--fleet", br.URL(), "--id", "cli-1", "--label", "site=lab"}
	d := startDevice(t, args...)
	line := sub.Next(t)
	if !strings.HasPrefix(line, "tc/v1/dev/cli-1/status ") || !strings.Contains(line, `"online":true`) || !strings.Contains(line, `"site":"lab"`) {
		t.Fatalf("status: %s", line)
	}
	d.stop(t)
	if line := sub.Next(t); !strings.Contains(line, `"online":false`) {
		t.Fatalf("after SIGTERM: %s", line)
	}
	d = startDevice(t, args...)
	if line := sub.Next(t); !strings.Contains(line, `"online":true`) {
		t.Fatalf("after the restart: %s", line)
	}
	_ = d.cmd.Process.Kill()
	_ = d.cmd.Wait()
	if line := sub.Next(t); !strings.Contains(line, `"online":false`) {
		t.Fatalf("the will after a kill: %s", line)
	}
}

func TestDeviceFleetBadFlags(t *testing.T) {
	dir := t.TempDir()
	keys(t, dir)
	owner := filepath.Join(dir, "owner.pub")
	data := filepath.Join(dir, "state")
	for _, args := range [][]string{
		{"--fleet", "mqtt://127.0.0.1:1"},                              // no --id
		{"--fleet", "mqtt://127.0.0.1:1", "--id", "a/b"},               // bad id
		{"--fleet", "mqtt://127.0.0.1:1", "--id", "a", "--label", "x"}, // bad label
		{"--fleet", "ws://127.0.0.1:1", "--id", "a"},                   // bad URL
		{"--label", "a=b"}, // label without --fleet
		{"--fleet", "mqtt://127.0.0.1:1", "--id", "a", "--fleet-password-file", filepath.Join(dir, "missing")},
	} {
		must(t, 2, append([]string{"device", "--owner", owner, "--data", data, "--listen", "127.0.0.1:0"}, args...)...)
	}
	must(t, 2, "fleet", "simulate", "--devices", "0", "--owner", owner)
	must(t, 2, "fleet", "simulate", "--devices", "2")
}
