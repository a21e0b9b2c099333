package ctl

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/fleet/ctl/ctltest"
	"github.com/tinycontainer/tinycontainer/fleet/doc"
	"github.com/tinycontainer/tinycontainer/internal/testbroker"
	"github.com/tinycontainer/tinycontainer/internal/testwait"
	"github.com/tinycontainer/tinycontainer/trust"
)

func testImage(t testing.TB, key ed25519.PrivateKey, version uint64, size int) []byte {
	t.Helper()
	m := fmt.Sprintf(`{"name":"thermo","tenant":"acme","version":%d,"runtime":"wasm","code":"thermo.wasm",
		"schedule":{"trigger":"periodic","period":"200ms","budget":"5ms"},"limits":{"memory":"64KiB","storage":"1KiB"},
		"endpoints":[{"name":"log","ops":["write"]}]}`, version)
	code := make([]byte, size)
	for i := range code {
		code[i] = byte(i*7 + int(version))
	}
	img, err := trust.Pack([]byte(m), code, key)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// testFleet is a broker, n fake devices on version 1 of acme's thermo
// (installed through the fleet: a desired state is retained for each),
// and the means to run controllers against them.
type testFleet struct {
	t      *testing.T
	broker *testbroker.Broker
	key    ed25519.PrivateKey
	pub    ed25519.PublicKey
	v1, v2 []byte
	devs   []*ctltest.Device
}

func newTestFleet(t *testing.T, n int, faulty ...uint64) *testFleet {
	t.Helper()
	tf := &testFleet{t: t, broker: testbroker.StartWith(t, "allow_anonymous true\npersistence true\npersistence_location "+t.TempDir()+"/\n"), key: testKey(t, 9)}
	tf.pub = tf.key.Public().(ed25519.PublicKey)
	tf.v1, tf.v2 = testImage(t, tf.key, 1, 13000), testImage(t, tf.key, 2, 13000)
	v1 := doc.DesiredContainer{Name: "thermo", Version: 1, Digest: doc.Digest(tf.v1), Size: len(tf.v1), Health: doc.Duration(time.Millisecond)}
	for i := range n {
		id := fmt.Sprintf("dev-%03d", i)
		des, err := doc.SignDesired(doc.Desired{Tenant: "acme", Devices: []string{id}, Seq: 1, Containers: []doc.DesiredContainer{v1}}, tf.key)
		if err != nil {
			t.Fatal(err)
		}
		tf.broker.Pub(t, string(des), "-q", "1", "-r", "-s", "-t", doc.DesiredTopic(id, "acme"))
		labels := map[string]string{"site": "lab"}
		if i%2 == 1 {
			labels["floor"] = "2"
		}
		tf.devs = append(tf.devs, ctltest.Start(t, tf.broker.URL(), id, labels, "acme", tf.pub, v1, faulty...))
	}
	return tf
}

func (tf *testFleet) open(ctx context.Context) *Fleet {
	tf.t.Helper()
	return tf.openSkewed(ctx, 0)
}

// openSkewed opens a controller whose clock is skew off the machine's.
func (tf *testFleet) openSkewed(ctx context.Context, skew time.Duration) *Fleet {
	tf.t.Helper()
	f, err := Open(ctx, Options{Broker: tf.broker.URL(), Settle: 200 * time.Millisecond,
		Clock: func() time.Time { return time.Now().Add(skew) }})
	if err != nil {
		tf.t.Fatal(err)
	}
	tf.t.Cleanup(f.Close)
	testbroker.WaitFor(tf.t, "every device to report", func() bool {
		n := 0
		for _, d := range f.Devices(All()) {
			if d.Online && d.Containers == 1 {
				n++
			}
		}
		return n == len(tf.devs)
	})
	return f
}

func fastParams() Params {
	p := DefaultParams()
	p.Health = 300 * time.Millisecond
	p.Timeout = time.Minute
	p.Lease = 2 * time.Second
	return p
}

// events collects a rollout's events.
type events struct {
	mu  sync.Mutex
	all []Event
}

func (e *events) add(ev Event) { e.mu.Lock(); e.all = append(e.all, ev); e.mu.Unlock() }

func (e *events) kinds() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var k []string
	for _, ev := range e.all {
		if ev.Kind != EvDevice {
			k = append(k, fmt.Sprintf("%s/%d", ev.Kind, ev.Wave))
		}
	}
	return k
}

func TestRolloutCompletesAgainstMosquitto(t *testing.T) {
	tf := newTestFleet(t, 10)
	ctx := t.Context()
	f := tf.open(ctx)
	sel, _ := ParseSelector("site=lab")
	p := fastParams()
	p.Canary, p.Wave = 1000, 3000
	run, err := f.StartRollout(ctx, RolloutRequest{Image: tf.v2, Key: tf.key, Selector: sel, Params: p})
	if err != nil {
		t.Fatal(err)
	}
	var ev events
	state, err := run.Drive(ctx, ev.add)
	if err != nil || state != RolloutCompleted {
		t.Fatalf("state %s, err %v", state, err)
	}
	for _, d := range tf.devs {
		if v := d.Version(); v != 2 {
			t.Fatalf("%s runs version %d", d.ID, v)
		}
	}
	// A second controller reads the same rollout from the broker.
	g, err := Open(ctx, Options{Broker: tf.broker.URL(), Settle: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Watch(ctx, RolloutFilter("")); err != nil {
		t.Fatal(err)
	}
	st, err := g.Rollout(run.ID(), "", tf.pub)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != RolloutCompleted || st.Counts[JobSucceeded] != 10 || !st.Verified || len(st.Waves) != 1+3 {
		t.Fatalf("status %+v", st)
	}
	t.Logf("events %v", ev.kinds())
}

func TestFaultingCanaryAbortsAndReturnsAgainstMosquitto(t *testing.T) {
	tf := newTestFleet(t, 12, 2) // version 2 faults everywhere
	ctx := t.Context()
	f := tf.open(ctx)
	p := fastParams()
	p.Canary, p.Wave, p.MaxFailures = 2500, 2500, 0
	run, err := f.StartRollout(ctx, RolloutRequest{Image: tf.v2, Key: tf.key, Selector: All(), Params: p})
	if err != nil {
		t.Fatal(err)
	}
	var ev events
	state, err := run.Drive(ctx, ev.add)
	if err != nil || state != RolloutAborted {
		t.Fatalf("state %s, err %v", state, err)
	}
	canary := map[string]bool{}
	for _, j := range run.Rollout().Jobs {
		if j.Wave == 0 {
			canary[j.Device] = true
			if j.State != JobRolledBack {
				t.Errorf("canary %s: %s (%s)", j.Device, j.State, j.Reason)
			}
		} else if j.State != JobCanceled {
			t.Errorf("%s in wave %d: %s", j.Device, j.Wave, j.State)
		}
	}
	for _, d := range tf.devs {
		h := d.History()
		want := "[1]"
		if canary[d.ID] {
			want = "[1 2 1]"
		}
		if fmt.Sprint(h) != want || d.Version() != 1 {
			t.Errorf("%s ran %v, now %d; want %s", d.ID, h, d.Version(), want)
		}
	}
}

func TestBrokerRestartMidRollout(t *testing.T) {
	tf := newTestFleet(t, 8)
	ctx := t.Context()
	f := tf.open(ctx)
	p := fastParams()
	p.Canary, p.Wave = 2500, 2500
	p.Health = time.Second
	run, err := f.StartRollout(ctx, RolloutRequest{Image: tf.v2, Key: tf.key, Selector: All(), Params: p})
	if err != nil {
		t.Fatal(err)
	}
	var ev events
	restarted := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		state, err := run.Drive(ctx, func(e Event) {
			ev.add(e)
			// Take the broker away as the first full wave starts.
			if e.Kind == EvWave && e.Wave == 1 {
				go func() { tf.broker.Stop(); tf.broker.Start(); close(restarted) }()
			}
		})
		if err == nil && state != RolloutCompleted {
			err = fmt.Errorf("state %s", state)
		}
		done <- err
	}()
	<-restarted
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, d := range tf.devs {
		if v := d.Version(); v != 2 {
			t.Fatalf("%s runs version %d", d.ID, v)
		}
	}
	if st := f.Stats(); st.Connections < 2 {
		t.Fatalf("the controller connected %d times", st.Connections)
	}
}

func TestLeaseKeepsASecondControllerOutAndResumeTakesOver(t *testing.T) {
	testLeaseTakeover(t, 0)
}

// Regression test: the lease compared controller A's clock (the expiry it
// wrote) with controller B's. With A's clock an hour behind B's, B's
// resume took the rollout from a live A at once; with A's an hour ahead,
// B waited an hour after A died. B now counts the lease on its own clock.
func TestLeaseTakeoverWithSkewedClocks(t *testing.T) {
	for _, skew := range []time.Duration{-time.Hour, time.Hour} {
		t.Run(skew.String(), func(t *testing.T) { testLeaseTakeover(t, skew) })
	}
}

// testLeaseTakeover: controller A (its clock skew off B's) drives a
// rollout; B's resume gives up while A renews its lease, and takes over
// once A died.
func testLeaseTakeover(t *testing.T, skew time.Duration) {
	tf := newTestFleet(t, 6)
	ctx := t.Context()
	a := tf.openSkewed(ctx, skew)
	p := fastParams()
	p.Canary, p.Wave = 1000, 1000 // six waves of one device
	p.Health = 400 * time.Millisecond
	p.Lease = 3 * time.Second // renewed every second: B sees a renewal however loaded the machine
	run, err := a.StartRollout(ctx, RolloutRequest{Image: tf.v2, Key: tf.key, Selector: All(), Params: p})
	if err != nil {
		t.Fatal(err)
	}
	actx, kill := context.WithCancel(ctx)
	aDone := make(chan struct{})
	started := make(chan struct{}, 1)
	go func() {
		defer close(aDone)
		_, _ = run.Drive(actx, func(e Event) {
			if e.Kind == EvWave && e.Wave == 2 {
				select {
				case started <- struct{}{}:
				default:
				}
			}
		})
	}()
	<-started
	b := tf.open(ctx)
	// While A drives, B's resume sees A renew its lease and gives up.
	if _, err := b.ResumeRollout(ctx, run.ID(), "", tf.key, p.Lease); !errors.Is(err, ErrLease) {
		t.Fatalf("resume while A drives: %v", err)
	}
	// A dies (stops driving and disconnects without a word).
	kill()
	<-aDone
	a.Close()
	// Believing A's clock an hour ahead, B would wait an hour.
	rctx, cancel := context.WithTimeout(ctx, testwait.Guard())
	defer cancel()
	rb, err := b.ResumeRollout(rctx, run.ID(), "", tf.key, p.Lease)
	if err != nil {
		t.Fatal(err)
	}
	if rb.Rollout().Lease.Term != 2 || rb.Rollout().Lease.Holder != b.ClientID() {
		t.Fatalf("lease after takeover %+v", rb.Rollout().Lease)
	}
	state, err := rb.Drive(ctx, nil)
	if err != nil || state != RolloutCompleted {
		t.Fatalf("state %s, err %v", state, err)
	}
	for _, d := range tf.devs {
		if v := d.Version(); v != 2 {
			t.Fatalf("%s runs version %d", d.ID, v)
		}
	}
}

func TestAbortFromAnotherControllerStopsTheDriver(t *testing.T) {
	tf := newTestFleet(t, 6)
	ctx := t.Context()
	a := tf.open(ctx)
	p := fastParams()
	p.Canary, p.Wave = 1000, 1000
	p.Health = 400 * time.Millisecond
	run, err := a.StartRollout(ctx, RolloutRequest{Image: tf.v2, Key: tf.key, Selector: All(), Params: p})
	if err != nil {
		t.Fatal(err)
	}
	aErr := make(chan error, 1)
	started := make(chan struct{}, 1)
	go func() {
		_, err := run.Drive(ctx, func(e Event) {
			if e.Kind == EvWave && e.Wave == 2 {
				select {
				case started <- struct{}{}:
				default:
				}
			}
		})
		aErr <- err
	}()
	<-started
	b := tf.open(ctx)
	rb, err := b.AbortRollout(ctx, run.ID(), "", tf.key, 0, "aborted by hand")
	if err != nil {
		t.Fatal(err)
	}
	state, err := rb.Drive(ctx, nil)
	if err != nil || state != RolloutAborted {
		t.Fatalf("state %s, err %v", state, err)
	}
	if err := <-aErr; !errors.Is(err, ErrLease) {
		t.Fatalf("the first driver: %v", err)
	}
	for _, d := range tf.devs {
		if v := d.Version(); v != 1 {
			for _, j := range rb.Rollout().Jobs {
				t.Logf("%+v", j)
			}
			t.Fatalf("%s runs version %d (ran %v)", d.ID, v, d.History())
		}
	}
}
