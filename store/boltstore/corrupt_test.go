package boltstore

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinycontainer/tinycontainer/internal/testwait"
	"github.com/tinycontainer/tinycontainer/store"
)

// junk is n bytes that are no part of any bbolt file.
func junk(seed uint64, n int) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, 13))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// openFile writes data as a state.db and opens it, failing the test when
// Open does not return (a hang guard, not a verdict on time).
func openFile(t *testing.T, data []byte) (*Store, string, error) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, DBFile)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var s *Store
	var err error
	testwait.Call(t, "Open of a damaged state.db", func() { s, err = Open(dir, Options{}) })
	return s, path, err
}

// Regression (issue 13): a damaged state.db made the device hang in bbolt's
// write lock and ignore SIGTERM. A file that cannot be read safely is
// refused at once with an error naming it; one with a single damaged meta
// page (what a write torn by a power cut leaves) opens at the transaction
// the other records and says so.
func TestCorruptStateDBRefused(t *testing.T) {
	orig := populated(t, 30)
	overwrite := func(off int, b []byte) []byte {
		d := bytes.Clone(orig)
		copy(d[off:], b)
		return d
	}
	for name, data := range map[string][]byte{
		"both meta pages":       overwrite(0, junk(1, 2*pageSize)),
		"zero-length file":      {},
		"truncated to 100 B":    orig[:100],
		"truncated in page 1":   orig[:pageSize+pageSize/2],
		"truncated to half":     orig[:len(orig)/2],
		"all junk, same length": junk(2, len(orig)),
		"one junk page":         junk(3, pageSize),
	} {
		t.Run(name, func(t *testing.T) {
			s, path, err := openFile(t, data)
			if err == nil {
				s.Close()
				t.Fatal("Open accepted it")
			}
			if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Open: %v, want ErrInvalid naming %s", err, path)
			}
		})
	}
	for page, data := range [][]byte{overwrite(0, junk(4, pageSize)), overwrite(pageSize, junk(5, pageSize))} {
		s, _, err := openFile(t, data)
		if err != nil {
			t.Fatalf("meta page %d damaged: %v, want the file opened at the other", page, err)
		}
		if r := s.Recovered(); !strings.Contains(r, "meta page "+string(rune('0'+page))+" is damaged") {
			t.Errorf("meta page %d damaged: Recovered() = %q", page, r)
		}
		if list, err := s.ListContainers(); err != nil || len(list) != 30 {
			t.Errorf("meta page %d damaged: %d containers, %v", page, len(list), err)
		}
		if err := s.Put("c001", "after", []byte("v"), 1<<20); err != nil {
			t.Errorf("meta page %d damaged: write: %v", page, err)
		}
		testwait.Call(t, "Close", func() { err = s.Close() })
		if err != nil {
			t.Fatal(err)
		}
	}
}

// Regression (issue 13): when the file is damaged while the store has it
// open, bbolt panics inside a transaction with its locks held, and every
// later write and Close waited for them forever. Now the first call fails
// with ErrInvalid naming the file, every later one fails at once, Close
// returns, and the next Open refuses the file.
func TestCorruptWhileOpenDoesNotHang(t *testing.T) {
	s, dir := openTemp(t)
	if err := s.Put("c", "k", []byte("v"), 1<<20); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, DBFile)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(junk(6, 2*pageSize), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for i := range 3 {
		testwait.Call(t, "a write to a damaged file", func() { err = s.Put("c", "k", []byte("v2"), 1<<20) })
		if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), path) {
			t.Fatalf("write %d: %v, want ErrInvalid naming %s", i, err, path)
		}
		testwait.Call(t, "a read of a damaged file", func() { _, err = s.Get("c", "k") })
		if !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("read %d: %v, want ErrInvalid", i, err)
		}
	}
	testwait.Call(t, "Close of a broken store", func() { err = s.Close() })
	if err != nil {
		t.Fatalf("Close: %v", err)
	}
	testwait.Call(t, "Open of the damaged file", func() { _, err = Open(dir, Options{}) })
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("reopen: %v, want ErrInvalid", err)
	}
}
