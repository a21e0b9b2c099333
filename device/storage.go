package device

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/endpoint"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/store"
)

// DefaultLowDiskBytes is the free space of the data directory below which
// the device reports that its disk is nearly full (Options.LowDiskBytes).
const DefaultLowDiskBytes = 64 << 20

// storageReportEvery spaces the log line and audit entry of one
// container's storage errors: a guest retrying a failing put in a loop
// gets one of each per interval, with the count of the others.
const storageReportEvery = time.Second

// DiskSpacer is implemented by stores that live on a file system: the
// free and total bytes of it.
type DiskSpacer interface {
	DiskSpace() (free, total uint64, err error)
}

// storageErrors counts the kv calls the store could not do, per
// container, and reports them in the container's log and the audit.
type storageErrors struct {
	mu    sync.Mutex
	m     map[string]*storageErr
	total uint64
}

type storageErr struct {
	n          uint64
	lastReport time.Time
	unreported uint64
}

func (se *storageErrors) count(container string) uint64 {
	se.mu.Lock()
	defer se.mu.Unlock()
	if e, ok := se.m[container]; ok {
		return e.n
	}
	return 0
}

func (se *storageErrors) forget(container string) {
	se.mu.Lock()
	defer se.mu.Unlock()
	delete(se.m, container)
}

// note counts one error and says whether to report it now, and how many
// went unreported before it.
func (se *storageErrors) note(container string, now time.Time) (report bool, before uint64) {
	se.mu.Lock()
	defer se.mu.Unlock()
	if se.m == nil {
		se.m = map[string]*storageErr{}
	}
	e, ok := se.m[container]
	if !ok {
		e = &storageErr{}
		se.m[container] = e
	}
	e.n++
	se.total++
	if now.Sub(e.lastReport) < storageReportEvery {
		e.unreported++
		return false, 0
	}
	before, e.unreported, e.lastReport = e.unreported, 0, now
	return true, before
}

// storageFailed is the kv endpoint's report of a call the store could not
// do: counted, and said in the container's log and the audit.
func (d *Device) storageFailed(c *endpoint.Call, op abi.Op, err error) {
	now := time.Now()
	report, before := d.storageErrs.note(c.Container(), now)
	if !report {
		return
	}
	errno := abi.EIO
	if errors.Is(err, store.ErrQuota) {
		errno = abi.ENOSPC
	}
	reason := fmt.Sprintf("storage: %v (-%v)", err, errno)
	if before > 0 {
		reason += fmt.Sprintf("; %d more since the last report", before)
	}
	d.Line(c.Container(), fmt.Sprintf("[device] kv %s failed: %s", op, reason))
	d.audit.add(mgmt.AuditEntry{Time: now, Container: c.Container(), Tenant: c.Tenant(), Endpoint: "kv", Op: op.String(), Reason: reason})
	if errno == abi.EIO {
		d.log.Warn("kv write failed", "container", c.Container(), "err", err)
	}
}

// storageInfo reports the data directory's space and the storage errors.
func (d *Device) storageInfo() *mgmt.StorageInfo {
	d.storageErrs.mu.Lock()
	si := &mgmt.StorageInfo{Errors: d.storageErrs.total}
	d.storageErrs.mu.Unlock()
	ds, ok := d.store.(DiskSpacer)
	if !ok {
		return si
	}
	free, total, err := ds.DiskSpace()
	if err != nil {
		si.Error = err.Error()
		return si
	}
	low := d.opts.LowDiskBytes
	if low == 0 {
		low = DefaultLowDiskBytes
	}
	si.FreeBytes, si.TotalBytes, si.LowSpaceBytes = free, total, low
	si.LowSpace = free < low
	return si
}
