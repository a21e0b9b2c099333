package device_test

import (
	"encoding/binary"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
)

// probeManifest runs the conformance suite's probe (a scripted ABI driver)
// as acme's container, activated by messages on acme/probe.
const probeManifest = `name: probe
tenant: acme
version: 1
runtime: wasm
schedule: {trigger: event, topics: ["acme/probe"], budget: 10ms, on_fault: stop, max_faults: 1}
limits: {memory: 64KiB}
endpoints:
  - {name: event, ops: [read]}
  - {name: log, ops: [write]}
  - {name: msg/acme/#, ops: [publish]}
`

// TestRateCeilingOfTheGrant: a grant's rate ceiling bounds a container
// whose manifest sets no rate; the excess calls get -EAGAIN and are counted
// as rate_limited_calls. The verdict counts results, not time: 30 calls in
// one activation against a ceiling of 3/s meet it unless the activation
// spread over ten seconds.
func TestRateCeilingOfTheGrant(t *testing.T) {
	td := newDevice(t)
	c := meta.Ceiling{Tenant: "acme", MaxMemory: 64 * meta.KiB, MaxBudget: 10 * time.Millisecond,
		MaxPriority: meta.DefaultMaxPriority, MaxCode: meta.DefaultMaxCode, MaxRate: []meta.RateCeiling{{Pattern: "msg/acme/#", N: 3}}}
	g := signGrant(t, c, acmeKey, "event:read", "log:write", "msg/acme/#:publish")
	td.mustExec(ownerKey, device.VerbTenantAdd, "", g)
	if got := td.mg.Device().RateCeilings("acme"); len(got) != 3 || got[0] != (meta.RateCeiling{Pattern: "msg/acme/#", N: 3}) {
		t.Fatalf("rate ceilings of acme: %+v", got)
	}
	code, err := os.ReadFile("../conformance/testdata/probe.wasm")
	if err != nil {
		t.Fatal(err)
	}
	m, err := meta.Parse([]byte(probeManifest))
	if err != nil {
		t.Fatal(err)
	}
	td.mustDeploy(pack(t, m, code, acmeKey))
	// A manifest rate above the ceiling is refused.
	over := variant(m, func(m *meta.Manifest) { m.Version = 2; m.Endpoints[2].Rate = &meta.Rate{N: 4, Per: time.Second} })
	_, err = td.deploy(pack(t, over, code, acmeKey))
	wantErr(t, "manifest rate above the ceiling", err, mgmt.ErrDenied)

	const calls = 30
	var p []byte
	p = append(p, 1, byte(len("msg/acme/out")))
	p = append(p, "msg/acme/out"...)
	for range calls {
		p = append(p, 2, 0x80, byte(abi.OpPublish))
		p = binary.LittleEndian.AppendUint16(p, 2)
		p = binary.LittleEndian.AppendUint16(p, 0)
		p = append(p, 'h', 'i')
	}
	before := td.status("probe").Activations
	if err := td.mg.Device().Bus().Publish("tester", "acme/probe", p); err != nil {
		t.Fatal(err)
	}
	var lines []mgmt.LogLine
	waitFor(t, "the probe to report every call", func() bool {
		lines = td.mg.Device().Logs("probe", 0, 0)
		return len(lines) >= calls+1
	})
	// The lines come during the activation, its counts at its end (with
	// the activation count last): under qemu-user the status was once
	// read in between.
	waitFor(t, "the probe's activation to end", func() bool { return td.status("probe").Activations > before })
	ok, limited := 0, 0
	for _, l := range lines[1:] {
		f := strings.Fields(l.Text)
		r, _ := strconv.Atoi(f[1])
		switch int32(r) {
		case 0:
			ok++
		case abi.EAGAIN.Result():
			limited++
		default:
			t.Fatalf("publish result %q", l.Text)
		}
	}
	if ok < 3 || limited == 0 || ok+limited != calls {
		t.Fatalf("%d admitted, %d limited of %d calls against 3/s", ok, limited, calls)
	}
	st := td.status("probe")
	if st.RateLimitedCalls != uint64(limited) {
		t.Fatalf("rate_limited_calls %d, want %d", st.RateLimitedCalls, limited)
	}
}
