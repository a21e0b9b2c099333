package sim_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/fleet/doc"
	"github.com/tinycontainer/tinycontainer/fleet/sim"
	"github.com/tinycontainer/tinycontainer/internal/mqttc"
	"github.com/tinycontainer/tinycontainer/internal/testbroker"
	"github.com/tinycontainer/tinycontainer/internal/testgrant"
	"github.com/tinycontainer/tinycontainer/internal/testwait"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/trust"
)

func key(n string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("sim test " + n))
	return ed25519.NewKeyFromSeed(seed[:])
}

// A simulated fleet comes up, takes one grant and one desired state
// naming all its devices, runs the container healthy everywhere, and says
// offline when it stops. The heap per device is logged (not a verdict).
func TestSimulatedFleet(t *testing.T) {
	const n = 20
	br := testbroker.Start(t)
	owner, acme := key("owner"), key("acme")
	ctx, cancel := context.WithTimeout(context.Background(), testwait.Guard())
	defer cancel()

	var mu sync.Mutex
	healthy, offline := map[string]bool{}, map[string]bool{}
	ctl, err := mqttc.Dial(ctx, mqttc.Config{URL: br.URL(), ClientID: "ctl", OnMessage: func(m mqttc.Message) {
		tp, err := doc.ParseTopic(m.Topic)
		if err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		switch tp.Kind {
		case doc.TopicReported:
			r, err := doc.DecodeReported(m.Payload)
			if err == nil && len(r.Containers) == 1 && r.Containers[0].Health == doc.HealthHealthy {
				healthy[tp.Device] = true
			}
		case doc.TopicStatus:
			if s, err := doc.DecodeStatus(m.Payload); err == nil && !s.Online {
				offline[tp.Device] = true
			}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Disconnect()
	if _, err := ctl.Subscribe(ctx, []mqttc.Filter{{Topic: doc.AllReportedFilter, QoS: 1}, {Topic: doc.AllStatusFilter, QoS: 1}}); err != nil {
		t.Fatal(err)
	}

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f, err := sim.Start(ctx, sim.Options{Devices: n, Broker: br.URL(), Owner: owner.Public().(ed25519.PublicKey),
		Dir: t.TempDir(), Tick: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("heap in use per simulated device: %d KiB", (int64(after.HeapInuse)-int64(before.HeapInuse))/n/1024)
	ids := make([]string, 0, n)
	for _, d := range f.Devices() {
		ids = append(ids, d.ID)
	}

	// The owner's grant and the tenant's desired state, one signature each.
	c := testgrant.Ceiling("acme")
	c.MaxBudget = 30 * time.Millisecond
	inner := testgrant.Sign(t, c, acme.Public().(ed25519.PublicKey), owner, "actuator/led0:read,write", "log:write")
	g, err := doc.SignGrant(doc.Grant{Tenant: "acme", Devices: ids, Seq: 1, Grant: inner}, owner)
	if err != nil {
		t.Fatal(err)
	}
	y, _ := os.ReadFile("../../examples/blinker/blinker.yaml")
	m, err := meta.Parse(y)
	if err != nil {
		t.Fatal(err)
	}
	m.Tenant = "acme"
	code, _ := os.ReadFile("../../examples/blinker/blinker.wasm")
	mj, _ := json.Marshal(m)
	img, err := trust.Pack(mj, code, acme)
	if err != nil {
		t.Fatal(err)
	}
	dg := doc.Digest(img)
	want, err := doc.SignDesired(doc.Desired{Tenant: "acme", Devices: ids, Seq: 1, Containers: []doc.DesiredContainer{{
		Name: "blinker", Version: 1, Digest: dg, Size: len(img), Health: doc.Duration(100 * time.Millisecond)}}}, acme)
	if err != nil {
		t.Fatal(err)
	}
	pub := func(topic string, b []byte) {
		if err := ctl.Publish(ctx, mqttc.Message{Topic: topic, Payload: b, QoS: 1, Retain: true}); err != nil {
			t.Fatal(err)
		}
	}
	pub(doc.ImageTopic("acme", dg), img)
	for _, id := range ids {
		pub(doc.GrantTopic(id, "acme"), g)
		pub(doc.DesiredTopic(id, "acme"), want)
	}
	testbroker.WaitFor(t, "every device healthy", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(healthy) == n
	})
	f.Close()
	testbroker.WaitFor(t, "every device offline", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(offline) == n
	})
}

// BenchmarkDeviceMemory starts b.N simulated devices (state in memory, no
// container) on one mosquitto and reports the Go heap each one holds.
// go test -run X -bench DeviceMemory -benchtime 200x ./fleet/sim
func BenchmarkDeviceMemory(b *testing.B) {
	br := testbroker.Start(b)
	owner := key("owner")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f, err := sim.Start(context.Background(), sim.Options{Devices: b.N, Broker: br.URL(), Owner: owner.Public().(ed25519.PublicKey)})
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/float64(b.N)/1024, "heapKiB/device")
	b.ReportMetric(float64(int64(after.Sys)-int64(before.Sys))/float64(b.N)/1024, "sysKiB/device")
	f.Close()
}
