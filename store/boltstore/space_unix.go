//go:build unix

package boltstore

import (
	"fmt"
	"syscall"
)

// diskSpace returns the bytes free to an unprivileged writer and the size
// of the file system holding dir.
func diskSpace(dir string) (free, total uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("boltstore: free space of %s: %w", dir, err)
	}
	bs := uint64(st.Bsize) // int32 or int64 by platform
	return uint64(st.Bavail) * bs, uint64(st.Blocks) * bs, nil
}
