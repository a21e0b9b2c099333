package device_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/store/boltstore"
	"github.com/tinycontainer/tinycontainer/store/memstore"
)

// brokenDisk is a store whose kv writes of thermo fail once broken is set, like a
// full or failing disk under bbolt.
type brokenDisk struct {
	*memstore.Store
	broken atomic.Bool
}

func (b *brokenDisk) Put(c, k string, v []byte, quota uint64) error {
	if b.broken.Load() && c == "thermo" {
		return errors.New("write state.db: no space left on device")
	}
	return b.Store.Put(c, k, v, quota)
}

// TestKVFailuresSurface is issue 12's finding: kv puts on a full disk
// failed silently (no count, no log, no audit). They are counted in the
// container's storage_errors, said in its log and the audit (once per
// second however often the guest retries), and in info; and so are puts
// past the quota.
func TestKVFailuresSurface(t *testing.T) {
	st := &brokenDisk{Store: memstore.New()}
	d := runDevice(t, device.Options{Store: st})
	m, code := example(t, "thermo")
	m.Schedule.Period = 10 * time.Millisecond
	install(t, d, m, code)
	tight := variant(m, func(m *meta.Manifest) { m.Name, m.Limits.Storage = "tight", 2 })
	install(t, d, tight, code)
	waitFor(t, "thermo's first reading stored", func() bool {
		_, err := st.Store.Get("thermo", "last")
		return err == nil
	})
	st.broken.Store(true)
	waitFor(t, "storage errors counted", func() bool {
		a, _ := d.Status("thermo")
		b, _ := d.Status("tight")
		return a.StorageErrors >= 3 && b.StorageErrors >= 3
	})
	for _, c := range []struct{ name, want string }{{"thermo", "-EIO"}, {"tight", "-ENOSPC"}} {
		var found bool
		for _, l := range d.Logs(c.name, 0, 0) {
			if strings.HasPrefix(l.Text, "[device] kv put failed") && strings.Contains(l.Text, c.want) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no log line saying the put failed with %s", c.name, c.want)
		}
		found = false
		for _, a := range d.Audit(0) {
			if a.Container == c.name && a.Endpoint == "kv" && a.Op == "put" && strings.Contains(a.Reason, c.want) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no audit entry for the failed put", c.name)
		}
	}
	if si := d.Info().Storage; si == nil || si.Errors < 6 {
		t.Fatalf("info storage: %+v", si)
	}
}

// TestInfoReportsLowDisk: info tells the free space of the data directory
// and says it is low below the threshold, before writes fail.
func TestInfoReportsLowDisk(t *testing.T) {
	st, err := boltstore.Open(t.TempDir(), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, c := range []struct {
		threshold uint64
		low       bool
	}{{1, false}, {1 << 62, true}} {
		d := runDevice(t, device.Options{Store: st, LowDiskBytes: c.threshold})
		si := d.Info().Storage
		if si == nil || si.FreeBytes == 0 || si.TotalBytes < si.FreeBytes || si.LowSpace != c.low || si.LowSpaceBytes != c.threshold {
			t.Fatalf("threshold %d: %+v", c.threshold, si)
		}
	}
}
