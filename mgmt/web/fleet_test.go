package web

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// fakeFleet answers with fixed JSON-ready values.
type fakeFleet struct{ err error }

func (f fakeFleet) Devices(context.Context) (any, error) {
	return []map[string]any{{"id": "dev-1", "online": true, "labels": map[string]string{"site": "lab"}, "containers": 1}}, f.err
}
func (f fakeFleet) Containers(context.Context) (any, error) {
	return []map[string]any{{"device": "dev-1", "name": "thermo", "state": "running"}}, f.err
}
func (f fakeFleet) Rollouts(context.Context) (any, error) { return []map[string]any{}, f.err }
func (f fakeFleet) Stats(context.Context) (any, error) {
	return map[string]any{"connected": true}, f.err
}

func TestFleetHandler(t *testing.T) {
	h := NewFleetHandler(fakeFleet{}, Options{})
	devs := decode[[]map[string]any](t, get(t, h, "/api/devices"))
	if len(devs) != 1 || devs[0]["id"] != "dev-1" {
		t.Fatalf("devices %v", devs)
	}
	cs := decode[[]map[string]any](t, get(t, h, "/api/containers"))
	if len(cs) != 1 || cs[0]["device"] != "dev-1" {
		t.Fatalf("containers %v", cs)
	}
	if ros := decode[[]map[string]any](t, get(t, h, "/api/rollouts")); len(ros) != 0 {
		t.Fatalf("rollouts %v", ros)
	}
	for _, p := range []string{"/", "/assets/fleet.js", "/assets/common.js"} {
		if w := get(t, h, p); w.Code != http.StatusOK {
			t.Errorf("%s: %d", p, w.Code)
		}
	}
	for _, p := range []string{"/metrics", "/api/logs", "/api/nope", "/assets/fleet.html"} {
		if w := get(t, h, p); w.Code != http.StatusNotFound {
			t.Errorf("%s: %d", p, w.Code)
		}
	}
	if w := do(h, http.MethodPost, "/api/devices"); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", w.Code)
	}
	if w := get(t, h, "/api/devices?x=1"); w.Code != http.StatusBadRequest {
		t.Errorf("unknown parameter: %d", w.Code)
	}
	bad := NewFleetHandler(fakeFleet{err: fmt.Errorf("%w: broker down", mgmt.ErrUnavailable)}, Options{})
	if w := get(t, bad, "/api/devices"); w.Code != http.StatusServiceUnavailable {
		t.Errorf("broker down: %d", w.Code)
	}
	if _, err := ServeFleet(context.Background(), "0.0.0.0:0", fakeFleet{}, Options{}); err == nil {
		t.Error("a remote address without AllowRemote")
	}
}
