package boltstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tinycontainer/tinycontainer/store"
	"github.com/tinycontainer/tinycontainer/store/storetest"
)

func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

// openFast is openTemp without fsync, for tests about logic rather than
// durability (10,000 fsyncs would take most of a minute); the crash test
// and the benchmarks keep fsync on.
func openFast(t testing.TB) *Store {
	s, _ := openTemp(t)
	s.db.NoSync = true
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openFast(t) })
}

func TestHammer(t *testing.T) {
	s := openFast(t)
	defer s.Close()
	storetest.Hammer(t, s, 4, 150)
}

func TestPersistsAcrossReopen(t *testing.T) {
	s, dir := openTemp(t)
	c := store.Container{Name: "thermo", Tenant: "acme", Version: 3, Image: []byte("img"),
		Manifest: []byte(`{"v":3}`), State: store.StateStopped, Compiled: []byte("bin")}
	for _, err := range []error{
		s.Put("thermo", "k", []byte("v"), 100),
		s.PutContainer(c),
		s.PutTenant(store.Tenant{Name: "acme", Grant: []byte("grant")}),
		s.AppendAudit(store.Audit{Time: time.Unix(5, 0), Reason: "r"}),
		s.UseCounter("owner", 9),
		s.Close(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.Get("thermo", "k"); err != nil || string(v) != "v" {
		t.Fatalf("kv after reopen: %q, %v", v, err)
	}
	if u, err := s.Usage("thermo"); err != nil || u != 2 {
		t.Fatalf("usage after reopen: %d, %v", u, err)
	}
	got, err := s.GetContainer("thermo")
	if err != nil || got.Version != 3 || got.State != store.StateStopped || string(got.Compiled) != "bin" {
		t.Fatalf("container after reopen: %+v, %v", got, err)
	}
	if tn, err := s.GetTenant("acme"); err != nil || string(tn.Grant) != "grant" {
		t.Fatalf("tenant after reopen: %+v, %v", tn, err)
	}
	if a, err := s.ListAudit(0); err != nil || len(a) != 1 || !a[0].Time.Equal(time.Unix(5, 0)) {
		t.Fatalf("audit after reopen: %+v, %v", a, err)
	}
	if err := s.UseCounter("owner", 9); !errors.Is(err, store.ErrReplay) {
		t.Fatalf("counter not persisted: %v", err)
	}
	// The audit ring continues its sequence after a reopen.
	if err := s.AppendAudit(store.Audit{Time: time.Unix(6, 0), Reason: "r2"}); err != nil {
		t.Fatal(err)
	}
	if a, err := s.ListAudit(0); err != nil || len(a) != 2 || a[1].Reason != "r2" {
		t.Fatalf("audit after append: %+v, %v", a, err)
	}
}

func TestSecondOpenIsLocked(t *testing.T) {
	s, dir := openTemp(t)
	_, err := Open(dir, Options{LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s.Close()
}

func TestRefusesForeignFiles(t *testing.T) {
	// A bbolt file of another application.
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, DBFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("users"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(dir, Options{}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("foreign bbolt file: %v, want ErrInvalid", err)
	}

	for name, data := range map[string][]byte{
		"text":        []byte("hello, this is not a database\n"),
		"zeros":       make([]byte, 64<<10),
		"short bytes": {1, 2, 3},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, DBFile), data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir, Options{}); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

// populated builds a state.db with enough data for multi-level b-trees and
// returns its bytes.
func populated(t testing.TB, containers int) []byte {
	t.Helper()
	s, dir := openTemp(t)
	for i := range containers {
		c := store.Container{Name: fmt.Sprintf("c%03d", i), Tenant: "acme", Version: uint64(i),
			Image: bytes.Repeat([]byte{byte(i)}, 600), Manifest: []byte("{}"), State: store.StateRunning}
		if err := s.PutContainer(c); err != nil {
			t.Fatal(err)
		}
		for k := range 12 {
			if err := s.Put(c.Name, fmt.Sprintf("key%02d", k), bytes.Repeat([]byte{'v'}, 40), 1<<20); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 60 {
		if err := s.AppendAudit(store.Audit{Time: time.Unix(int64(i), 0), Container: "c001", Reason: "denied"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.UseCounter("owner", 7); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, DBFile))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestCorruptionIsAnError flips bytes all over a real database: Open and use
// must report store.ErrInvalid (or succeed when the flip hit unused space),
// never panic.
func TestCorruptionIsAnError(t *testing.T) {
	orig := populated(t, 30)
	refused := 0
	rng := rand.New(rand.NewPCG(1, 2))
	for range 150 {
		data := bytes.Clone(orig)
		data[rng.IntN(len(data))] ^= byte(1 + rng.IntN(255))
		if openAndUse(t, data) != nil {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("no corruption was detected at all")
	}
	t.Logf("%d of 150 single-byte corruptions detected", refused)
}

// openAndUse opens data as a state.db and exercises every read and some
// writes; it fails the test on an error outside store.ErrInvalid.
func openAndUse(t testing.TB, data []byte) error {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, DBFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{})
	if err != nil {
		if !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("Open of corrupt file: %v (not ErrInvalid)", err)
		}
		return err
	}
	defer s.Close()
	s.db.NoSync = true
	var first error
	note := func(err error) {
		if err != nil && !errors.Is(err, store.ErrInvalid) && !errors.Is(err, store.ErrNotFound) &&
			!errors.Is(err, store.ErrQuota) && !errors.Is(err, store.ErrReplay) {
			t.Fatalf("unexpected error class: %v", err)
		}
		if first == nil && errors.Is(err, store.ErrInvalid) {
			first = err
		}
	}
	list, err := s.ListContainers()
	note(err)
	for i, c := range list {
		_, err := s.GetContainer(c.Name)
		note(err)
		_, err = s.Get(c.Name, "key03")
		note(err)
		if i%10 == 0 {
			note(s.Put(c.Name, "new", []byte("value"), 1<<20))
		}
	}
	_, err = s.ListTenants()
	note(err)
	_, err = s.ListAudit(0)
	note(err)
	note(s.AppendAudit(store.Audit{Reason: "after"}))
	note(s.UseCounter("owner", 8))
	note(s.DeleteContainer("c002"))
	return first
}

// findPage returns the id of the first page with the given flags.
func findPage(t *testing.T, data []byte, flags uint16) uint64 {
	t.Helper()
	for id := uint64(2); int(id+1)*pageSize <= len(data); id++ {
		p := data[id*pageSize:]
		if binary.LittleEndian.Uint64(p) == id && binary.LittleEndian.Uint16(p[8:]) == flags {
			return id
		}
	}
	t.Fatalf("no page with flags %#x", flags)
	return 0
}

// Regression: pointers that would send bbolt into an endless loop, unbounded
// recursion or a wild read are refused before bbolt sees them.
func TestVerifierRefusesBadPointers(t *testing.T) {
	orig := populated(t, 30)
	branch := findPage(t, orig, flagBranch)
	for name, target := range map[string]uint64{
		"self loop":       branch,
		"beyond the file": uint64(len(orig)/pageSize) + 1000,
		"meta page":       1,
	} {
		data := bytes.Clone(orig)
		// Element 0 of the branch page: pos, ksize, then the child pgid.
		binary.LittleEndian.PutUint64(data[branch*pageSize+pageHeaderSize+8:], target)
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, DBFile), data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir, Options{}); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("%s: Open gave %v, want ErrInvalid", name, err)
		}
	}
}

// Regression: a usage counter that disagrees with the kv data is corruption.
func TestUsageMismatchRefused(t *testing.T) {
	s, dir := openTemp(t)
	if err := s.Put("c", "k", []byte("v"), 10); err != nil {
		t.Fatal(err)
	}
	if err := s.update(func(tx *bolt.Tx) error { return putUint(tx.Bucket(bUsage), []byte("c"), 99) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(dir, Options{}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Open with wrong usage: %v, want ErrInvalid", err)
	}
}
