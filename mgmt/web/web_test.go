package web

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tinycontainer/tinycontainer/internal/testwait"
	"github.com/tinycontainer/tinycontainer/mgmt"
)

// get answers a GET of target on h.
func get(t *testing.T, h http.Handler, target string) *httptest.ResponseRecorder {
	t.Helper()
	return do(h, http.MethodGet, target)
}

func do(h http.Handler, method, target string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	r.Host = "127.0.0.1:8080"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("%v: %s", err, w.Body)
	}
	return v
}

func TestAPIContainersAreThePsObjects(t *testing.T) {
	f := newFake(5)
	h := NewHandler(f, Options{})
	got := decode[[]mgmt.ContainerStatus](t, get(t, h, "/api/containers"))
	if !slices.Equal(got, f.cs) {
		t.Fatalf("got %+v\nwant %+v", got, f.cs)
	}
	// The same JSON field names as ps --json.
	raw := decode[[]map[string]any](t, get(t, h, "/api/containers"))
	for _, k := range []string{"name", "tenant", "runtime", "state", "version", "activations", "faults", "last_fault",
		"missed_deadlines", "endpoint_calls", "denied_calls", "cpu_time_us", "throttled_us", "preemptions",
		"rate_limited_calls", "log_lines_dropped", "storage_errors"} {
		if _, ok := raw[0][k]; !ok {
			t.Errorf("field %q missing", k)
		}
	}
	one := decode[mgmt.ContainerStatus](t, get(t, h, "/api/containers/c0003"))
	if one != f.cs[3] {
		t.Fatalf("one: %+v", one)
	}
	if w := get(t, h, "/api/containers/nope"); w.Code != http.StatusNotFound {
		t.Fatalf("missing container: %d", w.Code)
	}
	empty := NewHandler(newFake(0), Options{})
	if w := get(t, empty, "/api/containers"); strings.TrimSpace(w.Body.String()) != "[]" {
		t.Fatalf("no containers: %s", w.Body)
	}
}

func TestAPIInfoAndAudit(t *testing.T) {
	f := newFake(2)
	for i := range 150 {
		f.audit = append(f.audit, mgmt.AuditEntry{Time: time.Unix(int64(i), 0).UTC(), Container: "c0001", Tenant: "t1",
			Endpoint: "sensor/temperature", Op: "open", Reason: fmt.Sprintf("not granted %d", i)})
	}
	h := NewHandler(f, Options{})
	info := decode[mgmt.DeviceInfo](t, get(t, h, "/api/info"))
	if info.Watchdog.Stopped != 3 || info.UptimeS != 12.5 {
		t.Fatalf("info %+v", info)
	}
	es := decode[[]mgmt.AuditEntry](t, get(t, h, "/api/audit"))
	if len(es) != defAudit || es[len(es)-1] != f.audit[149] {
		t.Fatalf("default audit: %d entries, last %+v", len(es), es[len(es)-1])
	}
	es = decode[[]mgmt.AuditEntry](t, get(t, h, "/api/audit?limit=2"))
	if len(es) != 2 || es[0].Reason != "not granted 148" {
		t.Fatalf("audit?limit=2: %+v", es)
	}
}

func TestAPILogs(t *testing.T) {
	f := newFake(3)
	for i := range 2500 {
		f.log(fmt.Sprintf("c%04d", i%3), fmt.Sprintf("line %d", i))
	}
	h := NewHandler(f, Options{})
	ls := decode[[]mgmt.LogLine](t, get(t, h, "/api/logs"))
	if len(ls) != defLogLines || ls[len(ls)-1].Seq != 2500 {
		t.Fatalf("default: %d lines, last %d", len(ls), ls[len(ls)-1].Seq)
	}
	ls = decode[[]mgmt.LogLine](t, get(t, h, "/api/logs?after=10&max=5"))
	if len(ls) != 5 || ls[0].Seq != 11 {
		t.Fatalf("after=10&max=5: %+v", ls)
	}
	ls = decode[[]mgmt.LogLine](t, get(t, h, "/api/logs?container=c0001&tail=4"))
	if len(ls) != 4 || ls[3].Seq != 2498 || ls[0].Container != "c0001" {
		t.Fatalf("container tail: %+v", ls)
	}
	ls = decode[[]mgmt.LogLine](t, get(t, h, "/api/logs?after=2500"))
	if len(ls) != 0 {
		t.Fatalf("nothing new: %+v", ls)
	}
	// More lines retained than pages read: the tail is still the newest.
	for i := 2500; i < 15000; i++ {
		name := "c0000"
		if i%100 == 0 {
			name = "c0002" // sparse
		}
		f.log(name, fmt.Sprintf("line %d", i))
	}
	ls = decode[[]mgmt.LogLine](t, get(t, h, "/api/logs?tail=3"))
	if len(ls) != 3 || ls[0].Seq != 14998 || ls[2].Seq != 15000 {
		t.Fatalf("tail of many: %+v", ls)
	}
	ls = decode[[]mgmt.LogLine](t, get(t, h, "/api/logs?container=c0002&tail=2"))
	if len(ls) != 2 || ls[0].Text != "line 14800" || ls[1].Text != "line 14900" {
		t.Fatalf("tail of a sparse container: %+v", ls)
	}
	ls = decode[[]mgmt.LogLine](t, get(t, h, "/api/logs?container=c0001&tail=2"))
	if len(ls) != 2 || ls[1].Seq != 2498 {
		t.Fatalf("tail of a container that stopped logging long ago: %+v", ls)
	}
	if w := get(t, h, "/api/logs?container=nope"); w.Code != http.StatusNotFound {
		t.Fatalf("unknown container: %d %s", w.Code, w.Body)
	}
}

func TestUnknownPathsAre404(t *testing.T) {
	h := NewHandler(newFake(1), Options{})
	for _, p := range []string{"/nope", "/api", "/api/", "/api/nope", "/api/containers/c0000/x", "/assets/", "/assets/nope.js",
		"/assets/device.html", "/metrics/x", "/index.html", "/%2e%2e/etc/passwd", "/assets/%f2", "/assets/a%00b"} {
		w := get(t, h, p)
		if w.Code != http.StatusNotFound && w.Code != http.StatusMovedPermanently {
			t.Errorf("%s: %d", p, w.Code)
		}
	}
	for _, p := range []string{"/", "/assets/common.js", "/assets/device.js", "/assets/style.css", "/metrics", "/api/info"} {
		if w := get(t, h, p); w.Code != http.StatusOK {
			t.Errorf("%s: %d", p, w.Code)
		}
	}
}

func TestOnlyGETAndHEAD(t *testing.T) {
	f := newFake(1)
	h := NewHandler(f, Options{})
	for _, p := range []string{"/", "/api/containers", "/api/containers/c0000", "/api/logs", "/api/audit", "/api/info", "/metrics", "/nope"} {
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, "OPTIONS", "TRACE", "BREW"} {
			w := do(h, m, p)
			if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d allow %q", m, p, w.Code, w.Header().Get("Allow"))
			}
		}
		if w := do(h, http.MethodHead, p); p != "/nope" && (w.Code != http.StatusOK || w.Body.Len() != 0) {
			t.Errorf("HEAD %s: %d, %d bytes", p, w.Code, w.Body.Len())
		}
	}
	if f.reads != 0 && f.reads > 8 {
		t.Errorf("refused requests read the device %d times", f.reads)
	}
}

func TestBadQueries(t *testing.T) {
	h := NewHandler(newFake(2), Options{})
	for _, q := range []string{
		"/api/logs?after=-1", "/api/logs?after=x", "/api/logs?after=99999999999999999999999",
		"/api/logs?max=0", "/api/logs?max=1001", "/api/logs?tail=0", "/api/logs?max=1&tail=1",
		"/api/logs?after=1&after=2", "/api/logs?bogus=1", "/api/logs?%zz", "/api/logs?after=%",
		"/api/logs?container=" + strings.Repeat("a", 200),
		"/api/audit?limit=0", "/api/audit?limit=1e3", "/api/audit?limit=1001", "/api/audit?limit=",
		"/api/containers?x=1", "/api/info?" + strings.Repeat("a=1&", 200),
		"/api/containers/" + strings.Repeat("n", 300),
	} {
		w := get(t, h, q)
		if w.Code != http.StatusBadRequest {
			t.Errorf("%.80s: %d %s", q, w.Code, w.Body)
			continue
		}
		var e struct{ Error string }
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
			t.Errorf("%.80s: error body %q", q, w.Body)
		}
	}
}

func TestHostMustBeLoopbackUnlessRemoteAllowed(t *testing.T) {
	local, remote := NewHandler(newFake(1), Options{}), NewHandler(newFake(1), Options{AllowRemote: true})
	for host, ok := range map[string]bool{"127.0.0.1:8080": true, "localhost:1": true, "LOCALHOST": true, "[::1]:80": true,
		"127.9.9.9": true, "evil.example": false, "evil.example:8080": false, "10.0.0.1:80": false, "": false} {
		r := httptest.NewRequest(http.MethodGet, "/api/info", nil)
		r.Host = host
		w := httptest.NewRecorder()
		local.ServeHTTP(w, r)
		if (w.Code == http.StatusOK) != ok {
			t.Errorf("loopback only, Host %q: %d", host, w.Code)
		}
		w = httptest.NewRecorder()
		remote.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Errorf("remote allowed, Host %q: %d", host, w.Code)
		}
	}
}

func TestDeviceErrorsKeepTheirClass(t *testing.T) {
	f := newFake(1)
	h := NewHandler(f, Options{})
	for err, want := range map[error]int{
		fmt.Errorf("%w: x", mgmt.ErrUnavailable): http.StatusServiceUnavailable,
		fmt.Errorf("%w: x", mgmt.ErrNotFound):    http.StatusNotFound,
		errors.New("boom"):                       http.StatusInternalServerError,
	} {
		f.mu.Lock()
		f.err = err
		f.mu.Unlock()
		for _, p := range []string{"/api/containers", "/api/info", "/api/audit", "/api/logs"} {
			if w := get(t, h, p); w.Code != want {
				t.Errorf("%v on %s: %d", err, p, w.Code)
			}
		}
		if w := get(t, h, "/metrics"); w.Code != http.StatusInternalServerError {
			t.Errorf("%v on /metrics: %d", err, w.Code)
		}
	}
}

func TestPageIsSelfContained(t *testing.T) {
	h := NewHandler(newFake(1), Options{})
	w := get(t, h, "/")
	if !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("content type %q", w.Header().Get("Content-Type"))
	}
	csp := w.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'self'") {
		t.Fatalf("CSP %q", csp)
	}
	// Nothing from another host: no CDN, no fonts from elsewhere.
	for _, p := range []string{"/", "/assets/common.js", "/assets/device.js", "/assets/style.css"} {
		body := get(t, h, p).Body.String()
		for _, bad := range []string{"http://", "https://", "//cdn", "@import"} {
			if i := strings.Index(body, bad); i >= 0 && !strings.Contains(body[i:min(len(body), i+40)], "www.w3.org/2000/svg") {
				t.Errorf("%s refers to %q: %.60s", p, bad, body[i:])
			}
		}
	}
}

// scrape reads /metrics of h and parses it with the Prometheus text
// parser: name -> samples.
func scrape(t testing.TB, h http.Handler) map[string][]sample {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	r.Host = "127.0.0.1"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", w.Code, w.Body)
	}
	return parseMetrics(t, w.Body)
}

type sample struct {
	typ    string
	labels map[string]string
	value  float64
}

func parseMetrics(t testing.TB, body io.Reader) map[string][]sample {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]sample{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			s := sample{typ: f.GetType().String(), labels: map[string]string{}}
			for _, l := range m.GetLabel() {
				s.labels[l.GetName()] = l.GetValue()
			}
			switch s.typ {
			case "COUNTER":
				s.value = m.GetCounter().GetValue()
			case "GAUGE":
				s.value = m.GetGauge().GetValue()
			default:
				t.Fatalf("%s: unexpected type %s", name, s.typ)
			}
			out[name] = append(out[name], s)
		}
	}
	return out
}

// find returns the value of name with every label of want.
func find(t testing.TB, ms map[string][]sample, name string, want map[string]string) float64 {
	t.Helper()
next:
	for _, s := range ms[name] {
		for k, v := range want {
			if s.labels[k] != v {
				continue next
			}
		}
		return s.value
	}
	t.Fatalf("%s%v not found", name, want)
	return 0
}

func TestMetricsHaveTheSpecNamesAndLabels(t *testing.T) {
	f := newFake(4)
	f.cs[2].State = mgmt.StateFaulted
	f.cs[2].Faults = 3
	f.info.Containers = map[string]int{mgmt.StateRunning: 3, mgmt.StateFaulted: 1}
	f.info.MQTT = &mgmt.BridgeStats{Connected: true, Sent: 11, Received: 4}
	f.info.Storage = &mgmt.StorageInfo{FreeBytes: 1 << 30, TotalBytes: 8 << 30, LowSpace: true, Errors: 5}
	ms := scrape(t, NewHandler(f, Options{}))
	counters := []string{"activations_total", "faults_total", "missed_deadlines_total", "endpoint_calls_total",
		"denied_calls_total", "cpu_seconds_total", "throttled_seconds_total", "preemptions_total", "rate_limited_calls_total"}
	for _, n := range append(counters, "memory_bytes") {
		name := "tinycontainer_" + n
		if len(ms[name]) != 4 {
			t.Errorf("%s: %d samples", name, len(ms[name]))
			continue
		}
		for _, s := range ms[name] {
			if len(s.labels) != 3 || s.labels["container"] == "" || s.labels["tenant"] == "" || s.labels["runtime"] == "" {
				t.Errorf("%s labels %v", name, s.labels)
			}
			if strings.HasSuffix(n, "_total") && s.typ != "COUNTER" || n == "memory_bytes" && s.typ != "GAUGE" {
				t.Errorf("%s is a %s", name, s.typ)
			}
		}
	}
	c3 := map[string]string{"container": "c0003", "tenant": "t0", "runtime": "ebpf"}
	for name, want := range map[string]float64{
		"tinycontainer_activations_total":        30,
		"tinycontainer_cpu_seconds_total":        0.0045,
		"tinycontainer_throttled_seconds_total":  3e-6,
		"tinycontainer_preemptions_total":        3,
		"tinycontainer_rate_limited_calls_total": 2,
		"tinycontainer_memory_bytes":             65536,
	} {
		if got := find(t, ms, name, c3); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	c2 := map[string]string{"container": "c0002", "tenant": "t2", "runtime": "wasm"}
	if got := find(t, ms, "tinycontainer_faults_total", c2); got != 3 {
		t.Errorf("faults %v", got)
	}
	for st, want := range map[string]float64{"faulted": 1, "running": 0, "stopped": 0} {
		if got := find(t, ms, "tinycontainer_container_state", map[string]string{"container": "c0002", "state": st}); got != want {
			t.Errorf("state %s = %v", st, got)
		}
	}
	for name, want := range map[string]float64{
		"tinycontainer_up": 1, "tinycontainer_uptime_seconds": 12.5, "tinycontainer_bus_published_total": 7,
		"tinycontainer_bus_dropped_total": 1, "tinycontainer_bus_subscriptions": 2, "tinycontainer_mqtt_connected": 1,
		"tinycontainer_mqtt_sent_total": 11, "tinycontainer_mqtt_received_total": 4,
		"tinycontainer_watchdog_stopped_total": 3, "tinycontainer_device_storage_free_bytes": 1 << 30,
		"tinycontainer_device_storage_total_bytes": 8 << 30, "tinycontainer_device_storage_low_space": 1,
		"tinycontainer_device_storage_errors_total": 5, "tinycontainer_watchdog_overshoot_p99_seconds": 200e-6,
		"tinycontainer_watchdog_overshoot_max_seconds": 900e-6,
	} {
		if got := find(t, ms, name, nil); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	for st, want := range map[string]float64{"running": 3, "faulted": 1, "stopped": 0} {
		if got := find(t, ms, "tinycontainer_containers", map[string]string{"state": st}); got != want {
			t.Errorf("containers{state=%s} = %v", st, got)
		}
	}
	if got := find(t, ms, "tinycontainer_runtime_info", map[string]string{"runtime": "ebpf", "engine": "machine code"}); got != 1 {
		t.Errorf("runtime_info %v", got)
	}
	// No broker: no MQTT series.
	f.info.MQTT = nil
	if ms := scrape(t, NewHandler(f, Options{})); len(ms["tinycontainer_mqtt_connected"]) != 0 {
		t.Errorf("mqtt series without a broker")
	}
}

func TestServeRefusesRemoteAddresses(t *testing.T) {
	ctx := context.Background()
	for _, addr := range []string{":0", "0.0.0.0:0", "[::]:0", "10.1.2.3:80", "example.com:80"} {
		if s, err := Serve(ctx, addr, newFake(0), Options{}); !errors.Is(err, mgmt.ErrDenied) {
			if s != nil {
				s.Close()
			}
			t.Errorf("%s: %v", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1", "127.0.0.1:x", "127.0.0.1:99999", ""} {
		if _, err := Serve(ctx, addr, newFake(0), Options{}); !errors.Is(err, mgmt.ErrInvalid) {
			t.Errorf("%q: %v", addr, err)
		}
	}
	s, err := Serve(ctx, "127.0.0.1:0", newFake(1), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	resp, err := http.Get(s.URL() + "api/info")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if _, err := Serve(ctx, "127.0.0.1:0", nil, Options{}); !errors.Is(err, mgmt.ErrInvalid) {
		t.Fatalf("nil device: %v", err)
	}
}

// The families built without a registry pass the registry's own checks
// (valid names and labels, one series per label set, consistent types)
// and come in the order it would give them.
func TestGatheredFamiliesAreConsistent(t *testing.T) {
	f := newFake(37)
	f.cs[5].State, f.cs[9].State = mgmt.StateFaulted, mgmt.StateStopped
	f.info.MQTT = &mgmt.BridgeStats{}
	f.info.Storage = &mgmt.StorageInfo{TotalBytes: 1}
	f.info.Runtimes = append(f.info.Runtimes, f.info.Runtimes[0]) // a duplicate must not make two series
	slices.Reverse(f.cs)                                          // whatever order the device lists in
	g := &gatherer{src: f, timeout: testwait.Guard()}
	checked, err := prometheus.Gatherers{g}.Gather()
	if err != nil {
		t.Fatal(err)
	}
	ours, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	key := func(fams []*dto.MetricFamily) []string {
		var out []string
		for _, fam := range fams {
			for _, m := range fam.GetMetric() {
				var ls []string
				for _, l := range m.GetLabel() {
					ls = append(ls, l.GetName()+"="+l.GetValue())
				}
				out = append(out, fam.GetName()+"{"+strings.Join(ls, ",")+"}")
			}
		}
		return out
	}
	if a, b := key(ours), key(checked); !slices.Equal(a, b) {
		for i := range min(len(a), len(b)) {
			if a[i] != b[i] {
				t.Fatalf("series %d differs from the registry's: %s, registry %s", i, a[i], b[i])
			}
		}
		t.Fatalf("%d series, the registry %d", len(a), len(b))
	}
	if n := len(key(ours)); n != 37*(len(perContainer)+3)+31 { // up, uptime, 3 states, 2 runtimes, 7 bus, 9 mqtt, 4 storage, 4 watchdog
		t.Errorf("%d series", n)
	}
}

func TestMetricsGzip(t *testing.T) {
	h := NewHandler(newFake(20), Options{})
	r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	r.Host = "127.0.0.1"
	r.Header.Set("Accept-Encoding", "br;q=1, gzip;q=0.5")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK || w.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("status %d, encoding %q", w.Code, w.Header().Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ms := parseMetrics(t, zr); len(ms["tinycontainer_activations_total"]) != 20 {
		t.Fatalf("%d activation series", len(ms["tinycontainer_activations_total"]))
	}
	for accept, want := range map[string]bool{"gzip": true, "GZIP ; q=0.1": true, "deflate, gzip": true, "gzip;q=0": false,
		"gzip; q=0.000": false, "identity": false, "": false, "xgzip": false} {
		if got := acceptsGzip(accept); got != want {
			t.Errorf("acceptsGzip(%q) = %v", accept, got)
		}
	}
}
