package cli_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// TestDeviceMemoryLimit: --memory-limit reaches the Go runtime of the
// device process (info reads it back from the runtime), in text and JSON.
func TestDeviceMemoryLimit(t *testing.T) {
	t.Setenv("GOGC", "100") // whatever the developer's environment says
	d := startDevice(t, "--data", t.TempDir(), "--insecure", "--memory-limit", "96MiB")
	defer d.stop(t)
	if !strings.Contains(d.logText(), `memory_limit="96.0 MiB (flag)"`) {
		t.Errorf("ready line without the limit:\n%s", d.logText())
	}
	var info mgmt.DeviceInfo
	if err := json.Unmarshal([]byte(must(t, 0, "info", "--json", "--device", d.addr).stdout), &info); err != nil {
		t.Fatal(err)
	}
	if info.Memory == nil || info.Memory.LimitBytes != 96<<20 || info.Memory.GoBytes == 0 || info.Memory.GOGC != 100 {
		t.Fatalf("info --json memory: %+v", info.Memory)
	}
	if r := must(t, 0, "info", "--device", d.addr); !strings.Contains(r.stdout, "soft limit 96.0 MiB, GOGC 100") {
		t.Fatalf("info: %s", r.stdout)
	}
}

// TestDeviceMemoryLimitFromEnv: by default the device keeps GOMEMLIMIT;
// --memory-limit off lifts it.
func TestDeviceMemoryLimitFromEnv(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "80MiB")
	for _, c := range []struct {
		flag []string
		want uint64
	}{{nil, 80 << 20}, {[]string{"--memory-limit", "off"}, 0}, {[]string{"--memory-limit", "128MiB"}, 128 << 20}} {
		d := startDevice(t, append([]string{"--data", t.TempDir(), "--insecure"}, c.flag...)...)
		var info mgmt.DeviceInfo
		if err := json.Unmarshal([]byte(must(t, 0, "info", "--json", "--device", d.addr).stdout), &info); err != nil {
			t.Fatal(err)
		}
		d.stop(t)
		if info.Memory == nil || info.Memory.LimitBytes != c.want {
			t.Errorf("GOMEMLIMIT=80MiB %v: info memory %+v, want limit %d", c.flag, info.Memory, c.want)
		}
	}
}

// TestDeviceMemoryLimitBadInput: a limit that cannot be understood or is
// too small is bad input (exit 2, the flag named), before anything is
// created.
func TestDeviceMemoryLimitBadInput(t *testing.T) {
	for _, v := range []string{"lots", "12XB", "-5MiB", "1MiB", "15MiB"} {
		data := filepath.Join(t.TempDir(), "state")
		r := must(t, 2, "device", "--data", data, "--insecure", "--listen", "127.0.0.1:0", "--memory-limit", v)
		if !strings.Contains(r.stderr, "--memory-limit") || !strings.Contains(r.stderr, "invalid memory limit") {
			t.Errorf("--memory-limit %s: %s", v, r.stderr)
		}
		if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("--memory-limit %s: the data directory was created: %v", v, err)
		}
	}
}
