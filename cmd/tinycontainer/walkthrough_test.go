package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/cli"
	"github.com/tinycontainer/tinycontainer/internal/testbroker"
)

// readmeBlock returns the first ```sh block of README.md after the line
// that starts with heading.
func readmeBlock(t *testing.T, readme []byte, heading string) string {
	t.Helper()
	s := string(readme)
	i := strings.Index(s, "\n"+heading)
	if i < 0 {
		t.Fatalf("README.md has no paragraph starting %q", heading)
	}
	j := strings.Index(s[i:], "```sh\n")
	if j < 0 {
		t.Fatalf("no sh block after %q", heading)
	}
	body := s[i+j+len("```sh\n"):]
	k := strings.Index(body, "```\n")
	if k < 0 {
		t.Fatalf("unterminated sh block after %q", heading)
	}
	return body[:k]
}

// freeUDP returns a loopback UDP address nothing listens on now.
func freeUDP(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	c.Close()
	return addr
}

// cloneWorkTree copies the files git would put in a clone of the work tree
// (tracked and new, not ignored) to dir and commits them in a new
// repository there.
func cloneWorkTree(t *testing.T, root, dir string) {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Skipf("git ls-files: %v (the walkthrough test needs git and a git work tree)", err)
	}
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		b, err := os.ReadFile(filepath.Join(root, f))
		if os.IsNotExist(err) {
			continue // deleted in the work tree, not yet in the index
		}
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"init", "-q"}, {"add", "-A"},
		{"-c", "user.name=walkthrough", "-c", "user.email=walkthrough@example.org", "commit", "-q", "-m", "clone"},
	} {
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
}

// readmeEnv is the environment of the README's commands: this one, with
// -trimpath added to GOFLAGS. The walkthrough's `go build` runs in a new
// copy of the tree each time; without -trimpath the compiled packages record
// that directory, so nothing came from the build cache and every run (of
// both tests) compiled the whole command again, minutes on a busy machine.
// With it, the build is the same in any directory and is cached.
// -pgo=off too: with the command's profile every package, the standard
// library's included, is compiled again whenever the profile is remade
// (160 s of a 914 s run of the suite under two busy loops, the first after
// a new profile), and what the walkthrough checks is that its commands
// work, not how fast the binary is.
func readmeEnv() []string {
	return append(os.Environ(), "GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -trimpath -pgo=off"))
}

// TestREADMEWalkthrough runs the README's managed-device walkthrough as
// written, with bash, in a copy of the work tree, against a real device
// process (on a free port given by TINYCONTAINER_DEVICE), and checks that
// every step worked and that it leaves nothing for git to commit. Issue 13:
// it used a manifest it never created, and left keys and state unignored.
func TestREADMEWalkthrough(t *testing.T) {
	readmeTest(t, "builds the command and runs a device")
	runREADME(t, "the walkthrough", []string{"A managed device with signed images"},
		[]string{"TINYCONTAINER_DEVICE=" + freeUDP(t)},
		"wrote owner.key", "wrote acme.key", "wrote acme.grant: tenant acme",
		"added tenant acme", "packed thermo v1 (tenant acme", "deployed thermo v1 (tenant acme): running",
		"thermo: temperature", `"name": "thermo"`, "applied metadata v2 to thermo", "thermo  acme")
}

// readmeTest begins a test that runs README sections: skipped (why) in
// -short, and without bash, git or go.
func readmeTest(t *testing.T, why string) {
	t.Helper()
	if testing.Short() {
		t.Skip(why + ": not in -short")
	}
	for _, tool := range []string{"bash", "git", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: %v", tool, err)
		}
	}
}

// runREADME runs the README's sh blocks after headings, in order, as
// written, with bash -e, in a copy of the work tree, with env added to
// readmeEnv; what names them in failures. They must succeed, print each of
// want, and leave nothing for git to commit.
func runREADME(t *testing.T, what string, headings, env []string, want ...string) {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var script string
	for _, h := range headings {
		script += readmeBlock(t, readme, h)
	}
	dir := t.TempDir()
	cloneWorkTree(t, root, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // a hang guard, not a verdict
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(readmeEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s failed: %v\nstdout:\n%s\nstderr:\n%s", what, err, stdout.String(), stderr.String())
	}
	for _, w := range want {
		if !strings.Contains(stdout.String(), w) {
			t.Errorf("%s's output lacks %q:\n%s\nstderr:\n%s", what, w, stdout.String(), stderr.String())
		}
	}
	out, err := exec.Command("git", "-C", dir, "status", "--porcelain").Output()
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 0 {
		t.Errorf("%s leaves files git would commit (.gitignore misses them):\n%s", what, out)
	}
}

// TestUserDocsStayInTheRepository: the README linked ../shared/SPEC.md and
// help texts cited "SPEC section N", outside a clone (issue 13). The user
// guide lives in docs/ and the help points there.
func TestUserDocsStayInTheRepository(t *testing.T) {
	root := filepath.Join("..", "..")
	files := []string{filepath.Join(root, "README.md")}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".md") && !strings.Contains(p, string(filepath.Separator)+"notes"+string(filepath.Separator)) {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("shared/SPEC")) || bytes.Contains(b, []byte("SPEC section")) {
			t.Errorf("%s points outside the repository (shared/SPEC.md)", f)
		}
	}
	for _, page := range []string{"README.md", "getting-started.md", "manifest.md", "abi.md", "cli.md", "management.md", "endpoints/README.md"} {
		if _, err := os.Stat(filepath.Join(root, "docs", page)); err != nil {
			t.Errorf("the user guide lacks docs/%s: %v", page, err)
		}
	}
	var out, errb bytes.Buffer
	if code := cli.Main([]string{"--help"}, &out, &errb); code != 0 {
		t.Fatalf("--help: exit %d\n%s", code, errb.String())
	}
	if !strings.Contains(out.String(), "docs/README.md") || strings.Contains(out.String(), "SPEC") {
		t.Errorf("--help does not point to the user guide:\n%s", out.String())
	}
}

// TestREADMEFleet runs the README's fleet section as written, after the
// managed-device walkthrough that makes its keys, grant and image, against
// a real mosquitto (on a free port given by TINYCONTAINER_BROKER).
func TestREADMEFleet(t *testing.T) {
	readmeTest(t, "builds the command and runs a simulated fleet")
	br := testbroker.Start(t)
	runREADME(t, "the fleet section", []string{"A managed device with signed images", "Many devices through an MQTT broker"},
		[]string{"TINYCONTAINER_DEVICE=" + freeUDP(t), "TINYCONTAINER_BROKER=" + br.URL()},
		"20 simulated devices", "accepted", "thermo-1\n", "completed: 20 SUCCEEDED",
		"sim-0019             thermo", "state:   COMPLETED", "20 simulated devices stopped")
}
