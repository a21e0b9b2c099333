package cli_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/fleet/doc"
	"github.com/tinycontainer/tinycontainer/internal/testbroker"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/trust"
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
		t.Fatalf("after SIGTERM: %s\n%s", line, d.logText())
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

// A `device --fleet` process killed (SIGKILL) while it takes an update
// comes back on one of the two versions, never neither, and then
// converges to the desired one.
func TestDeviceFleetKilledMidUpdate(t *testing.T) {
	dir, p := deviceTest(t)
	br := testbroker.Start(t)
	wasm, err := os.ReadFile(filepath.Join("..", "examples", "blinker", "blinker.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p("blinker.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	img := map[uint64][]byte{}
	for v := uint64(1); v <= 4; v++ {
		mf := manifestVariant(t, dir, "blinker", func(m *meta.Manifest) { m.Version = v })
		out := p(fmt.Sprintf("blinker-v%d.img", v))
		must(t, 0, "pack", "--manifest", mf, "--key", p("globex.key"), "-o", out)
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		img[v] = b
	}
	owner, err := trust.LoadPrivateKey(p("owner.key"))
	if err != nil {
		t.Fatal(err)
	}
	globex, err := trust.LoadPrivateKey(p("globex.key"))
	if err != nil {
		t.Fatal(err)
	}
	inner, err := os.ReadFile(p("globex.grant"))
	if err != nil {
		t.Fatal(err)
	}
	devs := []string{"k-1"}
	g, err := doc.SignGrant(doc.Grant{Tenant: "globex", Devices: devs, Seq: 1, Grant: inner}, owner)
	if err != nil {
		t.Fatal(err)
	}
	pub := func(topic string, b []byte) { br.Pub(t, string(b), "-t", topic, "-r", "-q", "1", "-s") }
	want := func(seq, v uint64) {
		d, err := doc.SignDesired(doc.Desired{Tenant: "globex", Devices: devs, Seq: seq, Containers: []doc.DesiredContainer{{
			Name: "blinker", Version: v, Digest: doc.Digest(img[v]), Size: len(img[v]), Health: doc.Duration(50 * time.Millisecond)}}}, globex)
		if err != nil {
			t.Fatal(err)
		}
		pub(doc.ImageTopic("globex", doc.Digest(img[v])), img[v])
		pub(doc.DesiredTopic("k-1", "globex"), d)
	}
	pub(doc.GrantTopic("k-1", "globex"), g)
	want(1, 1)
	sub := br.Sub(t, doc.ReportedTopic("k-1"))
	// next reads reported states until cond holds for the blinker.
	next := func(what string, cond func(c doc.ContainerReport, found bool) bool) {
		t.Helper()
		for {
			line := sub.Next(t)
			_, payload, _ := strings.Cut(line, " ")
			r, err := doc.DecodeReported([]byte(payload))
			if err != nil {
				t.Fatalf("reported: %v: %s", err, line)
			}
			var c doc.ContainerReport
			found := false
			for _, x := range r.Containers {
				if x.Name == "blinker" {
					c, found = x, true
				}
			}
			if cond(c, found) {
				return
			}
		}
	}
	args := []string{"--data", p("state"), "--owner", p("owner.pub"), "--fleet", br.URL(), "--id", "k-1"}
	d := startDevice(t, args...)
	next("v1 healthy", func(c doc.ContainerReport, ok bool) bool {
		return ok && c.Version == 1 && c.Health == doc.HealthHealthy
	})
	for v := uint64(2); v <= 4; v++ {
		want(v, v)
		// Kill it at once or once it reports the update pending.
		if v%2 == 0 {
			next("pending", func(c doc.ContainerReport, ok bool) bool { return ok && c.Version == v })
		}
		_ = d.cmd.Process.Kill()
		_ = d.cmd.Wait()
		d = startDevice(t, args...)
		first := true
		next(fmt.Sprintf("v%d healthy after the kill", v), func(c doc.ContainerReport, ok bool) bool {
			if first {
				first = false
				if !ok || (c.Version != v-1 && c.Version != v) {
					t.Fatalf("after the kill: container %v, version %d (want %d or %d)", ok, c.Version, v-1, v)
				}
			}
			return ok && c.Version == v && c.Health == doc.HealthHealthy
		})
	}
	d.stop(t)
}
