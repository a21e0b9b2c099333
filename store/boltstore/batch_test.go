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
// the next one, a write refused by its quota fails alone (before the
// batch, or inside it when another write of the batch used the room), and
// each returns only once its transaction committed.
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
	// Two puts of one container, each within its quota alone but not
	// together: both pass the check before the batch, one fails inside.
	qerrs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			qerrs[i] = s.Put("q", "k"+strconv.Itoa(i), make([]byte, 15), 20)
		}()
	}
	// The committer holds one batch waiting on the lock; the rest queue.
	// The put past its quota (7) is refused before it.
	waitQueued(t, s, n-1+2)
	release()
	wg.Wait()
	if (qerrs[0] == nil) == (qerrs[1] == nil) || !errors.Is(errors.Join(qerrs...), store.ErrQuota) {
		t.Fatalf("two puts past the quota together: %v", qerrs)
	}
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
	if w1-w0 != n+1 || c1-c0 > 2 {
		t.Fatalf("%d writes in %d transactions, want %d in at most 2", w1-w0, c1-c0, n+1)
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

// TestQuotaRefusedPutSkipsTransaction is issue 12's last storage finding:
// a put past the quota was refused inside the shared write transaction,
// so a guest retrying one in a loop made every other writer's commit wait
// for it. It is refused before: while the writer lock is held, 1,000
// refused puts all return, and none reaches the committer.
func TestQuotaRefusedPutSkipsTransaction(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Put("c", "k", make([]byte, 10), 16); err != nil {
		t.Fatal(err)
	}
	commits, writes := s.BatchStats()
	release := holdWriter(t, s)
	for i := range 1000 {
		if err := s.Put("c", "k"+strconv.Itoa(i), make([]byte, 10), 16); !errors.Is(err, store.ErrQuota) {
			release()
			t.Fatalf("put %d: %v, want the quota", i, err)
		}
	}
	release()
	s.batch.mu.Lock()
	enqueued := s.batch.enqueued
	s.batch.mu.Unlock()
	if c, w := s.BatchStats(); c != commits || w != writes || enqueued != writes {
		t.Fatalf("commits %d -> %d, writes %d -> %d, enqueued %d", commits, c, writes, w, enqueued)
	}
	// The write still checks: a put within the quota goes through.
	if err := s.Put("c", "k", make([]byte, 14), 16); err != nil {
		t.Fatal(err)
	}
}
