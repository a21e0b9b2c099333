//go:build unix

package boltstore

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// lockDir takes an exclusive flock on dir/state.lock, polling until timeout.
// The lock is separate from bbolt's own lock on state.db because the file
// must be verified before bbolt is allowed to read it.
func lockDir(path string, timeout time.Duration) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("boltstore: lock file: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("boltstore: lock %s: %w", path, err)
		}
		if !time.Now().Before(deadline) {
			f.Close()
			return nil, fmt.Errorf("boltstore: %s: %w", path, ErrLocked)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// unlockDir releases the lock taken by lockDir.
func unlockDir(f *os.File) error {
	return f.Close() // closing the only descriptor drops the flock
}
