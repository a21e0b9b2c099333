package cli_test

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

var dashboardURL = regexp.MustCompile(`msg="dashboard ready" url=(\S+)`)

// TestDeviceHTTP starts `device --http` and reads its dashboard's API: the
// same container objects as ps --json.
func TestDeviceHTTP(t *testing.T) {
	dir := t.TempDir()
	d := startDevice(t, "--data", dir, "--insecure", "--http", "127.0.0.1:0")
	var url string
	waitFor(t, "the dashboard's address in the device's log", func() bool {
		m := dashboardURL.FindStringSubmatch(d.logText())
		if m != nil {
			url = m[1]
		}
		return m != nil
	})
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	if code, body := get("api/containers"); code != http.StatusOK || strings.TrimSpace(body) != "[]" {
		t.Fatalf("api/containers: %d %s", code, body)
	}
	r := must(t, 0, "ps", "--json", "--device", d.addr)
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("ps --json: %s", r.stdout)
	}
	code, body := get("api/info")
	var info mgmt.DeviceInfo
	if err := json.Unmarshal([]byte(body), &info); code != http.StatusOK || err != nil || len(info.Runtimes) != 2 {
		t.Fatalf("api/info: %d %v %s", code, err, body)
	}
	if code, _ := get("metrics"); code != http.StatusOK {
		t.Fatalf("metrics: %d", code)
	}
	if code, _ := get(""); code != http.StatusOK {
		t.Fatalf("page: %d", code)
	}
	d.stop(t)
}

func TestDeviceHTTPNeedsAllowRemote(t *testing.T) {
	must(t, 2, "device", "--data", t.TempDir(), "--insecure", "--listen", "127.0.0.1:0", "--http", "0.0.0.0:0")
	must(t, 2, "device", "--data", t.TempDir(), "--insecure", "--listen", "127.0.0.1:0", "--http", "nonsense")
	must(t, 2, "demo", "--http", "0.0.0.0:0")
	must(t, 2, "fleet", "dashboard")
	must(t, 2, "fleet", "dashboard", "--http", "0.0.0.0:0", "--broker", "mqtt://127.0.0.1:1")
	must(t, 2, "fleet", "dashboard", "--http", "nonsense", "--broker", "mqtt://127.0.0.1:1")
}
