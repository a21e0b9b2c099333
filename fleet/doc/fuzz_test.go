package doc

import (
	"errors"
	"testing"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// The fuzzers check that decoding never panics and that every error has
// one of the package's classes.

func classOK(t *testing.T, err error) {
	t.Helper()
	if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrSignature) {
		t.Fatalf("error %v has no class", err)
	}
}

func FuzzOpenDesired(f *testing.F) {
	pub, priv := key(1)
	good, _ := SignDesired(sampleDesired(), priv)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := OpenDesired(b, pub)
		classOK(t, err)
		if err == nil && (d.Seq == 0 || len(d.Devices) == 0) {
			t.Fatalf("accepted %+v", d)
		}
	})
}

func FuzzOpenGrant(f *testing.F) {
	pub, priv := key(1)
	good, _ := SignGrant(Grant{Tenant: "acme", Devices: []string{"d"}, Seq: 1, Revoke: true}, priv)
	f.Add(good)
	f.Add([]byte{0xd2, 0x84, 0x40, 0xa0, 0x40, 0x40})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := OpenGrant(b, pub)
		classOK(t, err)
	})
}

func FuzzRolloutMessage(f *testing.F) {
	pub, priv := key(1)
	rb, _ := SignRollout(Rollout{Tenant: "acme", ID: "r", Seq: 1, Devices: []string{"a"}, Container: "c",
		To: Ref{Version: 1, Digest: digestA}, Size: 1, Wave: 10}, priv)
	pb, _ := SignProgress(Progress{Tenant: "acme", ID: "r", Seq: 1, State: RolloutRunning}, priv)
	msg, _ := RolloutMessage{Rollout: rb, Progress: pb}.Encode()
	f.Add(msg)
	f.Add([]byte(`{"v":1,"rollout":"AA==","progress":"AA=="}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeRolloutMessage(b)
		classOK(t, err)
		if err != nil {
			return
		}
		_, err = OpenRollout(m.Rollout, pub)
		classOK(t, err)
		_, err = OpenProgress(m.Progress, pub)
		classOK(t, err)
	})
}

func FuzzDecodeStatus(f *testing.F) {
	b, _ := Status{ID: "d", Online: true, Labels: map[string]string{"a": "b"}}.Encode()
	f.Add(b)
	f.Add([]byte(`{"v":1,"id":"d","labels":{"":""}}`))
	b, _ = Status{ID: "d", Online: true, Labels: map[string]string{}, Heartbeat: Duration(DefaultHeartbeat)}.Encode()
	f.Add(b)
	f.Add([]byte(`{"v":1,"id":"d","labels":{},"heartbeat":"-1s"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := DecodeStatus(b)
		classOK(t, err)
	})
}

func FuzzDecodeReported(f *testing.F) {
	b, _ := Reported{ID: "d", Containers: []ContainerReport{{Health: HealthPending}}}.Encode()
	f.Add(b)
	b, _ = Reported{ID: "d", Storage: &mgmt.StorageInfo{FreeBytes: 1, TotalBytes: 2, LowSpace: true, Errors: 3}}.Encode()
	f.Add(b)
	f.Add([]byte(`{"v":1,"id":"d","storage":{"free_bytes":-1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := DecodeReported(b)
		classOK(t, err)
	})
}

func FuzzParseTopic(f *testing.F) {
	f.Add(DesiredTopic("dev-1", "acme"))
	f.Add(ImageTopic("acme", digestA))
	f.Add("tc/v1/dev//status")
	f.Fuzz(func(t *testing.T, s string) {
		tp, err := ParseTopic(s)
		classOK(t, err)
		if err != nil {
			return
		}
		var back string
		switch tp.Kind {
		case TopicStatus:
			back = StatusTopic(tp.Device)
		case TopicReported:
			back = ReportedTopic(tp.Device)
		case TopicGrant:
			back = GrantTopic(tp.Device, tp.Tenant)
		case TopicDesired:
			back = DesiredTopic(tp.Device, tp.Tenant)
		case TopicImage:
			back = ImageTopic(tp.Tenant, tp.Digest)
		case TopicRollout:
			back = RolloutTopic(tp.Tenant, tp.Rollout)
		}
		if back != s {
			t.Fatalf("%q parsed as %+v, rebuilt as %q", s, tp, back)
		}
	})
}
