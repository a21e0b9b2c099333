// Package ctltest has stand-in fleet devices for testing controllers: each
// follows one tenant's desired state for one container over its own MQTT
// connection, reports health after the desired health window, and faults
// on chosen versions. It runs no containers (the real device adapter and
// the fleet simulator are tested in their own packages); it keeps the
// controller's tests about the controller.
package ctltest

import (
	"context"
	"crypto/ed25519"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/fleet/doc"
	"github.com/tinycontainer/tinycontainer/internal/mqttc"
	"github.com/tinycontainer/tinycontainer/mgmt"
)

// Device is a stand-in fleet device.
type Device struct {
	t      testing.TB
	ID     string
	labels map[string]string
	tenant string
	pub    ed25519.PublicKey
	faulty map[uint64]bool
	cli    *mqttc.Client
	ready  chan struct{} // closed once cli is set

	mu        sync.Mutex
	cur       doc.DesiredContainer // zero: no container
	since     time.Time
	health    string
	seq       uint64
	repSeq    uint64
	session   uint64
	installed []uint64 // every version it ran, in order
}

// Start connects a stand-in device that runs start (zero: nothing) and
// faults on the versions in faulty; it stops when the test ends.
func Start(t testing.TB, broker, id string, labels map[string]string, tenant string, pub ed25519.PublicKey, start doc.DesiredContainer, faulty ...uint64) *Device {
	t.Helper()
	d := &Device{t: t, ID: id, labels: labels, tenant: tenant, pub: pub, faulty: map[uint64]bool{}, cur: start, health: doc.HealthHealthy, ready: make(chan struct{})}
	for _, v := range faulty {
		d.faulty[v] = true
	}
	if start.Version != 0 {
		d.installed = []uint64{start.Version}
	}
	cli, err := mqttc.Start(mqttc.ClientConfig{
		Config: mqttc.Config{URL: broker, ClientID: "tc-" + id + "-fleet", OnMessage: d.onMessage, KeepAlive: 5 * time.Second},
		WillFunc: func() *mqttc.Message {
			d.mu.Lock()
			d.session++
			s := d.statusLocked(false)
			d.mu.Unlock()
			return &s
		},
		MaxBackoff: 200 * time.Millisecond,
		OnConnect: func(ctx context.Context, c *mqttc.Conn) error {
			if _, err := c.Subscribe(ctx, []mqttc.Filter{{Topic: doc.DesiredFilter(id), QoS: 1}}); err != nil {
				return err
			}
			d.mu.Lock()
			s := d.statusLocked(true)
			rep := d.reportedLocked()
			d.mu.Unlock()
			if err := c.Publish(ctx, s); err != nil {
				return err
			}
			return c.Publish(ctx, rep)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	d.cli = cli
	close(d.ready)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				d.checkHealth()
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done; d.stop() })
	return d
}

func (d *Device) stop() {
	d.mu.Lock()
	s := d.statusLocked(false)
	d.mu.Unlock()
	d.cli.Close(time.Second, s)
}

func (d *Device) statusLocked(online bool) mqttc.Message {
	b, _ := doc.Status{ID: d.ID, Online: online, Labels: d.labels, Version: "fake", Session: d.session, Time: time.Now()}.Encode()
	return mqttc.Message{Topic: doc.StatusTopic(d.ID), Payload: b, QoS: 1, Retain: true}
}

func (d *Device) reportedLocked() mqttc.Message {
	d.repSeq++
	r := doc.Reported{ID: d.ID, Session: d.session, Seq: d.repSeq, Time: time.Now(),
		Tenants: []doc.TenantReport{{Tenant: d.tenant, DesiredSeq: d.seq}}}
	if d.cur.Version != 0 {
		r.Containers = []doc.ContainerReport{{
			ContainerStatus: mgmt.ContainerStatus{Name: d.cur.Name, Tenant: d.tenant, Runtime: "wasm", State: mgmt.StateRunning, Version: d.cur.Version},
			Digest:          d.cur.Digest, Health: d.health, Rollout: d.cur.Rollout,
		}}
		if d.health == doc.HealthFailed {
			r.Containers[0].State, r.Containers[0].LastFault, r.Containers[0].Faults = mgmt.StateFaulted, mgmt.FaultTrap, 3
		}
	}
	b, _ := r.Encode()
	return mqttc.Message{Topic: doc.ReportedTopic(d.ID), Payload: b, QoS: 1, Retain: true}
}

func (d *Device) report() {
	<-d.ready
	d.mu.Lock()
	m := d.reportedLocked()
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = d.cli.Publish(ctx, m) // while the broker is away, the next connection reports
}

func (d *Device) onMessage(m mqttc.Message) {
	if len(m.Payload) == 0 {
		return
	}
	des, err := doc.OpenDesired(m.Payload, d.pub)
	if err != nil || des.CheckFor(d.ID, d.tenant) != nil {
		return
	}
	d.mu.Lock()
	if des.Seq <= d.seq {
		d.mu.Unlock()
		return
	}
	d.seq = des.Seq
	var want doc.DesiredContainer
	for _, c := range des.Containers {
		want = c
	}
	if want.Version != d.cur.Version || want.Digest != d.cur.Digest {
		d.cur, d.since, d.health = want, time.Now(), doc.HealthPending
		if want.Version != 0 {
			d.installed = append(d.installed, want.Version)
		}
		if d.faulty[want.Version] {
			d.health = doc.HealthFailed
		}
	}
	d.mu.Unlock()
	go d.report() // not on the client's reader goroutine
}

func (d *Device) checkHealth() {
	d.mu.Lock()
	due := d.health == doc.HealthPending && time.Since(d.since) >= time.Duration(d.cur.Health)
	if due {
		d.health = doc.HealthHealthy
	}
	d.mu.Unlock()
	if due {
		d.report()
	}
}

// Version is what the device runs now.
func (d *Device) Version() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cur.Version
}

// History is every version the device ran, in order.
func (d *Device) History() []uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.installed)
}
