package fleet_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/fleet/doc"
	"github.com/tinycontainer/tinycontainer/internal/mqttc"
	"github.com/tinycontainer/tinycontainer/internal/testbroker"
	"github.com/tinycontainer/tinycontainer/internal/testgrant"
	"github.com/tinycontainer/tinycontainer/internal/testwait"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/mgmt/fleet"
	"github.com/tinycontainer/tinycontainer/store"
	"github.com/tinycontainer/tinycontainer/store/memstore"
	"github.com/tinycontainer/tinycontainer/trust"
)

func key(n string) (ed25519.PublicKey, ed25519.PrivateKey) {
	seed := sha256.Sum256([]byte("fleet agent test " + n))
	priv := ed25519.NewKeyFromSeed(seed[:])
	return priv.Public().(ed25519.PublicKey), priv
}

var (
	ownerPub, ownerKey   = key("owner")
	globexPub, globexKey = key("globex")
	_, mallory           = key("mallory")
)

// world is one broker, one controller connection and the keys.
type world struct {
	t   *testing.T
	br  *testbroker.Broker
	ctl *mqttc.Conn

	mu       sync.Mutex
	reported map[string]doc.Reported // by device
	status   map[string]doc.Status
}

func newWorld(t *testing.T) *world {
	w := &world{t: t, br: testbroker.Start(t), reported: map[string]doc.Reported{}, status: map[string]doc.Status{}}
	ctx, cancel := context.WithTimeout(context.Background(), testwait.Guard())
	defer cancel()
	c, err := mqttc.Dial(ctx, mqttc.Config{URL: w.br.URL(), ClientID: "ctl", OnMessage: w.onMessage})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Disconnect)
	if _, err := c.Subscribe(ctx, []mqttc.Filter{{Topic: doc.AllReportedFilter, QoS: 1}, {Topic: doc.AllStatusFilter, QoS: 1}}); err != nil {
		t.Fatal(err)
	}
	w.ctl = c
	return w
}

func (w *world) onMessage(m mqttc.Message) {
	tp, err := doc.ParseTopic(m.Topic)
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch tp.Kind {
	case doc.TopicReported:
		if r, err := doc.DecodeReported(m.Payload); err == nil {
			w.reported[tp.Device] = r
		}
	case doc.TopicStatus:
		if s, err := doc.DecodeStatus(m.Payload); err == nil {
			w.status[tp.Device] = s
		}
	}
}

func (w *world) publish(topic string, payload []byte) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testwait.Guard())
	defer cancel()
	if err := w.ctl.Publish(ctx, mqttc.Message{Topic: topic, Payload: payload, QoS: 1, Retain: true}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) rep(id string) doc.Reported {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reported[id]
}

func (w *world) waitContainer(id, name string, cond func(doc.ContainerReport) bool) doc.ContainerReport {
	w.t.Helper()
	var got doc.ContainerReport
	testbroker.WaitFor(w.t, id+"/"+name+" in the reported state", func() bool {
		for _, c := range w.rep(id).Containers {
			if c.Name == name && cond(c) {
				got = c
				return true
			}
		}
		return false
	})
	return got
}

func (w *world) waitRefusal(id, what string) {
	w.t.Helper()
	testbroker.WaitFor(w.t, "refusal "+what, func() bool {
		for _, r := range w.rep(id).Refusals {
			if strings.Contains(r.Reason, what) {
				return true
			}
		}
		return false
	})
}

// ceiling grants globex what the blinker and runaway examples need.
func globexGrant(t *testing.T) []byte {
	t.Helper()
	c := testgrant.Ceiling("globex")
	c.MaxBudget = 30 * time.Millisecond
	return testgrant.Sign(t, c, globexPub, ownerKey, "actuator/led0:read,write", "log:write")
}

func example(t *testing.T, name string) (*meta.Manifest, []byte) {
	t.Helper()
	dir := filepath.Join("..", "..", "examples", name)
	y, err := os.ReadFile(filepath.Join(dir, name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := meta.Parse(y)
	if err != nil {
		t.Fatal(err)
	}
	code, err := os.ReadFile(filepath.Join(dir, m.Code))
	if err != nil {
		t.Fatal(err)
	}
	return m, code
}

// image packs the blinker (or, faulty, the runaway's code under the
// blinker's name) at a version.
func image(t *testing.T, version uint64, faulty bool, edit func(*meta.Manifest)) []byte {
	t.Helper()
	m, code := example(t, "blinker")
	if faulty {
		_, code = example(t, "runaway")
		m.Schedule.Period = 60 * time.Millisecond
	}
	m.Version = version
	if edit != nil {
		edit(m)
	}
	mj, _ := json.Marshal(m)
	img, err := trust.Pack(mj, code, globexKey)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

type dev struct {
	id    string
	mg    *device.Manager
	agent *fleet.Agent
	st    store.Store
	stop  func()
}

func startDevice(t *testing.T, w *world, id string, st store.Store) *dev {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	mg, err := device.Open(ctx, device.Config{Options: device.Options{Store: st}, Owner: ownerPub})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { mg.Device().Run(ctx); close(done) }()
	a, err := fleet.Start(mg, fleet.Options{URL: w.br.URL(), ID: id, Labels: map[string]string{"site": "lab"},
		Version: "test", Tick: 5 * time.Millisecond, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	d := &dev{id: id, mg: mg, agent: a, st: st}
	var once sync.Once
	d.stop = func() {
		once.Do(func() {
			a.Close()
			cancel()
			<-done
			mg.Close(context.Background())
		})
	}
	t.Cleanup(d.stop)
	return d
}

func signedGrant(t *testing.T, seq uint64, devices ...string) []byte {
	t.Helper()
	b, err := doc.SignGrant(doc.Grant{Tenant: "globex", Devices: devices, Seq: seq, Grant: globexGrant(t)}, ownerKey)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func desired(t *testing.T, seq uint64, key ed25519.PrivateKey, devices []string, cs ...doc.DesiredContainer) []byte {
	t.Helper()
	b, err := doc.SignDesired(doc.Desired{Tenant: "globex", Devices: devices, Seq: seq, Containers: cs}, key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func entry(img []byte, version uint64, health time.Duration) doc.DesiredContainer {
	return doc.DesiredContainer{Name: "blinker", Version: version, Digest: doc.Digest(img), Size: len(img), Health: doc.Duration(health)}
}

func (w *world) putImage(img []byte) {
	w.publish(doc.ImageTopic("globex", doc.Digest(img)), img)
}

// The whole device life: grant, install, update, health, revert, refusals,
// the CoAP lock, offline status and catching up after a restart.
func TestFleetDeviceLifecycle(t *testing.T) {
	w := newWorld(t)
	st := memstore.New()
	d := startDevice(t, w, "dev-1", st)
	devs := []string{"dev-1", "dev-2"}
	testbroker.WaitFor(t, "online status", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		s := w.status["dev-1"]
		return s.Online && s.Labels["site"] == "lab"
	})
	// The status says how often the reported state comes (a controller
	// tells a silent device by it), and the reported state carries the
	// device's storage.
	w.mu.Lock()
	hb := w.status["dev-1"].Heartbeat
	w.mu.Unlock()
	if time.Duration(hb) != doc.DefaultHeartbeat {
		t.Fatalf("heartbeat in the status %v, want %v", time.Duration(hb), doc.DefaultHeartbeat)
	}
	testbroker.WaitFor(t, "the storage in the reported state", func() bool { return w.rep("dev-1").Storage != nil })

	// A desired state before the grant waits for it.
	v1, v2 := image(t, 1, false, nil), image(t, 2, false, nil)
	w.putImage(v1)
	w.publish(doc.DesiredTopic("dev-1", "globex"), desired(t, 1, globexKey, devs, entry(v1, 1, 100*time.Millisecond)))
	w.waitRefusal("dev-1", "no grant")
	w.publish(doc.GrantTopic("dev-1", "globex"), signedGrant(t, 1, devs...))
	c := w.waitContainer("dev-1", "blinker", func(c doc.ContainerReport) bool { return c.Health == doc.HealthHealthy })
	if c.Version != 1 || c.Digest != doc.Digest(v1) || c.State != "running" {
		t.Fatalf("v1: %+v", c)
	}

	// Update to v2: healthy, with v1 as its previous version.
	w.putImage(v2)
	w.publish(doc.DesiredTopic("dev-1", "globex"), desired(t, 2, globexKey, devs, entry(v2, 2, 100*time.Millisecond)))
	c = w.waitContainer("dev-1", "blinker", func(c doc.ContainerReport) bool { return c.Version == 2 && c.Health == doc.HealthHealthy })
	if c.Previous == nil || c.Previous.Version != 1 || c.Previous.Digest != doc.Digest(v1) {
		t.Fatalf("v2 previous: %+v", c.Previous)
	}

	// The tenant can no longer change its containers over CoAP; the owner can.
	if _, err := d.mg.Deploy(context.Background(), image(t, 9, false, nil)); !errors.Is(err, mgmt.ErrDenied) || !strings.Contains(err.Error(), "managed by a fleet") {
		t.Fatalf("CoAP deploy of a fleet tenant: %v", err)
	}

	// Refusals, each with a reason, nothing applied.
	w.publish(doc.DesiredTopic("dev-1", "globex"), []byte("garbage \x00\xff"))
	w.waitRefusal("dev-1", "not a COSE_Sign1")
	w.publish(doc.DesiredTopic("dev-1", "globex"), desired(t, 1, globexKey, devs, entry(v1, 1, 0)))
	w.waitRefusal("dev-1", "older than the 2 accepted")
	w.publish(doc.DesiredTopic("dev-1", "globex"), desired(t, 5, globexKey, []string{"dev-9"}, entry(v1, 1, 0)))
	w.waitRefusal("dev-1", "does not name device")
	w.publish(doc.DesiredTopic("dev-1", "globex"), desired(t, 6, mallory, devs, entry(v1, 1, 0)))
	w.waitRefusal("dev-1", "signed by key")
	w.publish(doc.GrantTopic("dev-1", "globex"), nil)
	w.waitRefusal("dev-1", "empty retained message")
	w.publish("tc/v1/dev/dev-1/desired/Bad_Name", []byte("x"))
	w.publish("tc/v1/dev/dev-1/whatever", []byte("x"))
	// A revert to a version that was not the previous one.
	v0 := image(t, 1, false, func(m *meta.Manifest) { m.Schedule.Period = 300 * time.Millisecond })
	bad := entry(v0, 1, 0)
	bad.Revert = &doc.Revert{From: doc.Ref{Version: 2, Digest: doc.Digest(v2)}}
	w.publish(doc.DesiredTopic("dev-1", "globex"), desired(t, 7, globexKey, devs, bad))
	w.waitRefusal("dev-1", "revert of blinker to version 1")
	// Beyond the ceiling: budget above the grant's 30ms.
	big := image(t, 3, false, func(m *meta.Manifest) { m.Schedule.Budget = 50 * time.Millisecond })
	w.putImage(big)
	w.publish(doc.DesiredTopic("dev-1", "globex"), desired(t, 8, globexKey, devs, entry(big, 3, 0)))
	w.waitRefusal("dev-1", "budget")
	testbroker.WaitFor(t, "refused_seq 8", func() bool {
		tr := w.rep("dev-1").Tenants
		return len(tr) == 1 && tr[0].RefusedSeq == 8 && tr[0].Error != ""
	})
	// An image whose bytes do not match its address.
	v4 := image(t, 4, false, nil)
	w.publish(doc.ImageTopic("globex", doc.Digest(v4)), v2)
	w.publish(doc.DesiredTopic("dev-1", "globex"), desired(t, 9, globexKey, devs, entry(v4, 4, 0)))
	w.waitRefusal("dev-1", "does not match its address")
	if got, _ := d.mg.Device().Status("blinker"); got.Version != 2 || got.State != "running" {
		t.Fatalf("after the refusals: %+v", got)
	}

	// The exact previous version, by a tenant-signed revert: back on v1.
	back := entry(v1, 1, 50*time.Millisecond)
	back.Revert = &doc.Revert{From: doc.Ref{Version: 2, Digest: doc.Digest(v2)}}
	w.publish(doc.DesiredTopic("dev-1", "globex"), desired(t, 10, globexKey, devs, back))
	w.waitContainer("dev-1", "blinker", func(c doc.ContainerReport) bool { return c.Version == 1 && c.Health == doc.HealthHealthy })

	// A faulting version fails its health window; the device keeps running.
	bad5 := image(t, 5, true, nil)
	w.putImage(bad5)
	w.publish(doc.DesiredTopic("dev-1", "globex"), desired(t, 11, globexKey, devs, entry(bad5, 5, 5*time.Second)))
	c = w.waitContainer("dev-1", "blinker", func(c doc.ContainerReport) bool { return c.Version == 5 && c.Health == doc.HealthFailed })
	if c.Error == "" {
		t.Fatalf("failed without a reason: %+v", c)
	}

	// Clean shutdown: offline, retained.
	d.stop()
	testbroker.WaitFor(t, "offline status", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return !w.status["dev-1"].Online
	})

	// While it is away, v6 is asked for; it catches up when it comes back
	// (same store: the state survived).
	v6 := image(t, 6, false, nil)
	w.putImage(v6)
	w.publish(doc.DesiredTopic("dev-1", "globex"), desired(t, 12, globexKey, devs, entry(v6, 6, 50*time.Millisecond)))
	startDevice(t, w, "dev-1", st)
	c = w.waitContainer("dev-1", "blinker", func(c doc.ContainerReport) bool { return c.Version == 6 && c.Health == doc.HealthHealthy })
	if c.Previous == nil || c.Previous.Version != 5 {
		t.Fatalf("after catching up: %+v", c)
	}
	audit := fmt.Sprint(d.mg.Device().Audit(100))
	if !strings.Contains(audit, "fleet") {
		t.Fatalf("refusals not in the audit: %s", audit)
	}
}

// A device that stops between installing a version and recording it comes
// back on one of the two versions, never neither: here the store holds
// v2 while the fleet's record still says v1; the adapter adopts v2 (same
// image as desired) with v1 as its previous version.
func TestFleetKilledMidUpdateComesBackOnOneVersion(t *testing.T) {
	w := newWorld(t)
	st := memstore.New()
	devs := []string{"dev-1"}
	v1, v2 := image(t, 1, false, nil), image(t, 2, false, nil)
	w.putImage(v1)
	w.putImage(v2)
	w.publish(doc.GrantTopic("dev-1", "globex"), signedGrant(t, 1, devs...))
	w.publish(doc.DesiredTopic("dev-1", "globex"), desired(t, 1, globexKey, devs, entry(v1, 1, 20*time.Millisecond)))
	d := startDevice(t, w, "dev-1", st)
	w.waitContainer("dev-1", "blinker", func(c doc.ContainerReport) bool { return c.Version == 1 && c.Health == doc.HealthHealthy })
	d.stop()

	// The update to v2 reached the store, then the device died.
	ctx := context.Background()
	mg, err := device.Open(ctx, device.Config{Options: device.Options{Store: st}, Owner: ownerPub})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mg.FleetDeploy(ctx, v2, device.FleetWant{Tenant: "globex", Name: "blinker", Version: 2}); err != nil {
		t.Fatal(err)
	}
	mg.Close(ctx)

	w.publish(doc.DesiredTopic("dev-1", "globex"), desired(t, 2, globexKey, devs, entry(v2, 2, 20*time.Millisecond)))
	startDevice(t, w, "dev-1", st)
	c := w.waitContainer("dev-1", "blinker", func(c doc.ContainerReport) bool {
		return c.Version == 2 && c.Digest == doc.Digest(v2) && c.Health == doc.HealthHealthy
	})
	if c.Previous == nil || *c.Previous != (doc.Ref{Version: 1, Digest: doc.Digest(v1)}) || c.Digest != doc.Digest(v2) {
		t.Fatalf("after the restart: %+v previous %+v", c, c.Previous)
	}
}

// Oversized and duplicated messages: an oversized document is refused
// before it is parsed; the same retained document seen again (a
// reconnect) is not a refusal and changes nothing.
func TestFleetOversizedAndDuplicates(t *testing.T) {
	w := newWorld(t)
	devs := []string{"dev-1"}
	v1 := image(t, 1, false, nil)
	w.putImage(v1)
	w.publish(doc.GrantTopic("dev-1", "globex"), signedGrant(t, 1, devs...))
	want := desired(t, 1, globexKey, devs, entry(v1, 1, 10*time.Millisecond))
	w.publish(doc.DesiredTopic("dev-1", "globex"), want)
	d := startDevice(t, w, "dev-1", memstore.New())
	w.waitContainer("dev-1", "blinker", func(c doc.ContainerReport) bool { return c.Health == doc.HealthHealthy })
	w.publish(doc.DesiredTopic("dev-1", "globex"), make([]byte, doc.MaxDocSize+1))
	w.waitRefusal("dev-1", "more than")
	w.publish(doc.DesiredTopic("dev-1", "globex"), want)
	// A reconnect re-reads every retained message: the duplicate is quiet.
	n := len(w.rep("dev-1").Refusals)
	connects := d.agent.Stats().Connects
	w.br.Stop()
	w.br.Start()
	testbroker.WaitFor(t, "the reconnect", func() bool { return d.agent.Stats().Connects > connects && d.agent.Connected() })
	// The controller's own connection went too.
	w2 := &world{t: t, br: w.br, reported: map[string]doc.Reported{}, status: map[string]doc.Status{}}
	ctx, cancel := context.WithTimeout(context.Background(), testwait.Guard())
	defer cancel()
	c, err := mqttc.Dial(ctx, mqttc.Config{URL: w.br.URL(), ClientID: "ctl2", OnMessage: w2.onMessage})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	if _, err := c.Subscribe(ctx, []mqttc.Filter{{Topic: doc.AllReportedFilter, QoS: 1}}); err != nil {
		t.Fatal(err)
	}
	w2.ctl = c
	// The broker lost its retained messages (no persistence): republish
	// the same documents, as a controller would.
	w2.publish(doc.GrantTopic("dev-1", "globex"), signedGrant(t, 1, devs...))
	w2.publish(doc.DesiredTopic("dev-1", "globex"), want)
	w2.waitContainer("dev-1", "blinker", func(c doc.ContainerReport) bool { return c.Health == doc.HealthHealthy })
	if got := len(w2.rep("dev-1").Refusals); got != n {
		t.Fatalf("the duplicates were refused: %+v", w2.rep("dev-1").Refusals)
	}
}

// A signed revocation stops the tenant's containers and its documents are
// refused from then on, also after a restart.
func TestFleetRevoke(t *testing.T) {
	w := newWorld(t)
	st := memstore.New()
	devs := []string{"dev-1"}
	v1 := image(t, 1, false, nil)
	w.putImage(v1)
	w.publish(doc.GrantTopic("dev-1", "globex"), signedGrant(t, 1, devs...))
	w.publish(doc.DesiredTopic("dev-1", "globex"), desired(t, 1, globexKey, devs, entry(v1, 1, 10*time.Millisecond)))
	d := startDevice(t, w, "dev-1", st)
	w.waitContainer("dev-1", "blinker", func(c doc.ContainerReport) bool { return c.Health == doc.HealthHealthy })
	rev, err := doc.SignGrant(doc.Grant{Tenant: "globex", Devices: devs, Seq: 2, Revoke: true}, ownerKey)
	if err != nil {
		t.Fatal(err)
	}
	w.publish(doc.GrantTopic("dev-1", "globex"), rev)
	w.waitContainer("dev-1", "blinker", func(c doc.ContainerReport) bool { return c.State == "stopped" })
	if _, ok := d.mg.TenantKey("globex"); ok {
		t.Fatal("the revoked tenant's key is still trusted")
	}
	d.stop()
	d = startDevice(t, w, "dev-1", st)
	testbroker.WaitFor(t, "the revocation reported after a restart", func() bool {
		for _, tr := range w.rep("dev-1").Tenants {
			if tr.Tenant == "globex" && tr.Revoked {
				return true
			}
		}
		return false
	})
	if _, ok := d.mg.TenantKey("globex"); ok {
		t.Fatal("the revoked tenant's key is trusted again after a restart")
	}
	if st, _ := d.mg.Device().Status("blinker"); st.State != "stopped" {
		t.Fatalf("after the restart: %+v", st)
	}
}
