//go:build !unix

package boltstore

import (
	"errors"
	"fmt"
)

func diskSpace(dir string) (free, total uint64, err error) {
	return 0, 0, fmt.Errorf("boltstore: free space of %s: %w", dir, errors.ErrUnsupported)
}
