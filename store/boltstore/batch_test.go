package boltstore

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tinycontainer/tinycontainer/store"
)

// holdWriter takes bbolt's writer lock until release is closed, so that
// the writes that arrive meanwhile queue for the next group commit.
func holdWriter(t *testing.T, s *Store) (release func()) {
	t.Helper()
	held, rel := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.db.Update(func(*bolt.Tx) error {
			close(held)
			<-rel
			return nil
		})
	}()
	<-held
	return func() {
		close(rel)
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// waitQueued waits until n writes have been handed to the committer since
// the store opened.
func waitQueued(t *testing.T, s *Store, n uint64) {
	t.Helper()
	for {
		s.batch.mu.Lock()
		q := s.batch.enqueued
		s.batch.mu.Unlock()
		if q >= n {
			return
		}
		time.Sleep(time.Millisecond) // polling the queue, not a verdict
	}
}

// TestGroupCommit: writes that arrive while a transaction commits share
// the next one, a write refused by its quota fails alone, and each
// returns only once its transaction committed.
func TestGroupCommit(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	release := holdWriter(t, s)
	c0, w0 := s.BatchStats()
	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			quota := uint64(1 << 20)
			if i == 7 {
				quota = 1 // refused: it must not fail the others
			}
			errs[i] = s.Put(fmt.Sprintf("c%d", i%10), "k"+strconv.Itoa(i), []byte("value"), quota)
		}()
	}
	// The committer holds one batch waiting on the lock; the rest queue.
	waitQueued(t, s, n)
	release()
	wg.Wait()
	for i, err := range errs {
		if i == 7 {
			if !errors.Is(err, store.ErrQuota) {
				t.Fatalf("put over quota: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		if v, err := s.Get(fmt.Sprintf("c%d", i%10), "k"+strconv.Itoa(i)); err != nil || string(v) != "value" {
			t.Fatalf("get %d: %q %v", i, v, err)
		}
	}
	c1, w1 := s.BatchStats()
	if w1-w0 != n || c1-c0 > 2 {
		t.Fatalf("%d writes in %d transactions, want %d in at most 2", w1-w0, c1-c0, n)
	}
	var want uint64
	for i := 17; i < n; i += 10 {
		want += uint64(len("k"+strconv.Itoa(i)) + len("value"))
	}
	if u, err := s.Usage("c7"); err != nil || u != want {
		t.Fatalf("usage of c7: %d, %v; want %d", u, err, want)
	}
}

// TestGroupCommitRetriesAlone: a write that fails inside the shared
// transaction (not one of its own checks) rolls it back, and the others
// are committed each on its own.
func TestGroupCommitRetriesAlone(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	release := holdWriter(t, s)
	boom := errors.New("boom")
	var wg sync.WaitGroup
	results := make([]error, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = s.batch.do(func(tx *bolt.Tx) error {
				b, err := tx.Bucket(bMeta).CreateBucketIfNotExists([]byte("test"))
				if err != nil {
					return err
				}
				if err := b.Put([]byte{byte(i)}, []byte("x")); err != nil {
					return err
				}
				if i == 1 {
					return boom // after a write: the transaction is spoilt
				}
				return nil
			})
		}()
	}
	waitQueued(t, s, 3)
	release()
	wg.Wait()
	if results[0] != nil || results[2] != nil || !errors.Is(results[1], boom) {
		t.Fatalf("results %v", results)
	}
	err = s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bMeta).Bucket([]byte("test"))
		if b.Get([]byte{0}) == nil || b.Get([]byte{2}) == nil || b.Get([]byte{1}) != nil {
			return errors.New("wrong writes kept")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestGroupCommitClosed: writes after Close fail with ErrClosed.
func TestGroupCommitClosed(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Put("c", "k", nil, 10); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("put after close: %v", err)
	}
}
