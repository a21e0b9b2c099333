package device_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/meta"
)

// TestHammerLifecycle runs containers on two workers while other goroutines
// stop, start, update the metadata of, and read the status and logs of
// them, all at once (run with -race). The device must stay consistent: no
// panic, no deadlock, every container still answers afterwards.
func TestHammerLifecycle(t *testing.T) {
	d := runDevice(t, device.Options{Workers: 2})
	names := []string{"thermo", "blinker", "listener"}
	base := map[string]*meta.Manifest{}
	for _, n := range names {
		m, code := example(t, n)
		m.Schedule.Period = min(m.Schedule.Period, 5*time.Millisecond)
		if m.Schedule.Trigger == meta.Periodic {
			m.Schedule.Budget = min(m.Schedule.Budget, m.Schedule.Period)
		}
		install(t, d, m, code)
		base[n] = m
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex // orders the version numbers of each container's updates
	version := map[string]uint64{}
	for _, n := range names {
		wg.Add(3)
		go func() { // stop and start
			defer wg.Done()
			for ctx.Err() == nil {
				_ = d.Stop(n)
				_ = d.Start(n)
			}
		}()
		go func() { // live metadata updates, granting and revoking
			defer wg.Done()
			for k := 0; ctx.Err() == nil; k++ {
				m := base[n].Clone()
				mu.Lock()
				version[n]++
				m.Version = base[n].Version + version[n]
				mu.Unlock()
				if k%2 == 1 {
					m.Endpoints = append(m.Endpoints, meta.EndpointRule{Name: "clock", Ops: abi.OpSetOf(abi.OpRead)})
				}
				if err := d.UpdateManifest(m); err != nil {
					t.Errorf("update %s: %v", n, err)
					return
				}
			}
		}()
		go func() { // readers
			defer wg.Done()
			for ctx.Err() == nil {
				d.List()
				d.Status(n)
				d.Logs(n, 0, 10)
				d.Audit(10)
			}
		}()
	}
	wg.Wait()
	for _, n := range names {
		if err := d.Start(n); err != nil {
			t.Fatalf("start %s after the hammer: %v", n, err)
		}
		st, err := d.Status(n)
		if err != nil || st.State != "running" {
			t.Fatalf("%s after the hammer: %+v %v", n, st, err)
		}
	}
}
