//go:build !unix

package boltstore

import (
	"fmt"
	"os"
	"time"
)

// lockDir opens dir/state.lock without locking it: on systems without flock
// only bbolt's own lock on state.db keeps a second device out, so a second
// opener may read state.db while the first writes it, and then fails with
// ErrLocked from bbolt instead of here.
func lockDir(path string, _ time.Duration) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("boltstore: lock file: %w", err)
	}
	return f, nil
}

func unlockDir(f *os.File) error { return f.Close() }
