// Package boltstore is the on-disk store.Store of a device, kept in
// <dir>/state.db with go.etcd.io/bbolt. Each method is one bbolt transaction,
// committed with fsync before it returns, so after a crash every write either
// happened completely or not at all.
//
// bbolt panics (or faults on a wild pointer) when it meets a corrupt page.
// Open therefore verifies the page structure and every record before use,
// and every method turns a panic or memory fault inside bbolt into an error
// wrapping store.ErrInvalid instead of crashing the device. Such a panic can
// leave bbolt's locks held (the file was damaged while in use), so after one
// the Store is broken: every later call fails at once without entering
// bbolt, and Close does not wait for bbolt (which would never return).
package boltstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/tinycontainer/tinycontainer/store"
	"github.com/tinycontainer/tinycontainer/store/internal/rec"
)

// ErrLocked means another process (a second device) has the directory open.
var ErrLocked = errors.New("state directory is in use by another process")

// Options tune Open; the zero value is the default.
type Options struct {
	// LockTimeout is how long Open waits for another process to release
	// the directory before failing with ErrLocked (default 500ms).
	LockTimeout time.Duration
}

// File names inside the state directory.
const (
	DBFile   = "state.db"
	lockFile = "state.lock"
)

// Top-level buckets, one per concern. kv holds one sub-bucket per container;
// usage holds each container's kv usage as a big-endian u64, updated in the
// same transaction as the kv write so it never has to be recomputed.
var (
	bMeta       = []byte("meta")
	bContainers = []byte("containers")
	bTenants    = []byte("tenants")
	bKV         = []byte("kv")
	bUsage      = []byte("usage")
	bAudit      = []byte("audit")
	bCounters   = []byte("counters")

	allBuckets = [][]byte{bMeta, bContainers, bTenants, bKV, bUsage, bAudit, bCounters}

	keyFormat   = []byte("format")
	formatValue = []byte("tinycontainer-state/1")
)

// pageSize is fixed so a state directory moves between boards whose
// operating systems use different memory page sizes.
const pageSize = 4096

// Store is a device's persistent state on disk.
type Store struct {
	db    *bolt.DB
	lock  *os.File
	batch *batcher // kv writes and audit records: group commit
	dir   string
	path  string // of state.db, for messages

	// broken is the first panic recovered from bbolt (a *brokenError);
	// from then on no call enters bbolt.
	broken atomic.Pointer[brokenError]
	// recovered says what Open worked around (see Recovered).
	recovered string

	closeMu sync.Mutex
	closed  bool
}

var _ store.Store = (*Store)(nil)

// Open opens or creates dir/state.db. It fails with ErrLocked when another
// process has dir open, and with an error wrapping store.ErrInvalid when the
// file is corrupt or not a TinyContainer state database.
func Open(dir string, opts Options) (*Store, error) {
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = 500 * time.Millisecond
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("boltstore: %w", err)
	}
	lock, err := lockDir(filepath.Join(dir, lockFile), timeout)
	if err != nil {
		return nil, err
	}
	s, err := open(filepath.Join(dir, DBFile), timeout)
	if err != nil {
		unlockDir(lock)
		return nil, err
	}
	s.lock, s.dir = lock, dir
	return s, nil
}

func open(path string, timeout time.Duration) (s *Store, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer recoverCorrupt(&err)
	recovered, err := verifyFile(path)
	if err != nil {
		return nil, fmt.Errorf("boltstore: %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, PageSize: pageSize})
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("boltstore: %s: %w", path, ErrLocked)
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
			return nil, fmt.Errorf("boltstore: %s: %w: %v", path, store.ErrInvalid, err)
		}
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	s = &Store{db: db, path: path, recovered: recovered}
	// Close the db if anything below fails, also by panic (unless the
	// panic left bbolt's locks held: then Close would wait forever).
	defer func() {
		if err != nil {
			if s.broken.Load() == nil {
				db.Close()
			}
			s = nil
		}
	}()
	if err := s.initSchema(); err != nil {
		return nil, fmt.Errorf("boltstore: %s: %w", path, err)
	}
	if err := s.view(checkAll); err != nil {
		return nil, fmt.Errorf("boltstore: %s: %w", path, err)
	}
	s.batch = newBatcher(s.guarded)
	return s, nil
}

// Recovered is empty, or says what Open found damaged and worked around:
// one of the file's two meta pages (which bbolt keeps so that a write torn
// by a power cut loses only the transaction it was writing) did not check,
// so the file was opened at the transaction the other one records.
func (s *Store) Recovered() string { return s.recovered }

// recoverCorrupt turns a panic inside bbolt (which, with SetPanicOnFault,
// includes a fault on a wild pointer into the file mapping) into an error.
func recoverCorrupt(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: corrupt database: %v", store.ErrInvalid, r)
	}
}

// brokenError is the error of every call after bbolt panicked.
type brokenError struct {
	path  string
	cause any
}

func (e *brokenError) Error() string {
	return fmt.Sprintf("boltstore: %s became corrupt while in use (%v): the store reads and writes nothing more; "+
		"stop the device (when it starts it checks the file and says how to recover)", e.path, e.cause)
}

func (e *brokenError) Unwrap() error { return store.ErrInvalid }

// guarded runs fn in a bbolt transaction (write: db.Update, else db.View)
// with a corrupt file's panics and faults turned into errors. After one,
// the store is broken (see the package comment).
func (s *Store) guarded(write bool, fn func(*bolt.Tx) error) (err error) {
	if b := s.broken.Load(); b != nil {
		return b
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			b := &brokenError{path: s.path, cause: r}
			s.broken.CompareAndSwap(nil, b)
			err = b
		}
	}()
	if write {
		return s.db.Update(fn)
	}
	return s.db.View(fn)
}

func (s *Store) view(fn func(*bolt.Tx) error) error { return classify(s.guarded(false, fn)) }

func (s *Store) update(fn func(*bolt.Tx) error) error { return classify(s.guarded(true, fn)) }

// classify maps bbolt's errors onto the store's error classes.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return fmt.Errorf("boltstore: %w", store.ErrClosed)
	case errors.Is(err, store.ErrInvalid), errors.Is(err, store.ErrNotFound),
		errors.Is(err, store.ErrQuota), errors.Is(err, store.ErrReplay):
		return err
	}
	return fmt.Errorf("boltstore: %w", err)
}

// initSchema creates the buckets of a fresh file and refuses foreign files.
func (s *Store) initSchema() error {
	fresh := false
	err := s.view(func(tx *bolt.Tx) error {
		m := tx.Bucket(bMeta)
		if m == nil {
			empty := true
			_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
			if !empty {
				return fmt.Errorf("%w: bbolt file of another application", store.ErrInvalid)
			}
			fresh = true
			return nil
		}
		if f := m.Get(keyFormat); !bytes.Equal(f, formatValue) {
			return fmt.Errorf("%w: unsupported format %q", store.ErrInvalid, f)
		}
		return nil
	})
	if err != nil || !fresh {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return tx.Bucket(bMeta).Put(keyFormat, formatValue)
	})
}

// checkAll verifies every record, so corruption shows up at Open rather than
// in the middle of a device's work.
func checkAll(tx *bolt.Tx) error {
	err := tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		for _, n := range allBuckets {
			if bytes.Equal(n, name) {
				return nil
			}
		}
		return fmt.Errorf("%w: unknown bucket %q", store.ErrInvalid, name)
	})
	if err != nil {
		return err
	}
	for _, n := range allBuckets {
		if tx.Bucket(n) == nil {
			return fmt.Errorf("%w: bucket %q missing", store.ErrInvalid, n)
		}
	}
	if err := checkContainers(tx); err != nil {
		return err
	}
	if err := checkKV(tx); err != nil {
		return err
	}
	if err := checkAudit(tx); err != nil {
		return err
	}
	if err := checkFlat(tx.Bucket(bTenants), "tenant", nil); err != nil {
		return err
	}
	return checkFlat(tx.Bucket(bCounters), "signer", func(v []byte) bool { return len(v) == 8 })
}

// checkFlat checks a bucket of name -> value without sub-buckets.
func checkFlat(b *bolt.Bucket, what string, valueOK func([]byte) bool) error {
	return b.ForEach(func(k, v []byte) error {
		if err := rec.CheckName(what, string(k)); err != nil {
			return err
		}
		if v == nil || (valueOK != nil && !valueOK(v)) {
			return fmt.Errorf("%w: bad %s record %q", store.ErrInvalid, what, k)
		}
		return nil
	})
}

func checkContainers(tx *bolt.Tx) error {
	return tx.Bucket(bContainers).ForEach(func(k, v []byte) error {
		c, err := rec.DecodeContainer(v)
		if err != nil {
			return err
		}
		if c.Name != string(k) {
			return fmt.Errorf("%w: container record %q filed under %q", store.ErrInvalid, c.Name, k)
		}
		return nil
	})
}

func checkKV(tx *bolt.Tx) error {
	usage := tx.Bucket(bUsage)
	if err := checkFlat(usage, "container", func(v []byte) bool { return len(v) == 8 }); err != nil {
		return err
	}
	kv := tx.Bucket(bKV)
	err := kv.ForEach(func(name, v []byte) error {
		b := kv.Bucket(name)
		if v != nil || b == nil {
			return fmt.Errorf("%w: kv entry %q is not a bucket", store.ErrInvalid, name)
		}
		var sum uint64
		err := b.ForEach(func(k, v []byte) error {
			if v == nil || rec.CheckKV(string(name), string(k), v) != nil {
				return fmt.Errorf("%w: bad kv pair in container %q", store.ErrInvalid, name)
			}
			sum += uint64(len(k) + len(v))
			return nil
		})
		if err != nil {
			return err
		}
		if got := getUint(usage, name); got != sum {
			return fmt.Errorf("%w: container %q usage recorded %d, data holds %d", store.ErrInvalid, name, got, sum)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Every usage entry must belong to a kv bucket (the sums above matched
	// the entries that do).
	return usage.ForEach(func(k, _ []byte) error {
		if kv.Bucket(k) == nil {
			return fmt.Errorf("%w: usage recorded for container %q without kv data", store.ErrInvalid, k)
		}
		return nil
	})
}

// checkAudit verifies the ring invariant AppendAudit relies on: keys are
// contiguous big-endian sequence numbers ending at the bucket sequence.
func checkAudit(tx *bolt.Tx) error {
	b := tx.Bucket(bAudit)
	var n, next uint64
	err := b.ForEach(func(k, v []byte) error {
		if len(k) != 8 || v == nil {
			return fmt.Errorf("%w: bad audit key %x", store.ErrInvalid, k)
		}
		seq := binary.BigEndian.Uint64(k)
		if n > 0 && seq != next {
			return fmt.Errorf("%w: audit sequence jumps from %d to %d", store.ErrInvalid, next-1, seq)
		}
		if _, err := rec.DecodeAudit(v); err != nil {
			return err
		}
		n, next = n+1, seq+1
		return nil
	})
	if err != nil {
		return err
	}
	if n > store.MaxAuditRecords || (n > 0 && next-1 != b.Sequence()) {
		return fmt.Errorf("%w: audit ring of %d records ending at %d, sequence %d", store.ErrInvalid, n, next-1, b.Sequence())
	}
	return nil
}

func putUint(b *bolt.Bucket, k []byte, v uint64) error {
	return b.Put(k, binary.BigEndian.AppendUint64(nil, v))
}

// getUint reads a u64 value; 0 when absent (lengths were checked at Open).
func getUint(b *bolt.Bucket, k []byte) uint64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// Get returns a copy of the value under key.
func (s *Store) Get(container, key string) (out []byte, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bKV).Bucket([]byte(container)); b != nil {
			if v := b.Get([]byte(key)); v != nil {
				out = append([]byte{}, v...)
				return nil
			}
		}
		return fmt.Errorf("%w: kv key %q of container %q", store.ErrNotFound, key, container)
	})
	return out, err
}

// Put stores value under key within quota.
func (s *Store) Put(container, key string, value []byte, quota uint64) error {
	if err := rec.CheckKV(container, key, value); err != nil {
		return err
	}
	name, k := []byte(container), []byte(key)
	// A put past the quota is refused in a read transaction, which
	// neither waits for nor joins the shared write: a guest retrying
	// one in a loop costs the other writers nothing. The write checks
	// again (usage may have changed in between).
	err := s.view(func(tx *bolt.Tx) error {
		_, err := checkQuota(tx, name, k, value, quota)
		return err
	})
	if err != nil {
		return err
	}
	return s.batch.do(func(tx *bolt.Tx) error {
		used, err := checkQuota(tx, name, k, value, quota)
		if err != nil {
			return err
		}
		b := tx.Bucket(bKV).Bucket(name)
		if b == nil {
			var err error
			if b, err = tx.Bucket(bKV).CreateBucket(name); err != nil {
				return err
			}
		}
		if err := b.Put(k, value); err != nil {
			return err
		}
		return putUint(tx.Bucket(bUsage), name, used)
	})
}

// checkQuota returns the container's kv usage once value is under k, or
// refuses the put when that is past quota.
func checkQuota(tx *bolt.Tx, name, k, value []byte, quota uint64) (uint64, error) {
	used := getUint(tx.Bucket(bUsage), name)
	if b := tx.Bucket(bKV).Bucket(name); b != nil {
		if old := b.Get(k); old != nil {
			used -= uint64(len(k) + len(old))
		}
	}
	used += uint64(len(k) + len(value))
	if used > quota {
		return 0, fmt.Errorf("%w: container %q would use %d of %d bytes", store.ErrQuota, name, used, quota)
	}
	return used, nil
}

// Delete removes key; the container's kv bucket goes with its last key.
func (s *Store) Delete(container, key string) error {
	return s.batch.do(func(tx *bolt.Tx) error {
		name, k := []byte(container), []byte(key)
		kv := tx.Bucket(bKV)
		b := kv.Bucket(name)
		var old []byte
		if b != nil {
			old = b.Get(k)
		}
		if old == nil {
			return fmt.Errorf("%w: kv key %q of container %q", store.ErrNotFound, key, container)
		}
		usage := tx.Bucket(bUsage)
		used := getUint(usage, name) - uint64(len(k)+len(old))
		if err := b.Delete(k); err != nil {
			return err
		}
		if used == 0 {
			if k, _ := b.Cursor().First(); k == nil {
				if err := kv.DeleteBucket(name); err != nil {
					return err
				}
				return usage.Delete(name)
			}
		}
		return putUint(usage, name, used)
	})
}

// Usage returns the bytes the container's kv data occupies.
func (s *Store) Usage(container string) (used uint64, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		used = getUint(tx.Bucket(bUsage), []byte(container))
		return nil
	})
	return used, err
}

// DeleteAll removes all kv data of the container.
func (s *Store) DeleteAll(container string) error {
	if err := rec.CheckName("container", container); err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error { return deleteKV(tx, []byte(container)) })
}

func deleteKV(tx *bolt.Tx, name []byte) error {
	if err := tx.Bucket(bKV).DeleteBucket(name); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
		return err
	}
	return tx.Bucket(bUsage).Delete(name)
}

// PutContainer installs or replaces a container record.
func (s *Store) PutContainer(c store.Container) error {
	if err := rec.CheckContainer(&c); err != nil {
		return err
	}
	v := rec.EncodeContainer(&c)
	return s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bContainers).Put([]byte(c.Name), v)
	})
}

// GetContainer returns the named container.
func (s *Store) GetContainer(name string) (c store.Container, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bContainers).Get([]byte(name))
		if v == nil {
			return fmt.Errorf("%w: container %q", store.ErrNotFound, name)
		}
		c, err = rec.DecodeContainer(v)
		return err
	})
	return c, err
}

// ListContainers returns all containers, sorted by name.
func (s *Store) ListContainers() (out []store.Container, err error) {
	out = []store.Container{}
	err = s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bContainers).ForEach(func(_, v []byte) error {
			c, err := rec.DecodeContainer(v)
			out = append(out, c)
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteContainer removes the container and its kv data in one transaction.
func (s *Store) DeleteContainer(name string) error {
	return s.update(func(tx *bolt.Tx) error {
		b, k := tx.Bucket(bContainers), []byte(name)
		if b.Get(k) == nil {
			return fmt.Errorf("%w: container %q", store.ErrNotFound, name)
		}
		if err := b.Delete(k); err != nil {
			return err
		}
		return deleteKV(tx, k)
	})
}

// PutTenant installs or replaces a tenant grant.
func (s *Store) PutTenant(t store.Tenant) error {
	if err := rec.CheckTenant(&t); err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bTenants).Put([]byte(t.Name), t.Grant)
	})
}

// GetTenant returns the named tenant.
func (s *Store) GetTenant(name string) (t store.Tenant, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bTenants).Get([]byte(name))
		if v == nil {
			return fmt.Errorf("%w: tenant %q", store.ErrNotFound, name)
		}
		t = store.Tenant{Name: name, Grant: rec.Clone(v)}
		return nil
	})
	return t, err
}

// DeleteTenant removes a tenant grant.
func (s *Store) DeleteTenant(name string) error {
	return s.update(func(tx *bolt.Tx) error {
		b, k := tx.Bucket(bTenants), []byte(name)
		if b.Get(k) == nil {
			return fmt.Errorf("%w: tenant %q", store.ErrNotFound, name)
		}
		return b.Delete(k)
	})
}

// ListTenants returns all tenants, sorted by name.
func (s *Store) ListTenants() (out []store.Tenant, err error) {
	out = []store.Tenant{}
	err = s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bTenants).ForEach(func(k, v []byte) error {
			out = append(out, store.Tenant{Name: string(k), Grant: rec.Clone(v)})
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AppendAudit appends a record and drops the oldest beyond the bound. Keys
// are contiguous sequence numbers, so the count needs no scan.
func (s *Store) AppendAudit(a store.Audit) error {
	if err := rec.CheckAudit(&a); err != nil {
		return err
	}
	v := rec.EncodeAudit(&a)
	return s.batch.do(func(tx *bolt.Tx) error {
		b := tx.Bucket(bAudit)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		if err := b.Put(binary.BigEndian.AppendUint64(nil, seq), v); err != nil {
			return err
		}
		k, _ := b.Cursor().First()
		for first := binary.BigEndian.Uint64(k); seq-first >= store.MaxAuditRecords; first++ {
			if err := b.Delete(binary.BigEndian.AppendUint64(nil, first)); err != nil {
				return err
			}
		}
		return nil
	})
}

// ListAudit returns the newest limit records (all if limit <= 0), oldest first.
func (s *Store) ListAudit(limit int) (out []store.Audit, err error) {
	out = []store.Audit{}
	err = s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bAudit).Cursor()
		for k, v := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
			a, err := rec.DecodeAudit(v)
			if err != nil {
				return err
			}
			out = append(out, a)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// UseCounter records counter for signer if it is above the last one.
func (s *Store) UseCounter(signer string, counter uint64) error {
	if err := rec.CheckName("signer", signer); err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		b, k := tx.Bucket(bCounters), []byte(signer)
		if v := b.Get(k); v != nil {
			if last := binary.BigEndian.Uint64(v); counter <= last {
				return fmt.Errorf("%w: signer %q counter %d, last accepted %d", store.ErrReplay, signer, counter, last)
			}
		}
		return putUint(b, k, counter)
	})
}

// DiskSpace returns the free and total bytes of the file system holding
// the state directory.
func (s *Store) DiskSpace() (free, total uint64, err error) { return diskSpace(s.dir) }

// BatchStats reports the transactions of group commit (kv writes and
// audit records) and the writes they held: writes/commits is the mean
// batch size.
func (s *Store) BatchStats() (commits, writes uint64) { return s.batch.stats() }

// Close closes the database and releases the directory lock.
func (s *Store) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return fmt.Errorf("boltstore: %w", store.ErrClosed)
	}
	s.closed = true
	s.batch.close()
	var err error
	if s.broken.Load() == nil {
		err = s.db.Close()
	} // else bbolt may hold its own locks forever: the process's exit frees its file
	if uerr := unlockDir(s.lock); err == nil {
		err = uerr
	}
	if err != nil {
		return fmt.Errorf("boltstore: close: %w", err)
	}
	return nil
}
