package browsertest

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tinycontainer/tinycontainer/fleet/dashboard"
	"github.com/tinycontainer/tinycontainer/fleet/sim/simtest"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/mgmt/web"
)

// fakeFleet is a fleet the test changes while the page watches it; its
// objects have the fields of fleet devices, fleet ps and fleet status.
type fakeFleet struct {
	mu       sync.Mutex
	devices  []map[string]any
	cs       []map[string]any
	rollouts []map[string]any
}

func (f *fakeFleet) get(v *[]map[string]any) (any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), *v...), nil
}

func (f *fakeFleet) Devices(context.Context) (any, error)    { return f.get(&f.devices) }
func (f *fakeFleet) Containers(context.Context) (any, error) { return f.get(&f.cs) }
func (f *fakeFleet) Rollouts(context.Context) (any, error)   { return f.get(&f.rollouts) }
func (f *fakeFleet) Stats(context.Context) (any, error) {
	return map[string]any{"connected": true}, nil
}

func container(device, name, tenant, state string) map[string]any {
	c := mgmt.ContainerStatus{Name: name, Tenant: tenant, Runtime: "wasm", State: state, Version: 2}
	return map[string]any{"device": device, "name": c.Name, "tenant": c.Tenant, "runtime": c.Runtime, "state": c.State,
		"version": c.Version, "activations": 10, "faults": 0, "missed_deadlines": 0, "denied_calls": 0, "cpu_time_us": 100,
		"memory_bytes": 65536, "preemptions": 0, "throttled_us": 0, "rate_limited_calls": 0}
}

// TestBrowserFleet shows a fleet: devices online and offline with labels,
// a rollout's waves with their failures, every device's containers, and a
// fault turning a container's row red without a reload.
func TestBrowserFleet(t *testing.T) {
	ctx := browser(t)
	now := time.Now().UTC().Format(time.RFC3339)
	f := &fakeFleet{
		devices: []map[string]any{
			{"id": "dev-1", "labels": map[string]string{"site": "lab"}, "online": true, "last_seen": now, "containers": 1, "version": "v0.9"},
			{"id": "dev-2", "labels": map[string]string{"site": "plant"}, "online": false, "last_seen": now, "containers": 1, "version": "v0.9"},
		},
		cs: []map[string]any{container("dev-1", "thermo", "acme", "running"), container("dev-2", "thermo", "acme", "running")},
		rollouts: []map[string]any{{"id": "thermo-v2-3fa9c1", "tenant": "acme", "container": "thermo", "version": 2,
			"state": "IN_PROGRESS", "wave": 1, "counts": map[string]int{"SUCCEEDED": 2, "FAILED": 1},
			"params": map[string]string{"max_failures": "50%"},
			"waves": []map[string]any{{"index": 0, "size": 1, "counts": map[string]int{"SUCCEEDED": 1}},
				{"index": 1, "size": 2, "counts": map[string]int{"SUCCEEDED": 1, "FAILED": 1}}}}},
	}
	srv := httptest.NewServer(web.NewFleetHandler(f, web.Options{}))
	defer srv.Close()
	if _, err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "both devices, online and offline, with labels", `(() => {
	  const r = [...document.querySelectorAll('#devices tbody tr')].map(r => r.innerText);
	  return r.length === 2 && r[0].includes('dev-1') && r[0].includes('online') && r[0].includes('site=lab') &&
	    r[1].includes('dev-2') && r[1].includes('offline') && r[1].includes('site=plant'); })()`)
	eventually(t, ctx, "the rollout and its waves", `(() => {
	  const r = document.querySelector('#rollouts [data-rollout="thermo-v2-3fa9c1"]');
	  return !!r && r.innerText.includes('canary') && r.innerText.includes('1/1 updated') &&
	    r.innerText.includes('wave 1') && r.innerText.includes('1/2 updated · 1 failed') && r.innerText.includes('in progress'); })()`)
	eventually(t, ctx, "each device's containers", `(() => {
	  const r = [...document.querySelectorAll('#containers tbody tr')];
	  return r.length === 2 && r[0].dataset.device === 'dev-1' && r[1].innerText.includes('dev-2'); })()`)
	eval[int](t, ctx, `window.__mark = 7`)
	f.mu.Lock()
	f.cs[1]["state"] = "faulted"
	f.mu.Unlock()
	eventually(t, ctx, "dev-2's thermo turning red", `(() => {
	  const r = document.querySelector('#containers tr[data-device="dev-2"]');
	  if (!r) return false;
	  const [R, G, B] = getComputedStyle(r).backgroundColor.match(/\d+/g).map(Number);
	  return R > G + 20 && R > B + 20 && r.innerText.includes('faulted'); })()`)
	if eval[int](t, ctx, `window.__mark`) != 7 {
		t.Fatal("the page reloaded")
	}
	screenshot(t, ctx, "dashboard-fleet.png")
}

// TestBrowserRealFleet shows a real fleet (simulated devices through
// mosquitto, the controller's live view, as `fleet dashboard` serves it):
// its devices online with their labels, the completed rollout's waves all
// updated, every device's container; a device that stops turns offline
// without a reload.
func TestBrowserRealFleet(t *testing.T) {
	ctx := browser(t)
	w := simtest.Start(t, 3)
	srv := httptest.NewServer(web.NewFleetHandler(dashboard.Reader(w.Ctl), web.Options{}))
	defer srv.Close()
	if _, err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "three devices online, labelled", `(() => {
	  const r = [...document.querySelectorAll('#devices tbody tr')];
	  return r.length === 3 && r.every(r => r.dataset.health === 'ok' && r.innerText.includes('online') &&
	    r.innerText.includes('sim=1')) && r[0].dataset.device === 'sim-0000'; })()`)
	eventually(t, ctx, "the completed rollout, every wave updated", `(() => {
	  const r = document.querySelector('#rollouts [data-rollout="`+w.Rollout+`"]');
	  return !!r && r.innerText.includes('completed') && r.innerText.includes('canary') &&
	    r.innerText.includes('2/2 updated') && r.innerText.includes('1/1 updated'); })()`)
	eventually(t, ctx, "every device's blinker", `(() => {
	  const r = [...document.querySelectorAll('#containers tbody tr')];
	  return r.length === 3 && r.every(r => r.innerText.includes('blinker') && r.innerText.includes('running')); })()`)
	eval[int](t, ctx, `window.__mark = 7`)
	w.Devices.Devices()[1].Stop()
	eventually(t, ctx, "sim-0001 offline", `(() => {
	  const r = document.querySelector('#devices tr[data-device="sim-0001"]');
	  return !!r && r.dataset.health === 'offline' && r.innerText.includes('offline'); })()`)
	if eval[int](t, ctx, `window.__mark`) != 7 {
		t.Fatal("the page reloaded")
	}
	screenshot(t, ctx, "dashboard-real-fleet.png")
}
