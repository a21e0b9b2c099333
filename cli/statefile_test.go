package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinycontainer/tinycontainer/internal/testwait"
)

// runDevice runs `tinycontainer device ARGS` in a child process until it
// exits by itself (a hang guard kills it) and returns its exit code and
// output.
func runDevice(t *testing.T, args ...string) (int, string) {
	t.Helper()
	args = append([]string{"device", "--listen", "127.0.0.1:0"}, args...)
	a, _ := json.Marshal(args)
	ctx, cancel := context.WithTimeout(context.Background(), testwait.Guard())
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestDeviceChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), deviceArgsEnv+"="+string(a))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("device %v did not exit within %v (a hang guard):\n%s", args, testwait.Guard(), out.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Skipf("cannot start a device child: %v", err)
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// junkOver writes n bytes of junk at off in file.
func junkOver(t *testing.T, file string, off int64, n int) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := bytes.Repeat([]byte{0xA5, 0x17, 0x3C, 0xE9}, n/4)
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// Regression (issue 13): a damaged state.db made the device hang in a
// bbolt lock and ignore SIGTERM, and a refused one gave no hint how to
// recover. The device refuses a file it cannot read safely at once (exit 1,
// naming the file and how to move it aside), opens one whose first page (a
// meta page, what a write torn by a power cut damages) is junk at the
// transaction the other records with a warning, and when the file is
// damaged under it keeps running, fails the writes, and stops on SIGTERM.
func TestCorruptStateDBDevice(t *testing.T) {
	if os.Getenv(deviceArgsEnv) != "" {
		t.Skip("inside the device child")
	}
	t.Parallel()
	dir := t.TempDir()
	keys(t, dir)
	img := filepath.Join(dir, "thermo.img")
	must(t, 0, "pack", "--manifest", example("thermo"), "--key", filepath.Join(dir, "acme.key"), "-o", img)

	// A good state directory with a container in it.
	good := filepath.Join(dir, "good")
	d := startDevice(t, "--data", good, "--insecure")
	must(t, 0, "deploy", "--device", d.addr, img)
	d.stop(t)
	orig, err := os.ReadFile(filepath.Join(good, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	variant := func(name string, edit func(file string)) string {
		sd := filepath.Join(dir, name)
		if err := os.MkdirAll(sd, 0o700); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(sd, "state.db")
		if err := os.WriteFile(file, orig, 0o600); err != nil {
			t.Fatal(err)
		}
		edit(file)
		return sd
	}
	truncate := func(n int64) func(string) {
		return func(f string) {
			if err := os.Truncate(f, n); err != nil {
				t.Fatal(err)
			}
		}
	}
	refused := map[string]string{
		"meta-pages": variant("meta-pages", func(f string) { junkOver(t, f, 0, 8192) }),
		"empty":      variant("empty", truncate(0)),
		"short":      variant("short", truncate(6000)),
		"tiny":       variant("tiny", truncate(100)),
	}
	for name, sd := range refused {
		code, out := runDevice(t, "--data", sd, "--insecure")
		file := filepath.Join(sd, "state.db")
		if code != 1 || !strings.Contains(out, file) || !strings.Contains(out, "mv "+file+" "+file+".corrupt") {
			t.Errorf("%s: exit %d, want 1 with the file named and how to move it aside:\n%s", name, code, out)
		}
	}

	// The first page is junk: the device starts at meta page 1's
	// transaction, says so, and still runs its container.
	sd := variant("first-page", func(f string) { junkOver(t, f, 0, 4096) })
	d = startDevice(t, "--data", sd, "--insecure")
	if log := d.logText(); !strings.Contains(log, "state recovered from a damaged file") || !strings.Contains(log, filepath.Join(sd, "state.db")) {
		t.Errorf("no warning naming the damaged file:\n%s", log)
	}
	if r := must(t, 0, "ps", "--device", d.addr); !strings.Contains(r.stdout, "thermo") {
		t.Errorf("ps after recovery: %s", r.stdout)
	}
	d.stop(t)

	// Damaged while the device runs (its container stopped, so that no
	// write of its own repairs a meta page first): writes fail, nothing
	// hangs, SIGTERM stops it, and the next start refuses the file.
	sd = variant("while-running", func(string) {})
	d = startDevice(t, "--data", sd, "--insecure")
	key := filepath.Join(dir, "acme.key")
	must(t, 0, "stop", "--device", d.addr, "--key", key, "thermo")
	junkOver(t, filepath.Join(sd, "state.db"), 0, 8192)
	for range 2 {
		if r := tc("start", "--device", d.addr, "--key", key, "thermo"); r.code != 1 || !strings.Contains(r.stderr, "corrupt") {
			t.Errorf("start on a damaged state.db: %s", r)
		}
	}
	d.stop(t)
	if code, out := runDevice(t, "--data", sd, "--insecure"); code != 1 || !strings.Contains(out, ".corrupt") {
		t.Errorf("restart on the damaged file: exit %d:\n%s", code, out)
	}
}
