package device_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/device/devicetest"
	"github.com/tinycontainer/tinycontainer/internal/testgrant"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/store"
	"github.com/tinycontainer/tinycontainer/store/boltstore"
	"github.com/tinycontainer/tinycontainer/store/memstore"
	"github.com/tinycontainer/tinycontainer/trust"
)

// Keys of the tests: generated once, they are only test identities.
var (
	ownerKey  = mustKey()
	acmeKey   = mustKey()
	globexKey = mustKey()
	otherKey  = mustKey() // known to nobody
)

func mustKey() ed25519.PrivateKey {
	_, k, err := trust.GenerateKey()
	if err != nil {
		panic(err)
	}
	return k
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// testDevice is a managed device on a bbolt store in a directory that
// outlives it, so a test can close and reopen it.
type testDevice struct {
	t      *testing.T
	dir    string
	cfg    device.Config
	st     *boltstore.Store
	mg     *device.Manager
	cancel context.CancelFunc
	done   chan struct{}
}

// openDevice opens (or reopens) the device in dir with cfg (Store is set
// here) and runs its scheduler until the test ends or close is called.
func openDevice(t *testing.T, dir string, cfg device.Config) *testDevice {
	t.Helper()
	st, err := boltstore.Open(dir, boltstore.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	cfg.Store = st
	ctx, cancel := context.WithCancel(context.Background())
	mg, err := device.Open(ctx, cfg)
	if err != nil {
		cancel()
		st.Close()
		t.Fatalf("device.Open: %v", err)
	}
	td := &testDevice{t: t, dir: dir, cfg: cfg, st: st, mg: mg, cancel: cancel, done: make(chan struct{})}
	go func() { mg.Device().Run(ctx); close(td.done) }()
	t.Cleanup(td.close)
	return td
}

// newDevice opens a fresh device owned by ownerKey.
func newDevice(t *testing.T) *testDevice {
	return openDevice(t, t.TempDir(), device.Config{Owner: pub(ownerKey)})
}

func (td *testDevice) close() {
	if td.mg == nil {
		return
	}
	td.cancel()
	<-td.done
	if err := td.mg.Close(context.Background()); err != nil {
		td.t.Errorf("close device: %v", err)
	}
	if err := td.st.Close(); err != nil {
		td.t.Errorf("close store: %v", err)
	}
	td.mg = nil
}

// reopen closes the device and its store and opens them again from disk.
func (td *testDevice) reopen() *testDevice {
	td.t.Helper()
	td.close()
	cfg := td.cfg
	cfg.Store = nil
	return openDevice(td.t, td.dir, cfg)
}

func (td *testDevice) deploy(img []byte) (mgmt.ContainerStatus, error) {
	return td.mg.Deploy(context.Background(), img)
}

func (td *testDevice) mustDeploy(img []byte) mgmt.ContainerStatus {
	td.t.Helper()
	st, err := td.deploy(img)
	if err != nil {
		td.t.Fatalf("deploy: %v", err)
	}
	return st
}

func (td *testDevice) exec(key ed25519.PrivateKey, verb, target string, body []byte) ([]byte, error) {
	return td.mg.Exec(context.Background(), signCmd(td.t, key, verb, target, body))
}

func (td *testDevice) mustExec(key ed25519.PrivateKey, verb, target string, body []byte) []byte {
	td.t.Helper()
	res, err := td.exec(key, verb, target, body)
	if err != nil {
		td.t.Fatalf("%s %s: %v", verb, target, err)
	}
	return res
}

func (td *testDevice) status(name string) mgmt.ContainerStatus {
	td.t.Helper()
	st, err := td.mg.Status(context.Background(), name)
	if err != nil {
		td.t.Fatalf("status %s: %v", name, err)
	}
	return st
}

// addTenants installs the grants of acme and globex.
func (td *testDevice) addTenants() {
	td.t.Helper()
	td.mustExec(ownerKey, device.VerbTenantAdd, "", acmeGrant(td.t))
	td.mustExec(ownerKey, device.VerbTenantAdd, "", globexGrant(td.t))
}

// waitFor polls cond until it holds (a hang guard of minutes).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	devicetest.WaitFor(t, what, cond)
}

func signCmd(t testing.TB, key ed25519.PrivateKey, verb, target string, body []byte) []byte {
	t.Helper()
	b, err := trust.SignCommand(trust.Command{Verb: verb, Target: target, Body: body, Counter: trust.NewCounter()}, key)
	if err != nil {
		t.Fatalf("sign command: %v", err)
	}
	return b
}

// example loads examples/<name>/<name>.yaml and its code.
func example(t testing.TB, name string) (*meta.Manifest, []byte) {
	t.Helper()
	dir := filepath.Join("..", "examples", name)
	y, err := os.ReadFile(filepath.Join(dir, name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := meta.Parse(y)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	code, err := os.ReadFile(filepath.Join(dir, m.Code))
	if err != nil {
		t.Fatal(err)
	}
	return m, code
}

// variant returns a copy of m changed by edit.
func variant(m *meta.Manifest, edit func(*meta.Manifest)) *meta.Manifest {
	c := m.Clone()
	edit(c)
	return c
}

func manifestJSON(t testing.TB, m *meta.Manifest) []byte {
	t.Helper()
	if err := m.Validate(); err != nil {
		t.Fatalf("test manifest: %v", err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pack(t testing.TB, m *meta.Manifest, code []byte, key ed25519.PrivateKey) []byte {
	t.Helper()
	img, err := trust.Pack(manifestJSON(t, m), code, key)
	if err != nil {
		t.Fatalf("pack: %v", err)
	}
	return img
}

// testCeiling is the ceiling of the tests' grants (testgrant.Ceiling).
func testCeiling(tenant string) meta.Ceiling { return testgrant.Ceiling(tenant) }

func grant(t testing.TB, tenant string, key ed25519.PrivateKey, allow ...string) []byte {
	t.Helper()
	return signGrant(t, testCeiling(tenant), key, allow...)
}

// signGrant is the owner's grant of c, with the endpoint rules allow added
// ("sensor/+:read", ...), to key's tenant.
func signGrant(t testing.TB, c meta.Ceiling, key ed25519.PrivateKey, allow ...string) []byte {
	t.Helper()
	return testgrant.Sign(t, c, pub(key), ownerKey, allow...)
}

func acmeGrant(t testing.TB) []byte {
	return grant(t, "acme", acmeKey, "sensor/+:read", "log:write", "kv:get,put", "msg/acme/#:publish", "event:read", "actuator/led1:write")
}

func globexGrant(t testing.TB) []byte {
	return grant(t, "globex", globexKey, "actuator/led0:read,write", "log:write", "msg/globex/#:publish")
}

func wantErr(t *testing.T, what string, err, class error) {
	t.Helper()
	if !errors.Is(err, class) {
		t.Fatalf("%s: got error %v, want %v", what, err, class)
	}
}

// deployThermo installs acme's thermo v1, signed by acme.
func (td *testDevice) deployThermo() (*meta.Manifest, []byte) {
	td.t.Helper()
	m, code := example(td.t, "thermo")
	if st := td.mustDeploy(pack(td.t, m, code, acmeKey)); st.State != mgmt.StateRunning || st.Version != 1 || st.Tenant != "acme" {
		td.t.Fatalf("deployed thermo: %+v", st)
	}
	return m, code
}

func TestDeploySignedImagesRun(t *testing.T) {
	td := newDevice(t)
	td.addTenants()
	td.deployThermo()
	bm, bcode := example(t, "blinker")
	if st := td.mustDeploy(pack(t, bm, bcode, globexKey)); st.State != mgmt.StateRunning || st.Tenant != "globex" || st.Runtime != "wasm" {
		t.Fatalf("deployed blinker: %+v", st)
	}
	waitFor(t, "both containers to run and thermo to store a reading", func() bool {
		v, err := td.st.Get("thermo", "last")
		return td.status("thermo").Activations >= 2 && td.status("blinker").Activations >= 2 && err == nil && len(v) == 4
	})
	list, err := td.mg.List(context.Background())
	if err != nil || len(list) != 2 || list[0].Name != "blinker" || list[1].Name != "thermo" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	for _, c := range list {
		if c.State != mgmt.StateRunning || c.Faults != 0 || c.DeniedCalls != 0 {
			t.Errorf("%s: %+v", c.Name, c)
		}
	}
	// The owner may deploy for a tenant too.
	lm, lcode := example(t, "listener")
	if st := td.mustDeploy(pack(t, lm, lcode, ownerKey)); st.State != mgmt.StateRunning {
		t.Fatalf("owner-signed listener: %+v", st)
	}
	// What the device keeps is what was deployed.
	rec, err := td.st.GetContainer("thermo")
	if err != nil || rec.Version != 1 || rec.Tenant != "acme" || rec.State != store.StateRunning {
		t.Fatalf("stored thermo: %+v, %v", rec, err)
	}
}

func TestDeployRefused(t *testing.T) {
	td := newDevice(t)
	td.addTenants()
	m, code := example(t, "thermo")
	good := pack(t, m, code, acmeKey)

	initech := variant(m, func(m *meta.Manifest) { m.Tenant = "initech" })
	cases := []struct {
		name  string
		img   []byte
		class error
	}{
		{"unknown tenant, unknown key", pack(t, initech, code, otherKey), mgmt.ErrDenied},
		{"unknown tenant, signed by acme", pack(t, initech, code, acmeKey), mgmt.ErrDenied},
		{"acme's container signed by globex", pack(t, m, code, globexKey), mgmt.ErrDenied},
		{"unknown key", pack(t, m, code, otherKey), mgmt.ErrDenied},
		{"memory beyond the ceiling", pack(t, variant(m, func(m *meta.Manifest) { m.Limits.Memory = 128 * meta.KiB }), code, acmeKey), mgmt.ErrDenied},
		{"storage beyond the ceiling", pack(t, variant(m, func(m *meta.Manifest) { m.Limits.Storage = 8 * meta.KiB }), code, acmeKey), mgmt.ErrDenied},
		{"op not granted", pack(t, variant(m, func(m *meta.Manifest) {
			m.Endpoints = append(m.Endpoints, meta.EndpointRule{Name: "kv", Ops: opSet(t, "delete")})
		}), code, acmeKey), mgmt.ErrDenied},
		{"endpoint not granted", pack(t, variant(m, func(m *meta.Manifest) {
			m.Endpoints = append(m.Endpoints, meta.EndpointRule{Name: "actuator/led0", Ops: opSet(t, "write")})
		}), code, acmeKey), mgmt.ErrDenied},
		{"wildcard wider than granted", pack(t, variant(m, func(m *meta.Manifest) {
			m.Endpoints = append(m.Endpoints, meta.EndpointRule{Name: "msg/#", Ops: opSet(t, "publish")})
		}), code, acmeKey), mgmt.ErrDenied},
		{"budget beyond the ceiling", pack(t, variant(m, func(m *meta.Manifest) { m.Schedule.Budget = 20 * time.Millisecond }), code, acmeKey), mgmt.ErrDenied},
		{"period below the ceiling", pack(t, variant(m, func(m *meta.Manifest) { m.Schedule.Period = 20 * time.Millisecond }), code, acmeKey), mgmt.ErrDenied},
		{"event topic not granted", pack(t, variant(m, func(m *meta.Manifest) {
			m.Schedule.Trigger, m.Schedule.Period, m.Schedule.Topics = meta.Event, 0, []string{"globex/cmd"}
		}), code, acmeKey), mgmt.ErrDenied},
		{"not an image", []byte("hello"), mgmt.ErrInvalid},
		{"empty", nil, mgmt.ErrInvalid},
		{"truncated", good[:len(good)/2], mgmt.ErrInvalid},
		{"code that is not WebAssembly", pack(t, m, []byte("\x00asm junk"), acmeKey), mgmt.ErrInvalid},
		{"manifest that does not validate", mustPackRaw(t, []byte(`{"name":"Thermo"}`), code, acmeKey), mgmt.ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := td.deploy(c.img)
			wantErr(t, c.name, err, c.class)
		})
	}
	// Ceiling errors name the field.
	_, err := td.deploy(cases[4].img)
	if !errors.Is(err, meta.ErrCeiling) || !strings.Contains(err.Error(), "limits.memory") {
		t.Errorf("memory refusal %q should wrap meta.ErrCeiling and name limits.memory", err)
	}
	if list, _ := td.mg.List(context.Background()); len(list) != 0 {
		t.Fatalf("refused images left containers behind: %+v", list)
	}
	if cs, _ := td.st.ListContainers(); len(cs) != 0 {
		t.Fatalf("refused images left records behind: %d", len(cs))
	}
	// After all that, the good image still installs as version 1.
	td.mustDeploy(good)
}

func mustPackRaw(t *testing.T, manifest, code []byte, key ed25519.PrivateKey) []byte {
	t.Helper()
	img, err := trust.Pack(manifest, code, key)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func opSet(t *testing.T, ops ...string) abi.OpSet {
	t.Helper()
	r, err := meta.ParseAllow("x:" + strings.Join(ops, ","))
	if err != nil {
		t.Fatal(err)
	}
	return r.Ops
}

// TestDeployTampered flips bytes all over a signed image: no change may
// ever install, and each is refused as malformed or badly signed.
func TestDeployTampered(t *testing.T) {
	td := newDevice(t)
	td.addTenants()
	m, code := example(t, "thermo")
	img := pack(t, m, code, acmeKey)
	step := max(1, len(img)/97)
	for i := 0; i < len(img); i += step {
		bad := bytes.Clone(img)
		bad[i] ^= 0x41
		if _, err := td.deploy(bad); !errors.Is(err, mgmt.ErrInvalid) && !errors.Is(err, mgmt.ErrDenied) {
			t.Fatalf("image with byte %d flipped: %v", i, err)
		}
	}
	// A longer image (trailing bytes) is refused as well.
	if _, err := td.deploy(append(bytes.Clone(img), 0)); err == nil {
		t.Fatal("image with a trailing byte installed")
	}
	if list, _ := td.mg.List(context.Background()); len(list) != 0 {
		t.Fatalf("a tampered image installed: %+v", list)
	}
	td.mustDeploy(img)
}

func TestRollbackRefused(t *testing.T) {
	td := newDevice(t)
	td.addTenants()
	m, code := example(t, "thermo")
	at := func(v uint64) []byte {
		return pack(t, variant(m, func(m *meta.Manifest) { m.Version = v }), code, acmeKey)
	}
	v2 := at(2)
	td.mustDeploy(v2)
	_, err := td.deploy(v2)
	wantErr(t, "same version again", err, mgmt.ErrConflict)
	_, err = td.deploy(at(1))
	wantErr(t, "older version", err, mgmt.ErrConflict)

	// A live update to v3 moves the floor too.
	td.mustExec(acmeKey, device.VerbMetaApply, "thermo", manifestJSON(t, variant(m, func(m *meta.Manifest) { m.Version = 3 })))
	_, err = td.deploy(at(3))
	wantErr(t, "image of the version applied live", err, mgmt.ErrConflict)

	td.mustExec(acmeKey, device.VerbRemove, "thermo", nil)
	for _, v := range []uint64{1, 2, 3} {
		_, err = td.deploy(at(v))
		wantErr(t, fmt.Sprintf("v%d after rm", v), err, mgmt.ErrConflict)
	}
	// Even the owner cannot roll back.
	_, err = td.deploy(pack(t, m, code, ownerKey))
	wantErr(t, "owner-signed v1 after rm", err, mgmt.ErrConflict)

	if st := td.mustDeploy(at(4)); st.Version != 4 || st.State != mgmt.StateRunning {
		t.Fatalf("v4 after rm: %+v", st)
	}
	// The floor survives a restart.
	td = td.reopen()
	_, err = td.deploy(at(4))
	wantErr(t, "v4 again after restart", err, mgmt.ErrConflict)
}

func TestCommandsRefused(t *testing.T) {
	td := newDevice(t)
	td.addTenants()
	td.deployThermo()
	ctx := context.Background()

	stop := signCmd(t, acmeKey, device.VerbStop, "thermo", nil)
	if _, err := td.mg.Exec(ctx, stop); err != nil {
		t.Fatal(err)
	}
	td.mustExec(acmeKey, device.VerbStart, "thermo", nil)
	_, err := td.mg.Exec(ctx, stop)
	wantErr(t, "replayed stop", err, mgmt.ErrDenied)
	if st := td.status("thermo"); st.State != mgmt.StateRunning {
		t.Fatalf("the replayed stop took effect: %s", st.State)
	}

	// A command counter older than the last accepted one is stale even if
	// it was never seen.
	old, err := trust.SignCommand(trust.Command{Verb: device.VerbStop, Target: "thermo", Counter: 1}, acmeKey)
	if err != nil {
		t.Fatal(err)
	}
	_, err = td.mg.Exec(ctx, old)
	wantErr(t, "stale counter", err, mgmt.ErrDenied)

	for _, verb := range []string{device.VerbStop, device.VerbStart, device.VerbRemove} {
		_, err = td.exec(globexKey, verb, "thermo", nil)
		wantErr(t, "globex "+verb+" on acme's thermo", err, mgmt.ErrDenied)
	}
	m, _ := example(t, "thermo")
	_, err = td.exec(globexKey, device.VerbMetaApply, "thermo", manifestJSON(t, variant(m, func(m *meta.Manifest) { m.Version = 2 })))
	wantErr(t, "globex meta-apply on acme's thermo", err, mgmt.ErrDenied)
	_, err = td.exec(otherKey, device.VerbStop, "thermo", nil)
	wantErr(t, "unknown key", err, mgmt.ErrDenied)
	_, err = td.exec(acmeKey, device.VerbTenantAdd, "", globexGrant(t))
	wantErr(t, "tenant-add by a tenant", err, mgmt.ErrDenied)
	// A grant not signed by the owner.
	fake, err := trust.SignGrant([]byte(`{"tenant":"acme"}`), pub(otherKey), acmeKey)
	if err != nil {
		t.Fatal(err)
	}
	_, err = td.exec(ownerKey, device.VerbTenantAdd, "", fake)
	wantErr(t, "grant signed by a tenant", err, mgmt.ErrDenied)
	_, err = td.exec(acmeKey, "reboot", "thermo", nil)
	wantErr(t, "unknown verb", err, mgmt.ErrInvalid)
	_, err = td.exec(acmeKey, device.VerbStop, "nothere", nil)
	wantErr(t, "unknown container", err, mgmt.ErrNotFound)
	_, err = td.mg.Exec(ctx, []byte("garbage"))
	wantErr(t, "garbage command", err, mgmt.ErrInvalid)
	// A signature made by one key but claiming another's id never passes.
	forged := bytes.Clone(signCmd(t, acmeKey, device.VerbStop, "thermo", nil))
	forged[len(forged)-1] ^= 1
	_, err = td.mg.Exec(ctx, forged)
	wantErr(t, "bad signature", err, mgmt.ErrDenied)

	if st := td.status("thermo"); st.State != mgmt.StateRunning {
		t.Fatalf("a refused command changed thermo: %s", st.State)
	}
	// Refused requests are audited.
	var n int
	for _, e := range td.mg.Device().Audit(0) {
		if e.Endpoint == "mgmt" {
			n++
		}
	}
	if n < 8 {
		t.Errorf("%d refused management requests audited, want at least 8: %+v", n, td.mg.Device().Audit(0))
	}
}

// blinkerToggles is the toggle count of blinker's newest log line.
func (td *testDevice) blinkerToggles() int {
	ls := td.mg.Device().Logs("blinker", 0, 0)
	if len(ls) == 0 {
		return 0
	}
	var n int
	text := ls[len(ls)-1].Text
	if _, err := fmt.Sscanf(text[strings.LastIndexByte(text, ' ')+1:], "%d", &n); err != nil {
		td.t.Fatalf("blinker log %q: %v", text, err)
	}
	return n
}

func TestMetaApplyLive(t *testing.T) {
	td := newDevice(t)
	td.addTenants()
	m, _ := td.deployThermo()
	bm, bcode := example(t, "blinker")
	td.mustDeploy(pack(t, bm, bcode, globexKey))
	waitFor(t, "thermo to store a reading and blinker to toggle twice", func() bool {
		_, err := td.st.Get("thermo", "last")
		return err == nil && td.blinkerToggles() >= 2
	})

	// Revoke thermo's log permission: its handle, opened at the first
	// activation, is refused at the very next call.
	v2 := variant(m, func(m *meta.Manifest) {
		m.Version = 2
		m.Schedule.Period = 50 * time.Millisecond
		m.Endpoints = slicesDelete(m.Endpoints, "log")
	})
	before := td.status("thermo")
	res := td.mustExec(acmeKey, device.VerbMetaApply, "thermo", manifestJSON(t, v2))
	var st mgmt.ContainerStatus
	if err := json.Unmarshal(res, &st); err != nil || st.Version != 2 || st.PeriodUS != 50000 || st.State != mgmt.StateRunning {
		t.Fatalf("meta-apply result %s: %v", res, err)
	}
	waitFor(t, "thermo's log calls to be denied", func() bool {
		s := td.status("thermo")
		return s.DeniedCalls >= 2 && s.Activations >= before.Activations+2
	})
	if s := td.status("thermo"); s.Activations < before.Activations || s.Faults != 0 {
		t.Fatalf("thermo restarted or faulted by the update: before %+v, after %+v", before, s)
	}
	if _, err := td.st.Get("thermo", "last"); err != nil {
		t.Fatalf("kv data lost by the update: %v", err)
	}
	found := false
	for _, e := range td.mg.Device().Audit(0) {
		found = found || (e.Container == "thermo" && e.Endpoint == "log" && e.Op == "write")
	}
	if !found {
		t.Errorf("the denied log write is not audited: %+v", td.mg.Device().Audit(0))
	}

	// blinker keeps its memory: the toggle count goes on from where it was.
	n := td.blinkerToggles()
	td.mustExec(globexKey, device.VerbMetaApply, "blinker", manifestJSON(t, variant(bm, func(m *meta.Manifest) {
		m.Version = 2
		m.Schedule.Period = 60 * time.Millisecond
	})))
	waitFor(t, "blinker to go on toggling", func() bool { return td.blinkerToggles() >= n+2 })
	for i, l := range td.mg.Device().Logs("blinker", 0, 0) {
		if want := fmt.Sprintf(" toggles %d", i+1); !strings.HasSuffix(l.Text, want) {
			t.Fatalf("blinker line %d is %q, want it to end in %q: its memory was not kept", i, l.Text, want)
		}
	}

	// The metadata in force is persisted.
	rec, err := td.st.GetContainer("thermo")
	if err != nil || rec.Version != 2 {
		t.Fatalf("stored thermo: version %d, %v", rec.Version, err)
	}
	sm, err := meta.Parse(rec.Manifest)
	if err != nil || sm.Allowed("log") != 0 || sm.Schedule.Period != 50*time.Millisecond {
		t.Fatalf("stored thermo metadata: %+v, %v", sm, err)
	}
	got, err := td.mg.Meta(context.Background(), "thermo")
	if err != nil || !bytes.Equal(got, manifestJSON(t, sm)) {
		t.Fatalf("Meta = %s, %v", got, err)
	}

	// Refused updates change nothing.
	_, err = td.exec(acmeKey, device.VerbMetaApply, "thermo", manifestJSON(t, variant(v2, func(m *meta.Manifest) { m.Version = 3; m.Limits.Memory = 256 * meta.KiB })))
	wantErr(t, "update beyond the ceiling", err, mgmt.ErrDenied)
	_, err = td.exec(acmeKey, device.VerbMetaApply, "thermo", manifestJSON(t, variant(v2, func(m *meta.Manifest) { m.Schedule.Topics = []string{"globex/#"}; m.Version = 3 })))
	wantErr(t, "update listening beyond the ceiling", err, mgmt.ErrDenied)
	_, err = td.exec(acmeKey, device.VerbMetaApply, "thermo", manifestJSON(t, m))
	wantErr(t, "update to an older version", err, mgmt.ErrConflict)
	_, err = td.exec(acmeKey, device.VerbMetaApply, "thermo", manifestJSON(t, variant(v2, func(m *meta.Manifest) { m.Version = 3; m.Name = "thermo2" })))
	wantErr(t, "update for another name", err, mgmt.ErrInvalid)
	_, err = td.exec(acmeKey, device.VerbMetaApply, "thermo", manifestJSON(t, variant(v2, func(m *meta.Manifest) { m.Version = 3; m.Tenant = "globex" })))
	wantErr(t, "update moving thermo to globex", err, mgmt.ErrDenied)
	_, err = td.exec(acmeKey, device.VerbMetaApply, "thermo", []byte(`{"name":"thermo","version":9}`))
	wantErr(t, "update that does not validate", err, mgmt.ErrInvalid)
	if s := td.status("thermo"); s.Version != 2 {
		t.Fatalf("a refused update changed thermo to version %d", s.Version)
	}
	// The owner may go beyond the ceiling.
	td.mustExec(ownerKey, device.VerbMetaApply, "thermo", manifestJSON(t, variant(v2, func(m *meta.Manifest) { m.Version = 5; m.Schedule.Period = 5 * time.Millisecond })))
	if s := td.status("thermo"); s.Version != 5 || s.PeriodUS != 5000 {
		t.Fatalf("owner update: %+v", s)
	}
}

func slicesDelete(rs []meta.EndpointRule, name string) []meta.EndpointRule {
	var out []meta.EndpointRule
	for _, r := range rs {
		if r.Name != name {
			out = append(out, r)
		}
	}
	return out
}

func TestStartStopRemove(t *testing.T) {
	td := newDevice(t)
	td.addTenants()
	td.deployThermo()
	waitFor(t, "a kv write", func() bool { _, err := td.st.Get("thermo", "last"); return err == nil })

	var st mgmt.ContainerStatus
	if err := json.Unmarshal(td.mustExec(acmeKey, device.VerbStop, "thermo", nil), &st); err != nil || st.State != mgmt.StateStopped {
		t.Fatalf("stop: %+v, %v", st, err)
	}
	if rec, _ := td.st.GetContainer("thermo"); rec.State != store.StateStopped {
		t.Fatalf("stored state after stop: %q", rec.State)
	}
	// Stopped means no activation begins; stopping again is harmless.
	n := td.status("thermo").Activations
	td.mustExec(acmeKey, device.VerbStop, "thermo", nil)
	if got := td.status("thermo").Activations; got != n {
		t.Fatalf("activations went on after stop: %d -> %d", n, got)
	}
	// The owner may manage any container.
	if err := json.Unmarshal(td.mustExec(ownerKey, device.VerbStart, "thermo", nil), &st); err != nil || st.State != mgmt.StateRunning {
		t.Fatalf("start: %+v, %v", st, err)
	}
	waitFor(t, "activations after start", func() bool { return td.status("thermo").Activations > n })
	if rec, _ := td.st.GetContainer("thermo"); rec.State != store.StateRunning {
		t.Fatalf("stored state after start: %q", rec.State)
	}

	res := td.mustExec(acmeKey, device.VerbRemove, "thermo", nil)
	if !strings.Contains(string(res), `"removed":"thermo"`) {
		t.Fatalf("rm result: %s", res)
	}
	if _, err := td.mg.Status(context.Background(), "thermo"); !errors.Is(err, mgmt.ErrNotFound) {
		t.Fatalf("status after rm: %v", err)
	}
	if _, err := td.st.GetContainer("thermo"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("stored record after rm: %v", err)
	}
	if u, _ := td.st.Usage("thermo"); u != 0 {
		t.Fatalf("kv data after rm: %d bytes", u)
	}
	_, err := td.exec(acmeKey, device.VerbRemove, "thermo", nil)
	wantErr(t, "rm twice", err, mgmt.ErrNotFound)
	// Nothing comes back after a restart.
	td = td.reopen()
	if list, _ := td.mg.List(context.Background()); len(list) != 0 {
		t.Fatalf("removed container back after restart: %+v", list)
	}
}

func TestInsecureMode(t *testing.T) {
	td := openDevice(t, t.TempDir(), device.Config{Insecure: true})
	m, code := example(t, "thermo")
	// Any key will do, and commands need not come from a known key.
	if st := td.mustDeploy(pack(t, m, code, otherKey)); st.State != mgmt.StateRunning {
		t.Fatalf("insecure deploy: %+v", st)
	}
	td.mustExec(otherKey, device.VerbStop, "thermo", nil)
	// Still well-formed only, and still no rollback and no replay.
	for _, bad := range [][]byte{nil, []byte("junk"), pack(t, variant(m, func(m *meta.Manifest) { m.Version = 5 }), []byte("not wasm"), otherKey)} {
		_, err := td.deploy(bad)
		wantErr(t, "malformed image in insecure mode", err, mgmt.ErrInvalid)
	}
	flipped := pack(t, variant(m, func(m *meta.Manifest) { m.Version = 7 }), code, otherKey)
	flipped[len(flipped)/2] ^= 0xff
	if _, err := td.deploy(flipped); err == nil {
		t.Fatal("insecure mode accepted a corrupted image")
	}
	_, err := td.deploy(pack(t, m, code, otherKey))
	wantErr(t, "rollback in insecure mode", err, mgmt.ErrConflict)
	_, err = td.mg.Exec(context.Background(), []byte("junk"))
	wantErr(t, "malformed command in insecure mode", err, mgmt.ErrInvalid)
	start := signCmd(t, otherKey, device.VerbStart, "thermo", nil)
	if _, err := td.mg.Exec(context.Background(), start); err != nil {
		t.Fatal(err)
	}
	_, err = td.mg.Exec(context.Background(), start)
	wantErr(t, "replay in insecure mode", err, mgmt.ErrDenied)
	// Without an owner there is nobody to grant tenants.
	_, err = td.exec(otherKey, device.VerbTenantAdd, "", acmeGrant(t))
	wantErr(t, "tenant-add without owner", err, mgmt.ErrDenied)
}

func TestOpenRefused(t *testing.T) {
	ctx := context.Background()
	st, err := boltstore.Open(t.TempDir(), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = device.Open(ctx, device.Config{Options: device.Options{Store: st}})
	wantErr(t, "Open without owner or insecure", err, mgmt.ErrInvalid)
	_, err = device.Open(ctx, device.Config{Owner: pub(ownerKey)})
	wantErr(t, "Open without store", err, mgmt.ErrInvalid)
}

// TestRestart closes a device with containers in every state and reopens
// its directory: everything comes back as it was.
func TestRestart(t *testing.T) {
	td := newDevice(t)
	td.addTenants()
	m, _ := td.deployThermo()
	bm, bcode := example(t, "blinker")
	td.mustDeploy(pack(t, bm, bcode, globexKey))
	// runaway never returns: with max_faults 1 its first activation leaves
	// it faulted.
	rm, rcode := example(t, "runaway")
	rm.Schedule.Budget, rm.Schedule.Period, rm.Schedule.MaxFaults = 2*time.Millisecond, 50*time.Millisecond, 1
	td.mustDeploy(pack(t, rm, rcode, globexKey))
	waitFor(t, "runaway to fault and thermo to store a reading", func() bool {
		_, err := td.st.Get("thermo", "last")
		return err == nil && td.status("runaway").State == mgmt.StateFaulted
	})
	if s := td.status("runaway"); s.LastFault != mgmt.FaultBudget || s.Faults != 1 {
		t.Fatalf("runaway: %+v", s)
	}
	td.mustExec(globexKey, device.VerbStop, "blinker", nil)
	v2 := variant(m, func(m *meta.Manifest) { m.Version = 2; m.Endpoints = slicesDelete(m.Endpoints, "log") })
	td.mustExec(acmeKey, device.VerbMetaApply, "thermo", manifestJSON(t, v2))
	waitFor(t, "a denied log call", func() bool { return td.status("thermo").DeniedCalls > 0 })
	replay := signCmd(t, acmeKey, device.VerbStop, "thermo", nil)
	if _, err := td.mg.Exec(context.Background(), replay); err != nil {
		t.Fatal(err)
	}
	td.mustExec(acmeKey, device.VerbStart, "thermo", nil)
	kvBefore, err := td.st.Get("thermo", "last")
	if err != nil {
		t.Fatal(err)
	}
	auditBefore := td.mg.Device().Audit(0)
	if len(auditBefore) == 0 {
		t.Fatal("no audit entries before the restart")
	}

	td = td.reopen()
	want := map[string]struct {
		state   string
		version uint64
	}{"thermo": {mgmt.StateRunning, 2}, "blinker": {mgmt.StateStopped, 1}, "runaway": {mgmt.StateFaulted, 1}}
	list, err := td.mg.List(context.Background())
	if err != nil || len(list) != len(want) {
		t.Fatalf("after restart: %+v, %v", list, err)
	}
	for _, c := range list {
		if w := want[c.Name]; c.State != w.state || c.Version != w.version {
			t.Errorf("%s after restart: state %s version %d, want %s %d", c.Name, c.State, c.Version, w.state, w.version)
		}
	}
	got, err := td.mg.Meta(context.Background(), "thermo")
	if err != nil || !bytes.Equal(got, manifestJSON(t, v2)) {
		t.Fatalf("metadata in force after restart: %s, %v", got, err)
	}
	if v, err := td.st.Get("thermo", "last"); err != nil || len(v) != 4 || len(kvBefore) != 4 {
		t.Fatalf("kv after restart: %x, %v", v, err)
	} else if c := int32(binary.LittleEndian.Uint32(v)); c < -40000 || c > 85000 {
		t.Fatalf("kv reading after restart out of range: %d", c)
	}
	waitFor(t, "thermo to run again after the restart", func() bool { return td.status("thermo").Activations > 0 })
	// The new run still denies log (version 2 is in force).
	waitFor(t, "thermo's log denied after restart", func() bool { return td.status("thermo").DeniedCalls > 0 })
	if s := td.status("blinker"); s.Activations != 0 {
		t.Fatalf("stopped blinker ran after the restart: %+v", s)
	}

	// Tenants are kept: acme still manages its container, globex still
	// may not.
	td.mustExec(acmeKey, device.VerbStop, "thermo", nil)
	_, err = td.exec(globexKey, device.VerbStart, "thermo", nil)
	wantErr(t, "globex on thermo after restart", err, mgmt.ErrDenied)
	// Faulted stays faulted until started.
	td.mustExec(globexKey, device.VerbStart, "runaway", nil)
	// Replay counters are kept.
	_, err = td.mg.Exec(context.Background(), replay)
	wantErr(t, "replay after restart", err, mgmt.ErrDenied)
	// Audit entries are kept.
	after := td.mg.Device().Audit(0)
	for _, e := range auditBefore {
		if !containsAudit(after, e) {
			t.Errorf("audit entry lost by the restart: %+v", e)
		}
	}
}

func containsAudit(es []mgmt.AuditEntry, e mgmt.AuditEntry) bool {
	for _, x := range es {
		if x.Container == e.Container && x.Endpoint == e.Endpoint && x.Op == e.Op && x.Reason == e.Reason && x.Time.Equal(e.Time) {
			return true
		}
	}
	return false
}

// errorClasses are the classes every Manager error must wrap.
var errorClasses = []error{mgmt.ErrNotFound, mgmt.ErrInvalid, mgmt.ErrDenied, mgmt.ErrConflict, mgmt.ErrTooLarge, mgmt.ErrUnavailable}

func checkClass(t *testing.T, what string, err error) {
	t.Helper()
	for _, c := range errorClasses {
		if errors.Is(err, c) {
			return
		}
	}
	t.Fatalf("%s: error %q wraps no mgmt error class", what, err)
}

// fuzzDevice is a device with acme's thermo installed, in secure or
// insecure mode, shared by the runs of one fuzz worker.
func fuzzDevice(t testing.TB, insecure bool) *device.Manager {
	cfg := device.Config{Owner: pub(ownerKey), Insecure: insecure}
	ctx := context.Background()
	cfg.Store = memstore.New()
	mg, err := device.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mg.Exec(ctx, signCmd(t, ownerKey, device.VerbTenantAdd, "", acmeGrant(t))); err != nil {
		t.Fatal(err)
	}
	m, code := example(t, "thermo")
	if _, err := mg.Deploy(ctx, pack(t, m, code, acmeKey)); err != nil {
		t.Fatal(err)
	}
	return mg
}

// FuzzDeploy feeds arbitrary bytes to Deploy: it never panics, and what it
// refuses it refuses with a mgmt error class; in secure mode nothing but a
// validly signed image installs.
func FuzzDeploy(f *testing.F) {
	m, code := example(f, "thermo")
	v2 := variant(m, func(m *meta.Manifest) { m.Version = 2 })
	f.Add(pack(f, v2, code, acmeKey), false)
	f.Add(pack(f, v2, code, otherKey), true)
	f.Add(pack(f, variant(v2, func(m *meta.Manifest) { m.Name = "other" }), []byte("\x00asm\x01\x00\x00\x00"), otherKey), true)
	f.Add([]byte{0xd2, 0x84}, false)
	f.Add([]byte{}, true)
	devs := map[bool]*device.Manager{}
	f.Cleanup(func() {
		for _, mg := range devs {
			mg.Close(context.Background())
		}
	})
	f.Fuzz(func(t *testing.T, img []byte, insecure bool) {
		mg := devs[insecure]
		if mg == nil {
			mg = fuzzDevice(t, insecure)
			devs[insecure] = mg
		}
		st, err := mg.Deploy(context.Background(), img)
		if err != nil {
			checkClass(t, "Deploy", err)
			return
		}
		if !insecure && st.Tenant != "acme" {
			t.Fatalf("secure device installed %+v from fuzzed bytes", st)
		}
	})
}

// FuzzExec feeds arbitrary bytes to Exec, as FuzzDeploy does to Deploy.
func FuzzExec(f *testing.F) {
	m, _ := example(f, "thermo")
	for _, c := range []struct {
		key        ed25519.PrivateKey
		verb, name string
		body       []byte
	}{
		{acmeKey, device.VerbStop, "thermo", nil},
		{acmeKey, device.VerbStart, "thermo", nil},
		{acmeKey, device.VerbMetaApply, "thermo", manifestJSON(f, variant(m, func(m *meta.Manifest) { m.Version = 9 }))},
		{ownerKey, device.VerbTenantAdd, "", globexGrant(f)},
		{otherKey, device.VerbRemove, "thermo", nil},
	} {
		f.Add(signCmd(f, c.key, c.verb, c.name, c.body), false)
		f.Add(signCmd(f, c.key, c.verb, c.name, c.body), true)
	}
	f.Add([]byte("junk"), false)
	devs := map[bool]*device.Manager{}
	f.Cleanup(func() {
		for _, mg := range devs {
			mg.Close(context.Background())
		}
	})
	f.Fuzz(func(t *testing.T, cmd []byte, insecure bool) {
		mg := devs[insecure]
		if mg == nil {
			mg = fuzzDevice(t, insecure)
			devs[insecure] = mg
		}
		res, err := mg.Exec(context.Background(), cmd)
		if err != nil {
			checkClass(t, "Exec", err)
			return
		}
		if !json.Valid(res) {
			t.Fatalf("Exec result is not JSON: %q", res)
		}
	})
}

// TestStartOfAFaultingContainerIsRecordedFaulted: a start request recorded
// the state it read after starting the container, outside the lock that
// orders record writes; a container faulting right after its start could
// have its "faulted" record overwritten by that stale "running", and come
// back running after a restart. The window (between that read and the
// lock) is too narrow to force from outside, so this test does not fail
// reliably on the old code; it pins what the fix guarantees: each round
// starts runaway (which faults on its first activation) and the record
// must end up saying faulted, also across a restart.
func TestStartOfAFaultingContainerIsRecordedFaulted(t *testing.T) {
	td := newDevice(t)
	td.addTenants()
	rm, rcode := example(t, "runaway")
	rm.Schedule.Budget, rm.Schedule.Period, rm.Schedule.MaxFaults = 2*time.Millisecond, 50*time.Millisecond, 1
	td.mustDeploy(pack(t, rm, rcode, globexKey))
	recorded := func(state string) func() bool {
		return func() bool {
			rec, err := td.st.GetContainer("runaway")
			return err == nil && rec.State == state && td.status("runaway").State == state
		}
	}
	waitFor(t, "runaway to fault and its record to say so", recorded(mgmt.StateFaulted))
	for i := range 20 {
		td.mustExec(globexKey, device.VerbStart, "runaway", nil)
		waitFor(t, fmt.Sprintf("round %d: runaway to fault again and its record to say so", i), recorded(mgmt.StateFaulted))
	}
	td = td.reopen()
	if s := td.status("runaway"); s.State != mgmt.StateFaulted {
		t.Fatalf("after a restart runaway is %s, want faulted", s.State)
	}
}
