package coap

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tinycontainer/tinycontainer/internal/testwait"
	"github.com/tinycontainer/tinycontainer/mgmt"
)

const coapClientBin = "/usr/bin/coap-client-notls"

// libcoapGet runs libcoap's command-line client against uri and returns
// what it printed.
func libcoapGet(t *testing.T, uri string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testwait.Guard())
	defer cancel()
	cmd := exec.CommandContext(ctx, coapClientBin, append(append([]string{"-m", "get", "-B", "10"}, args...), uri)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", coapClientBin, uri, err, out)
	}
	return string(out)
}

// TestLibcoapClient checks that a standard CoAP client discovers the
// resources and reads the container list and a status as JSON.
func TestLibcoapClient(t *testing.T) {
	if _, err := os.Stat(coapClientBin); err != nil {
		if os.Getenv("TC_REQUIRE_COAP_CLIENT") == "1" {
			t.Fatalf("%s is required (TC_REQUIRE_COAP_CLIENT=1): %v", coapClientBin, err)
		}
		t.Skipf("%s not installed (Debian package libcoap3-bin): %v", coapClientBin, err)
	}
	s, dev := startServer(t, ServerOptions{})
	base := "coap://" + s.Addr().String()

	core := libcoapGet(t, base+"/.well-known/core")
	t.Logf("discovery: %s", core)
	links, err := parseLinks([]byte(strings.TrimSpace(core)))
	if err != nil {
		t.Fatalf("discovery answer %q: %v", core, err)
	}
	found := map[string]bool{}
	for _, l := range links {
		found[l.Target] = l.Attrs["ct"] == "50"
	}
	for _, p := range []string{"/d", "/c", "/c/thermo", "/c/thermo/logs", "/deploy"} {
		if !found[p] {
			t.Errorf("libcoap does not discover %s with ct=50 in %q", p, core)
		}
	}

	// Ask for JSON explicitly (Accept 50), as a picky client would.
	var list []mgmt.ContainerStatus
	if out := libcoapGet(t, base+"/c", "-A", "50"); json.Unmarshal([]byte(out), &list) != nil || len(list) != 2 {
		t.Fatalf("GET /c through libcoap: %q", out)
	}
	wantInfo, _ := dev.Info(context.Background())
	var info mgmt.DeviceInfo
	if out := libcoapGet(t, base+"/d"); json.Unmarshal([]byte(out), &info) != nil || !reflect.DeepEqual(info, wantInfo) {
		t.Fatalf("GET /d through libcoap: %q, want %+v", out, wantInfo)
	}
	want, _ := dev.Status(context.Background(), "thermo")
	var st mgmt.ContainerStatus
	if out := libcoapGet(t, base+"/c/thermo"); json.Unmarshal([]byte(out), &st) != nil || st != want {
		t.Fatalf("GET /c/thermo through libcoap: %q, want %+v", out, want)
	}
	// A list larger than one block comes back whole through Block2.
	dev.locked(func() {
		for _, n := range []string{"a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8"} {
			dev.containers[n] = mgmt.ContainerStatus{Name: n, Tenant: strings.Repeat("x", 100)}
		}
	})
	if out := libcoapGet(t, base+"/c"); json.Unmarshal([]byte(out), &list) != nil || len(list) != 10 || len(out) < 1024 {
		t.Fatalf("GET /c (block-wise) through libcoap: %d bytes, %d containers", len(out), len(list))
	}

	// A block-wise upload from libcoap.
	img := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(img, append([]byte("fromlibcoap\n"), bytes.Repeat([]byte("z"), 20<<10)...), 0o600); err != nil {
		t.Fatal(err)
	}
	out := libcoapGet(t, base+"/deploy", "-m", "post", "-b", "1024", "-t", "42", "-f", img)
	if json.Unmarshal([]byte(out), &st) != nil || st.Name != "fromlibcoap" {
		t.Fatalf("POST /deploy through libcoap: %q", out)
	}
}

// TestLibcoapUploadCap checks that libcoap, too, gets 4.13 for an upload
// above the cap.
func TestLibcoapUploadCap(t *testing.T) {
	if _, err := os.Stat(coapClientBin); err != nil {
		if os.Getenv("TC_REQUIRE_COAP_CLIENT") == "1" {
			t.Fatalf("%s is required (TC_REQUIRE_COAP_CLIENT=1): %v", coapClientBin, err)
		}
		t.Skipf("%s not installed (Debian package libcoap3-bin): %v", coapClientBin, err)
	}
	s, dev := startServer(t, ServerOptions{MaxImage: 16 << 10})
	img := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(img, append([]byte("huge\n"), make([]byte, 64<<10)...), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testwait.Guard())
	defer cancel()
	out, _ := exec.CommandContext(ctx, coapClientBin, "-m", "post", "-B", "10", "-b", "1024", "-f", img, "coap://"+s.Addr().String()+"/deploy").CombinedOutput()
	if !strings.Contains(string(out), "4.13") {
		t.Fatalf("libcoap upload above the cap: %q, want a 4.13", out)
	}
	dev.locked(func() {
		if dev.deploys != 0 {
			t.Error("the device saw an image above the cap")
		}
	})
}
