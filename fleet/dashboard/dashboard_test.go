package dashboard_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tinycontainer/tinycontainer/fleet/ctl"
	"github.com/tinycontainer/tinycontainer/fleet/dashboard"
	"github.com/tinycontainer/tinycontainer/fleet/sim/simtest"
	"github.com/tinycontainer/tinycontainer/internal/testbroker"
	"github.com/tinycontainer/tinycontainer/mgmt/web"
)

func get[T any](t *testing.T, srv *httptest.Server, path string) T {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %s %v", path, resp.StatusCode, b, err)
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v: %s", path, err, b)
	}
	return v
}

// The fleet's page against a real fleet (simulated devices through
// mosquitto, the controller's live view): the JSON the page reads has the
// devices online and healthy with their labels, the completed rollout with
// its waves, every device's container; a device that stops turns offline.
func TestDashboardOfARealFleet(t *testing.T) {
	w := simtest.Start(t, 3)
	srv := httptest.NewServer(web.NewFleetHandler(dashboard.Reader(w.Ctl), web.Options{}))
	defer srv.Close()

	devs := get[[]ctl.Device](t, srv, "/api/devices")
	if len(devs) != 3 {
		t.Fatalf("%d devices", len(devs))
	}
	for _, d := range devs {
		if !d.Online || d.Health != ctl.DeviceOK || d.Labels["sim"] != "1" || d.Containers != 1 || d.Heartbeat == "" {
			t.Errorf("device %+v", d)
		}
	}
	cs := get[[]ctl.Container](t, srv, "/api/containers")
	if len(cs) != 3 {
		t.Fatalf("%d containers", len(cs))
	}
	for _, c := range cs {
		if c.Name != "blinker" || c.Tenant != "acme" || c.State != "running" || c.Health != "healthy" || c.Rollout != w.Rollout {
			t.Errorf("container %+v", c)
		}
	}
	ros := get[[]ctl.RolloutStatus](t, srv, "/api/rollouts")
	if len(ros) != 1 || ros[0].ID != w.Rollout || ros[0].State != ctl.RolloutCompleted || len(ros[0].Waves) != 2 ||
		ros[0].Counts[ctl.JobSucceeded] != 3 {
		t.Fatalf("rollouts %+v", ros)
	}
	if st := get[ctl.Stats](t, srv, "/api/stats"); !st.Connected || st.Devices != 3 {
		t.Fatalf("stats %+v", st)
	}

	w.Devices.Devices()[1].Stop()
	testbroker.WaitFor(t, "the stopped device offline", func() bool {
		for _, d := range get[[]ctl.Device](t, srv, "/api/devices") {
			if d.ID == w.Devices.Devices()[1].ID {
				return !d.Online && d.Health == ctl.DeviceOffline
			}
		}
		return false
	})
}
