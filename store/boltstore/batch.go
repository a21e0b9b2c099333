package boltstore

import (
	"errors"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/tinycontainer/tinycontainer/store"
)

// Group commit (docs/notes/store.md). Writers that arrive while a
// transaction commits wait together and share the next one: one fsync for
// all of them. A lone writer commits at once (no added delay); under load
// a batch holds what arrived during the previous commit. Each writer
// returns only after the transaction holding its write is durable, so an
// acknowledged write is exactly as durable as with one transaction each.
//
// A write whose check fails (quota, missing key, replay) fails before it
// changes anything, so it fails alone and its batch commits. Any other
// error inside the transaction rolls the batch back, and each of its
// writes is then retried in a transaction of its own, so one bad write
// never fails another. A failed commit (a full or broken disk) fails
// every write of the batch: none of them happened.

// maxBatch bounds the writes of one transaction.
const maxBatch = 1024

type batchOp struct {
	fn   func(*bolt.Tx) error
	err  error
	done chan struct{}
}

type batcher struct {
	tx func(write bool, fn func(*bolt.Tx) error) error // Store.guarded

	mu     sync.Mutex
	queue  []*batchOp
	closed bool
	wake   chan struct{} // one token: the queue is not empty
	exited chan struct{}

	// commits and writes count transactions and the writes they held;
	// enqueued counts the writes handed in.
	commits, writes, enqueued uint64
}

func newBatcher(tx func(bool, func(*bolt.Tx) error) error) *batcher {
	b := &batcher{tx: tx, wake: make(chan struct{}, 1), exited: make(chan struct{})}
	go b.run()
	return b
}

// errCheck marks the errors of a write's own checks: the write changed
// nothing before returning it.
func cleanFailure(err error) bool {
	return errors.Is(err, store.ErrQuota) || errors.Is(err, store.ErrNotFound) ||
		errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrReplay)
}

// do runs fn in a shared transaction and returns once it is durable.
func (b *batcher) do(fn func(*bolt.Tx) error) error {
	op := &batchOp{fn: fn, done: make(chan struct{})}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return fmt.Errorf("boltstore: %w", store.ErrClosed)
	}
	b.queue = append(b.queue, op)
	b.enqueued++
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	<-op.done
	return op.err
}

// close lets queued writes finish, refuses new ones and stops.
func (b *batcher) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	<-b.exited
}

func (b *batcher) run() {
	defer close(b.exited)
	for range b.wake {
		for {
			b.mu.Lock()
			n := min(len(b.queue), maxBatch)
			ops := b.queue[:n:n]
			b.queue = b.queue[n:]
			if len(b.queue) == 0 {
				b.queue = nil
			}
			closed := b.closed
			b.mu.Unlock()
			if n == 0 {
				if closed {
					return
				}
				break
			}
			b.commit(ops)
		}
	}
}

// errRetrySolo aborts a shared transaction after a write failed in it.
var errRetrySolo = errors.New("retry each write alone")

func (b *batcher) commit(ops []*batchOp) {
	err := b.tx(true, func(tx *bolt.Tx) error {
		for _, op := range ops {
			op.err = op.fn(tx)
			if op.err != nil && !cleanFailure(op.err) {
				return errRetrySolo
			}
		}
		return nil
	})
	switch {
	case errors.Is(err, errRetrySolo):
		for _, op := range ops {
			op.err = classify(b.tx(true, op.fn))
			b.count(1)
			close(op.done)
		}
		return
	case err != nil:
		err = classify(err)
		for _, op := range ops {
			op.err = err
		}
	default:
		for _, op := range ops {
			if op.err != nil {
				op.err = classify(op.err)
			}
		}
	}
	b.count(len(ops))
	for _, op := range ops {
		close(op.done)
	}
}

func (b *batcher) count(writes int) {
	b.mu.Lock()
	b.commits++
	b.writes += uint64(writes)
	b.mu.Unlock()
}

// stats returns the transactions committed and the writes they held.
func (b *batcher) stats() (commits, writes uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.commits, b.writes
}
