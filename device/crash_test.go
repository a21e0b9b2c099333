//go:build unix

package device_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/internal/testwait"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/store"
	"github.com/tinycontainer/tinycontainer/store/boltstore"
	"github.com/tinycontainer/tinycontainer/trust"
)

// Environment of the crash child: the state directory and the directory of
// the key files (keys are random per process, so they travel as files).
const (
	crashDirEnv  = "TC_CRASH_CHILD_DIR"
	crashKeysEnv = "TC_CRASH_CHILD_KEYS"
)

// The child cycles through these operations, printing "ack OP ARG" after
// each one the device acknowledged.
var crashCycle = []string{"deploy", "apply", "stop", "start"}

// TestCrashChild is the device process of TestCrashRecovery; it does
// nothing unless started by it.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process of TestCrashRecovery")
	}
	if err := crashChild(t, dir, os.Getenv(crashKeysEnv)); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
}

// crashChild runs a real device on the state in dir and changes it as fast
// as it can until it is killed: upgrades of thermo (whose every activation
// writes kv), live metadata updates, stop and start of blinker.
func crashChild(t *testing.T, dir, keys string) error {
	load := func(name string) (ed25519.PrivateKey, error) {
		return trust.LoadPrivateKey(filepath.Join(keys, name+".key"))
	}
	owner, err := load("owner")
	if err != nil {
		return err
	}
	acme, err := load("acme")
	if err != nil {
		return err
	}
	globex, err := load("globex")
	if err != nil {
		return err
	}
	st, err := boltstore.Open(dir, boltstore.Options{LockTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	// The parent kills this process long before; this only bounds an
	// orphan, and outlasts the parent's guard (a child that ended on its
	// own under load, before its kill, failed the round).
	ctx, cancel := context.WithTimeout(context.Background(), 2*testwait.Guard())
	defer cancel()
	mg, err := device.Open(ctx, device.Config{Options: device.Options{Store: st}, Owner: pub(owner)})
	if err != nil {
		return err
	}
	go mg.Device().Run(ctx)
	cur, err := mg.Status(ctx, "thermo")
	if err != nil {
		return err
	}
	fmt.Println("ready")
	m, code := example(t, "thermo")
	v := cur.Version
	for i := 0; ctx.Err() == nil; i++ {
		op := crashCycle[i%len(crashCycle)]
		var arg string
		switch op {
		case "deploy":
			v++
			im := variant(m, func(m *meta.Manifest) { m.Version = v; m.Schedule.Period = 50 * time.Millisecond })
			if _, err := mg.Deploy(ctx, pack(t, im, code, acme)); err != nil {
				return fmt.Errorf("deploy v%d: %w", v, err)
			}
			arg = strconv.FormatUint(v, 10)
		case "apply":
			v++
			am := variant(m, func(m *meta.Manifest) {
				m.Version = v
				m.Schedule.Period, m.Schedule.Budget = 5*time.Millisecond, 2*time.Millisecond
			})
			if _, err := mg.Exec(ctx, signCmd(t, owner, device.VerbMetaApply, "thermo", manifestJSON(t, am))); err != nil {
				return fmt.Errorf("apply v%d: %w", v, err)
			}
			arg = strconv.FormatUint(v, 10)
		case "stop", "start":
			if _, err := mg.Exec(ctx, signCmd(t, globex, op, "blinker", nil)); err != nil {
				return fmt.Errorf("%s blinker: %w", op, err)
			}
			arg = map[string]string{"stop": mgmt.StateStopped, "start": mgmt.StateRunning}[op]
		}
		// A failed write means the parent is gone.
		if _, err := fmt.Printf("ack %s %s\n", op, arg); err != nil {
			return err
		}
	}
	return nil
}

// crashExpect is what the state must show after a kill.
type crashExpect struct {
	version uint64 // thermo's version: at least this
	exact   bool   // exactly version (no thermo change was in flight)
	blinker string // blinker's state
	alt     string // another state blinker may be in (an op was in flight), or ""
}

// TestCrashRecovery kills a busy device with SIGKILL at random moments and
// checks after each kill that the state directory holds every acknowledged
// change, nothing half-written, and that the device starts from it with
// every container in its last state.
func TestCrashRecovery(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("inside the crash child")
	}
	rounds := 20
	if testing.Short() {
		rounds = 5
	}
	dir, keys := t.TempDir(), t.TempDir()
	for name, k := range map[string]ed25519.PrivateKey{"owner": ownerKey, "acme": acmeKey, "globex": globexKey} {
		if err := trust.WriteKeyPair(filepath.Join(keys, name), k); err != nil {
			t.Fatal(err)
		}
	}
	td := openDevice(t, dir, device.Config{Owner: pub(ownerKey)})
	td.addTenants()
	td.deployThermo()
	bm, bcode := example(t, "blinker")
	td.mustDeploy(pack(t, bm, bcode, globexKey))
	td.close()

	exp := crashExpect{version: 1, exact: true, blinker: mgmt.StateRunning}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	var acks, kvSeen, afterAck int
	for round := range rounds {
		// Now and then kill early, while the device may still be restoring;
		// in every other round, the delay runs from the first acknowledged
		// operation, so the child has worked whatever the machine's load.
		early := round%5 == 4
		arm := "ready"
		switch {
		case early:
			arm = ""
		case round%2 == 0:
			arm, afterAck = "ack", afterAck+1
		}
		delay := time.Duration(rng.Int64N(int64(250 * time.Millisecond)))
		lines := runCrashChild(t, dir, keys, arm, delay)
		exp = expectAfter(t, exp, lines)
		for _, l := range lines {
			if strings.HasPrefix(l, "ack ") {
				acks++
			}
		}
		kv, found := checkCrashState(t, dir, exp)
		if kv {
			kvSeen++
		}
		if t.Failed() {
			t.Fatalf("round %d (killed %v after %s): child printed %q", round, delay, map[string]string{"": "start", "ready": "ready", "ack": "the first ack"}[arm], lines)
		}
		exp = found // regression: an in-flight change that landed made the next round's exact check fail
	}
	t.Logf("%d rounds, %d acknowledged operations, kv present after %d kills", rounds, acks, kvSeen)
	if acks < afterAck {
		t.Errorf("only %d operations acknowledged in %d rounds that waited for one: the child hardly worked", acks, afterAck)
	}
	if kvSeen == 0 {
		t.Error("thermo's kv data never reached the store")
	}
}

// runCrashChild starts the device child and kills it with SIGKILL delay
// after it printed a line starting with arm ("ready", "ack"), or delay after
// its start when arm is ""; it returns what the child printed.
func runCrashChild(t *testing.T, dir, keys string, arm string, delay time.Duration) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashKeysEnv+"="+keys)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kill := func() { _ = cmd.Process.Signal(syscall.SIGKILL) }
	// A child that hangs is killed anyway (a hang guard, not a verdict:
	// it was 20 s, and a loaded machine may take that long to start a
	// child built with -race).
	guard := time.AfterFunc(testwait.Guard(), kill)
	defer guard.Stop()
	var timer *time.Timer
	if arm == "" {
		timer = time.AfterFunc(delay, kill)
	}
	var lines []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		l := sc.Text()
		lines = append(lines, l)
		if timer == nil && strings.HasPrefix(l, arm) {
			timer = time.AfterFunc(delay, kill)
		}
	}
	err = cmd.Wait()
	if timer != nil {
		timer.Stop()
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("crash child did not die by SIGKILL: %v\nstdout: %q\nstderr: %s", err, lines, stderr.Bytes())
	}
	return lines
}

// expectAfter derives what the state must show from what it showed before
// the child ran (prev) and the operations the child acknowledged.
func expectAfter(t *testing.T, prev crashExpect, lines []string) crashExpect {
	t.Helper()
	exp := crashExpect{version: prev.version, blinker: prev.blinker, exact: true}
	ready := false
	next := 0 // index in crashCycle of the operation in flight
	for _, l := range lines {
		if l == "ready" {
			ready = true
			continue
		}
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != "ack" || crashCycle[next] != f[1] {
			t.Fatalf("unexpected line %q from the crash child (want ack %s)", l, crashCycle[next])
		}
		switch f[1] {
		case "deploy", "apply":
			v, err := strconv.ParseUint(f[2], 10, 64)
			if err != nil || v <= exp.version {
				t.Fatalf("acknowledged version %q does not follow %d", f[2], exp.version)
			}
			exp.version = v
		default:
			exp.blinker = f[2]
		}
		next = (next + 1) % len(crashCycle)
	}
	if !ready {
		// Killed before it began to change anything.
		return exp
	}
	switch crashCycle[next] {
	case "deploy", "apply":
		exp.exact = false
	case "stop":
		exp.alt = mgmt.StateStopped
	case "start":
		exp.alt = mgmt.StateRunning
	}
	return exp
}

// checkCrashState checks the state directory after a kill and reports
// whether thermo's kv reading is there.
// It returns what it found, so the next round expects from there: a change
// that was in flight at a kill may or may not have landed, and whichever
// it was is the state the next child starts from.
func checkCrashState(t *testing.T, dir string, exp crashExpect) (kv bool, found crashExpect) {
	t.Helper()
	st, err := boltstore.Open(dir, boltstore.Options{LockTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("store does not open after a kill: %v", err)
	}
	defer st.Close()
	recs, err := st.ListContainers()
	if err != nil || len(recs) != 2 || recs[0].Name != "blinker" || recs[1].Name != "thermo" {
		t.Fatalf("containers after a kill: %d records, %v", len(recs), err)
	}
	states := map[string]string{}
	versions := map[string]uint64{}
	for _, rec := range recs {
		img, err := trust.OpenImage(rec.Image)
		if err != nil {
			t.Fatalf("%s: stored image: %v", rec.Name, err)
		}
		im, err := meta.Parse(img.Manifest)
		if err != nil {
			t.Fatalf("%s: manifest inside the stored image: %v", rec.Name, err)
		}
		m, err := meta.Parse(rec.Manifest)
		if err != nil {
			t.Fatalf("%s: stored metadata: %v", rec.Name, err)
		}
		if im.Name != rec.Name || m.Name != rec.Name || im.Tenant != m.Tenant || m.Tenant != rec.Tenant ||
			m.Version != rec.Version || im.Version > m.Version || im.Runtime != m.Runtime {
			t.Fatalf("%s: record, image and metadata disagree: record v%d %s, image %s v%d, metadata %s v%d",
				rec.Name, rec.Version, rec.Tenant, im.Name, im.Version, m.Name, m.Version)
		}
		states[rec.Name], versions[rec.Name] = rec.State, rec.Version
	}
	found = crashExpect{version: versions["thermo"], blinker: states["blinker"], exact: true}
	if v := versions["thermo"]; v < exp.version || (exp.exact && v != exp.version) {
		t.Errorf("thermo is at version %d after a kill; acknowledged %d (exact: %v)", v, exp.version, exp.exact)
	}
	if s := states["thermo"]; s != store.StateRunning {
		t.Errorf("thermo is %s after a kill", s)
	}
	if s := states["blinker"]; s != exp.blinker && s != exp.alt {
		t.Errorf("blinker is %s after a kill, want %s (or %q)", s, exp.blinker, exp.alt)
	}
	if v, err := st.Get("thermo", "last"); err == nil {
		if len(v) != 4 {
			t.Errorf("thermo's kv reading is %d bytes", len(v))
		}
		kv = true
	} else if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("kv after a kill: %v", err)
	}
	if _, err := st.ListAudit(0); err != nil {
		t.Errorf("audit after a kill: %v", err)
	}
	if ts, err := st.ListTenants(); err != nil || len(ts) != 2 {
		t.Errorf("tenants after a kill: %d, %v", len(ts), err)
	}

	// The device starts from it, every container as it was.
	mg, err := device.Open(context.Background(), device.Config{Options: device.Options{Store: st}, Owner: pub(ownerKey)})
	if err != nil {
		t.Fatalf("device does not start after a kill: %v", err)
	}
	defer mg.Close(context.Background())
	for _, c := range mg.Device().List() {
		if c.State != states[c.Name] || c.Version != versions[c.Name] {
			t.Errorf("%s restarted as %s v%d, stored %s v%d", c.Name, c.State, c.Version, states[c.Name], versions[c.Name])
		}
	}
	return kv, found
}
