package doc

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/trust"
)

func key(n int) (ed25519.PublicKey, ed25519.PrivateKey) {
	seed := sha256.Sum256([]byte(fmt.Sprintf("fleet doc test key %d", n)))
	priv := ed25519.NewKeyFromSeed(seed[:])
	return priv.Public().(ed25519.PublicKey), priv
}

const digestA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
const digestB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

func wantErr(t *testing.T, err, class error) {
	t.Helper()
	if !errors.Is(err, class) {
		t.Fatalf("got %v, want %v", err, class)
	}
}

func sampleDesired() Desired {
	return Desired{Tenant: "acme", Devices: []string{"dev-1", "dev-2"}, Seq: 7,
		Containers: []DesiredContainer{{Name: "thermo", Version: 3, Digest: digestA, Size: 100, Health: Duration(2 * time.Second), Rollout: "r1"}}}
}

func TestDesiredRoundTripAndRefusals(t *testing.T) {
	pub, priv := key(1)
	otherPub, otherPriv := key(2)
	b, err := SignDesired(sampleDesired(), priv)
	if err != nil {
		t.Fatal(err)
	}
	d, err := OpenDesired(b, pub)
	if err != nil {
		t.Fatal(err)
	}
	if d.Seq != 7 || d.Containers[0].Health != Duration(2*time.Second) || d.Containers[0].Rollout != "r1" {
		t.Fatalf("decoded %+v", d)
	}
	if err := d.CheckFor("dev-2", "acme"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, d.CheckFor("dev-3", "acme"), ErrNotForDevice)
	wantErr(t, d.CheckFor("dev-1", "globex"), ErrNotForDevice)
	_, err = OpenDesired(b, otherPub)
	wantErr(t, err, ErrSignature)
	if id, err := DesiredSigner(b); err != nil || id != trust.KeyID(pub) {
		t.Fatalf("signer %q %v", id, err)
	}
	// Unsigned, empty, and another kind of signed document.
	_, err = OpenDesired([]byte(`{"v":1,"tenant":"acme","devices":["dev-1"],"seq":9,"containers":[]}`), pub)
	wantErr(t, err, ErrMalformed)
	_, err = OpenDesired(nil, pub)
	wantErr(t, err, ErrMalformed)
	g, _ := SignGrant(Grant{Tenant: "acme", Devices: []string{"dev-1"}, Seq: 1, Revoke: true}, otherPriv)
	_, err = OpenDesired(g, otherPub)
	wantErr(t, err, ErrMalformed)
	// A payload with an unknown field, signed, is refused.
	p, _ := trust.SignDoc(trust.DocDesired, []byte(`{"v":1,"tenant":"acme","devices":["dev-1"],"seq":9,"containers":[],"extra":1}`), priv)
	_, err = OpenDesired(p, pub)
	wantErr(t, err, ErrMalformed)
}

func TestDesiredValidation(t *testing.T) {
	_, priv := key(1)
	for name, mut := range map[string]func(*Desired){
		"no devices":      func(d *Desired) { d.Devices = nil },
		"wildcard device": func(d *Desired) { d.Devices = []string{"+"} },
		"zero seq":        func(d *Desired) { d.Seq = 0 },
		"bad tenant":      func(d *Desired) { d.Tenant = "Acme" },
		"bad digest":      func(d *Desired) { d.Containers[0].Digest = "abc" },
		"zero version":    func(d *Desired) { d.Containers[0].Version = 0 },
		"zero size":       func(d *Desired) { d.Containers[0].Size = 0 },
		"twice":           func(d *Desired) { d.Containers = append(d.Containers, d.Containers[0]) },
		"revert upward":   func(d *Desired) { d.Containers[0].Revert = &Revert{From: Ref{Version: 2, Digest: digestB}} },
	} {
		d := sampleDesired()
		mut(&d)
		if _, err := SignDesired(d, priv); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	d := sampleDesired()
	d.Containers[0].Version = 2
	d.Containers[0].Revert = &Revert{From: Ref{Version: 3, Digest: digestB}}
	if _, err := SignDesired(d, priv); err != nil {
		t.Fatal(err)
	}
}

func TestGrantRoundTrip(t *testing.T) {
	ownerPub, owner := key(1)
	tenantPub, _ := key(2)
	inner, err := trust.SignGrant([]byte(`{"tenant":"acme"}`), tenantPub, owner)
	if err != nil {
		t.Fatal(err)
	}
	b, err := SignGrant(Grant{Tenant: "acme", Devices: []string{"dev-1"}, Seq: 1, Grant: inner}, owner)
	if err != nil {
		t.Fatal(err)
	}
	g, err := OpenGrant(b, ownerPub)
	if err != nil || string(g.Grant) != string(inner) {
		t.Fatalf("%v %+v", err, g)
	}
	wantErr(t, g.CheckFor("dev-9", "acme"), ErrNotForDevice)
	_, err = OpenGrant(b, tenantPub)
	wantErr(t, err, ErrSignature)
	if _, err := SignGrant(Grant{Tenant: "acme", Devices: []string{"dev-1"}, Seq: 1}, owner); !errors.Is(err, ErrMalformed) {
		t.Fatalf("empty grant: %v", err)
	}
	if _, err := SignGrant(Grant{Tenant: "acme", Devices: []string{"dev-1"}, Seq: 1, Revoke: true, Grant: inner}, owner); !errors.Is(err, ErrMalformed) {
		t.Fatalf("revoke with grant: %v", err)
	}
}

func TestRolloutRoundTrip(t *testing.T) {
	pub, priv := key(1)
	r := Rollout{Tenant: "acme", ID: "r-1", Seq: 1, Devices: []string{"a", "b"}, Container: "thermo",
		To: Ref{Version: 3, Digest: digestA}, Size: 10, Health: Duration(time.Second), Canary: 5, Wave: 25, MaxFailures: 10}
	rb, err := SignRollout(r, priv)
	if err != nil {
		t.Fatal(err)
	}
	p := Progress{Tenant: "acme", ID: "r-1", Seq: 4, State: RolloutRunning, Waves: 3,
		Lease:   Lease{Holder: "ctl-1", Expires: time.Unix(100, 0).UTC()},
		Devices: []DeviceProgress{{ID: "a", State: DeviceUpdating, From: &Ref{Version: 2, Digest: digestB}}}}
	pb, err := SignProgress(p, priv)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := RolloutMessage{Rollout: rb, Progress: pb}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeRolloutMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	gr, err := OpenRollout(m.Rollout, pub)
	if err != nil || gr.To != r.To || gr.Wave != 25 {
		t.Fatalf("%v %+v", err, gr)
	}
	gp, err := OpenProgress(m.Progress, pub)
	if err != nil || gp.Lease.Holder != "ctl-1" || gp.Devices[0].From.Version != 2 {
		t.Fatalf("%v %+v", err, gp)
	}
	// The two parts cannot be swapped.
	_, err = OpenRollout(m.Progress, pub)
	wantErr(t, err, ErrMalformed)
	bad := r
	bad.Wave = 0
	if _, err := SignRollout(bad, priv); !errors.Is(err, ErrMalformed) {
		t.Fatal(err)
	}
}

func TestStatusAndReported(t *testing.T) {
	s := Status{ID: "dev-1", Online: true, Labels: map[string]string{"site": "lab"}, Version: "v1", Session: 3}
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeStatus(b)
	if err != nil || !got.Online || got.Labels["site"] != "lab" || got.Session != 3 {
		t.Fatalf("%v %+v", err, got)
	}
	for _, bad := range []string{"", "{", `{"v":2,"id":"x"}`, `{"v":1,"id":"a/b"}`, `{"v":1,"id":"x"} {}`} {
		if _, err := DecodeStatus([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("status %q: %v", bad, err)
		}
	}
	r := Reported{ID: "dev-1", Session: 3, Seq: 9, Containers: []ContainerReport{{
		ContainerStatus: mgmt.ContainerStatus{Name: "thermo", Tenant: "acme", State: "running", Version: 3},
		Digest:          digestA, Health: HealthHealthy}}, Tenants: []TenantReport{{Tenant: "acme", DesiredSeq: 7}}}
	b, err = r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"name":"thermo"`) || !strings.Contains(string(b), `"health":"healthy"`) {
		t.Fatalf("reported JSON %s", b)
	}
	gr, err := DecodeReported(b)
	if err != nil || gr.Containers[0].Name != "thermo" || gr.Containers[0].Health != HealthHealthy {
		t.Fatalf("%v %+v", err, gr)
	}
}

func TestTopics(t *testing.T) {
	for _, c := range []struct {
		topic string
		want  Topic
	}{
		{StatusTopic("dev-1"), Topic{Kind: TopicStatus, Device: "dev-1"}},
		{ReportedTopic("dev-1"), Topic{Kind: TopicReported, Device: "dev-1"}},
		{GrantTopic("dev-1", "acme"), Topic{Kind: TopicGrant, Device: "dev-1", Tenant: "acme"}},
		{DesiredTopic("dev-1", "acme"), Topic{Kind: TopicDesired, Device: "dev-1", Tenant: "acme"}},
		{ImageTopic("acme", digestA), Topic{Kind: TopicImage, Tenant: "acme", Digest: digestA}},
		{RolloutTopic("acme", "r-1"), Topic{Kind: TopicRollout, Tenant: "acme", Rollout: "r-1"}},
	} {
		got, err := ParseTopic(c.topic)
		if err != nil || got != c.want {
			t.Errorf("%s: %+v %v", c.topic, got, err)
		}
	}
	for _, bad := range []string{"", "tc/v1", "tc/v1/dev/+/status", "tc/v1/dev/a/grant/ACME", "tc/v1/img/acme/xyz",
		"tc/v2/dev/a/status", "tc/v1/dev/a/status/x", "tc/v1/rollout/acme/#"} {
		if _, err := ParseTopic(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestCheckSeq(t *testing.T) {
	if dup, err := CheckSeq(3, digestA, 4, digestB); dup || err != nil {
		t.Fatal(dup, err)
	}
	if dup, err := CheckSeq(3, digestA, 3, digestA); !dup || err != nil {
		t.Fatal(dup, err)
	}
	if _, err := CheckSeq(3, digestA, 3, digestB); !errors.Is(err, ErrStale) {
		t.Fatal(err)
	}
	if _, err := CheckSeq(3, digestA, 2, digestB); !errors.Is(err, ErrStale) {
		t.Fatal(err)
	}
	if err := CheckDigest([]byte("x"), Digest([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	if err := CheckDigest([]byte("y"), Digest([]byte("x"))); !errors.Is(err, ErrMalformed) {
		t.Fatal(err)
	}
}
