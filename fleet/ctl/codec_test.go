package ctl

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/fleet/doc"
)

func testKey(t testing.TB, seed byte) ed25519.PrivateKey {
	t.Helper()
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return ed25519.NewKeyFromSeed(s)
}

func TestRolloutMessageRoundTrip(t *testing.T) {
	f := newFakeFleet(t, 30, testParams(), func(i int) string {
		if i == 3 {
			return "offline"
		}
		return "ok"
	})
	for f.r.Wave < 2 {
		f.apply(f.r.Step(f.now, f.observe))
		f.now = f.now.Add(100 * time.Millisecond)
	}
	f.r.Params.Lease = 7 * time.Second // not the default: the lease's duration travels in the message
	f.r.Claim("ctl-a", f.now)
	key := testKey(t, 1)
	var s sealed
	b, err := s.message(f.r, key)
	if err != nil {
		t.Fatal(err)
	}
	for _, pub := range []ed25519.PublicKey{key.Public().(ed25519.PublicKey), nil} {
		got, sl, err := openRollout(b, pub, f.r.Params.Lease)
		if err != nil {
			t.Fatal(err)
		}
		if sl.seq != s.seq {
			t.Fatalf("seq %d, want %d", sl.seq, s.seq)
		}
		if !reflect.DeepEqual(jobsOf(got), jobsOf(f.r)) || got.Lease != f.r.Lease || got.State != f.r.State || got.Wave != f.r.Wave ||
			got.Params != f.r.Params || got.ImageSize != f.r.ImageSize || len(got.Waves) != len(f.r.Waves) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, f.r)
		}
	}
	// Another tenant's key does not open it.
	if _, err := OpenRollout(b, testKey(t, 2).Public().(ed25519.PublicKey)); !errors.Is(err, ErrInput) {
		t.Fatalf("wrong key: %v", err)
	}
	// A second message has a higher sequence.
	seq := s.seq
	if _, err := s.message(f.r, key); err != nil || s.seq <= seq {
		t.Fatalf("seq %d after %d (%v)", s.seq, seq, err)
	}
}

// jobsOf is the part of the jobs that travels (Since stays local).
func jobsOf(r *Rollout) []Job {
	out := make([]Job, len(r.Jobs))
	for i, j := range r.Jobs {
		j.Since = time.Time{}
		out[i] = j
	}
	return out
}

func FuzzOpenRollout(f *testing.F) {
	ff := newFakeFleet(&testing.T{}, 12, testParams(), func(i int) string { return []string{"ok", "fault", "offline"}[i%3] })
	var s sealed
	key := testKey(f, 1)
	for range 30 {
		ff.apply(ff.r.Step(ff.now, ff.observe))
		ff.now = ff.now.Add(500 * time.Millisecond)
		if b, err := s.message(ff.r, key); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"v":1,"rollout":"oA==","progress":"oA=="}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := OpenRollout(b, nil)
		if err != nil {
			if !errors.Is(err, ErrInput) {
				t.Fatalf("error of no class: %v", err)
			}
			return
		}
		// Whatever decodes can be driven and sealed again.
		now := r.Updated
		r.Resumed(now)
		r.Step(now, func(string) (Observation, bool) { return Observation{Online: true, Health: HealthFailed}, true })
		r.Abort(now, "fuzz")
		r.Step(now.Add(time.Hour), func(string) (Observation, bool) { return Observation{Online: true}, true })
		var s sealed
		if _, err := s.message(r, key); err != nil {
			t.Fatalf("a decoded rollout does not seal again: %v", err)
		}
	})
}

// FuzzFromDocs reaches the consistency checks directly, with the two
// payloads as JSON (a signed envelope is hard for the fuzzer to keep
// valid).
func FuzzFromDocs(f *testing.F) {
	ff := newFakeFleet(&testing.T{}, 9, testParams(), func(i int) string { return []string{"ok", "fault", "offline"}[i%3] })
	for range 20 {
		ff.apply(ff.r.Step(ff.now, ff.observe))
		ff.now = ff.now.Add(700 * time.Millisecond)
		def, _ := json.Marshal(ff.r.definition())
		p, _ := json.Marshal(ff.r.progress(7))
		f.Add(def, p)
	}
	f.Fuzz(func(t *testing.T, defJSON, progJSON []byte) {
		var def doc.Rollout
		var p doc.Progress
		if json.Unmarshal(defJSON, &def) != nil || json.Unmarshal(progJSON, &p) != nil {
			return
		}
		r, err := fromDocs(&def, &p, time.Second)
		if err != nil {
			if !errors.Is(err, ErrInput) {
				t.Fatalf("error of no class: %v", err)
			}
			return
		}
		now := r.Updated
		r.Resumed(now)
		r.Step(now, func(string) (Observation, bool) { return Observation{Online: true, Health: HealthFailed}, true })
		r.Abort(now, "fuzz")
		r.Step(now.Add(time.Hour), func(string) (Observation, bool) { return Observation{Online: true}, true })
		if err := r.validate(); err != nil {
			t.Fatalf("driving broke the rollout: %v", err)
		}
	})
}
