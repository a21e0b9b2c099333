package web

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// gatherer reads the device when scraped, so /metrics costs nothing
// between scrapes and always shows what `ps` would. It builds the metric
// families itself, already sorted and with one label set per series,
// instead of going through a registry: at 1,000 containers the registry's
// per-series checks and sorting were a third of a scrape (RATIONALE.md).
// promhttp and expfmt still negotiate, encode and compress the answer.
type gatherer struct {
	src     mgmt.Reader
	timeout time.Duration
}

var _ prometheus.Gatherer = (*gatherer)(nil)

// family describes one metric family.
type family struct {
	name, help string
	typ        dto.MetricType
}

var (
	counter = dto.MetricType_COUNTER
	gauge   = dto.MetricType_GAUGE
)

// perContainer are the metrics of one container, each labelled container,
// tenant and runtime (SPEC section 9 names the first ten).
var perContainer = []struct {
	family
	value func(*mgmt.ContainerStatus) float64
}{
	{family{"activations_total", "Activations run.", counter},
		func(c *mgmt.ContainerStatus) float64 { return float64(c.Activations) }},
	{family{"faults_total", "Activations that faulted (budget, trap, memory).", counter},
		func(c *mgmt.ContainerStatus) float64 { return float64(c.Faults) }},
	{family{"missed_deadlines_total", "Periodic activations that started after their next period was due.", counter},
		func(c *mgmt.ContainerStatus) float64 { return float64(c.MissedDeadlines) }},
	{family{"endpoint_calls_total", "Endpoint calls made.", counter},
		func(c *mgmt.ContainerStatus) float64 { return float64(c.EndpointCalls) }},
	{family{"denied_calls_total", "Endpoint calls refused by the metadata in force.", counter},
		func(c *mgmt.ContainerStatus) float64 { return float64(c.DeniedCalls) }},
	{family{"cpu_seconds_total", "Thread CPU time the container's activations used.", counter},
		func(c *mgmt.ContainerStatus) float64 { return float64(c.CPUTimeUS) / 1e6 }},
	{family{"throttled_seconds_total", "Time the container was held back by its tenant's CPU share.", counter},
		func(c *mgmt.ContainerStatus) float64 { return float64(c.ThrottledUS) / 1e6 }},
	{family{"preemptions_total", "Times an activation was suspended for other work.", counter},
		func(c *mgmt.ContainerStatus) float64 { return float64(c.Preemptions) }},
	{family{"rate_limited_calls_total", "Endpoint calls refused by a rate ceiling.", counter},
		func(c *mgmt.ContainerStatus) float64 { return float64(c.RateLimitedCalls) }},
	{family{"memory_bytes", "Linear memory (WebAssembly) or data (eBPF) of the container's instance.", gauge},
		func(c *mgmt.ContainerStatus) float64 { return float64(c.MemoryBytes) }},
	{family{"storage_bytes", "Bytes the container keeps in kv storage.", gauge},
		func(c *mgmt.ContainerStatus) float64 { return float64(c.StorageBytes) }},
	{family{"storage_errors_total", "kv writes that failed (quota or store).", counter},
		func(c *mgmt.ContainerStatus) float64 { return float64(c.StorageErrors) }},
	{family{"log_lines_dropped_total", "Log lines evicted or refused.", counter},
		func(c *mgmt.ContainerStatus) float64 { return float64(c.LogLinesDropped) }},
	{family{"messages_received_total", "Messages queued for an event-triggered container.", counter},
		func(c *mgmt.ContainerStatus) float64 { return float64(c.MessagesReceived) }},
	{family{"messages_dropped_total", "Messages dropped, oldest first, from the container's full queue.", counter},
		func(c *mgmt.ContainerStatus) float64 { return float64(c.MessagesDropped) }},
	{family{"container_version", "Version of the metadata in force.", gauge},
		func(c *mgmt.ContainerStatus) float64 { return float64(c.Version) }},
}

// perDevice are the device-wide metrics without labels; value reports
// false when the device has no such part (no MQTT bridge, no state on
// disk).
var perDevice = []struct {
	family
	value func(*mgmt.DeviceInfo) (float64, bool)
}{
	{family{"bus_published_total", "Messages published on the device's bus.", counter}, bus(func(b *mgmt.BusStats) uint64 { return b.Published })},
	{family{"bus_delivered_total", "Messages delivered, one per matching subscription.", counter}, bus(func(b *mgmt.BusStats) uint64 { return b.Delivered })},
	{family{"bus_dropped_total", "Messages evicted from a full subscription queue.", counter}, bus(func(b *mgmt.BusStats) uint64 { return b.Dropped })},
	{family{"bus_unmatched_total", "Messages no subscription matched.", counter}, bus(func(b *mgmt.BusStats) uint64 { return b.Unmatched })},
	{family{"bus_rejected_total", "Messages refused as invalid or oversized.", counter}, bus(func(b *mgmt.BusStats) uint64 { return b.Rejected })},
	{family{"bus_uplink_errors_total", "Publishes the broker bridge refused.", counter}, bus(func(b *mgmt.BusStats) uint64 { return b.UplinkErrors })},
	{family{"bus_subscriptions", "Live subscriptions.", gauge}, bus(func(b *mgmt.BusStats) uint64 { return uint64(b.Subscriptions) })},

	{family{"mqtt_connected", "1 when the bridge to the MQTT broker is connected.", gauge}, mqtt(func(m *mgmt.BridgeStats) float64 { return boolValue(m.Connected) })},
	{family{"mqtt_connects_total", "Connections made to the broker.", counter}, mqtt(func(m *mgmt.BridgeStats) float64 { return float64(m.Connects) })},
	{family{"mqtt_connect_errors_total", "Failed connection attempts.", counter}, mqtt(func(m *mgmt.BridgeStats) float64 { return float64(m.ConnectErrors) })},
	{family{"mqtt_sent_total", "Messages sent to the broker.", counter}, mqtt(func(m *mgmt.BridgeStats) float64 { return float64(m.Sent) })},
	{family{"mqtt_queued", "Messages waiting to be sent.", gauge}, mqtt(func(m *mgmt.BridgeStats) float64 { return float64(m.Queued) })},
	{family{"mqtt_out_dropped_total", "Outgoing messages dropped.", counter}, mqtt(func(m *mgmt.BridgeStats) float64 { return float64(m.OutDropped) })},
	{family{"mqtt_received_total", "Messages received from the broker.", counter}, mqtt(func(m *mgmt.BridgeStats) float64 { return float64(m.Received) })},
	{family{"mqtt_in_dropped_total", "Incoming messages dropped.", counter}, mqtt(func(m *mgmt.BridgeStats) float64 { return float64(m.InDropped) })},
	{family{"mqtt_subscribe_errors_total", "Subscriptions the broker refused.", counter}, mqtt(func(m *mgmt.BridgeStats) float64 { return float64(m.SubscribeErrors) })},

	{family{"device_storage_free_bytes", "Free space where the device keeps its state.", gauge},
		storage(func(s *mgmt.StorageInfo) (float64, bool) { return float64(s.FreeBytes), s.TotalBytes > 0 })},
	{family{"device_storage_total_bytes", "Size of the file system where the device keeps its state.", gauge},
		storage(func(s *mgmt.StorageInfo) (float64, bool) { return float64(s.TotalBytes), s.TotalBytes > 0 })},
	{family{"device_storage_low_space", "1 when the free space fell below the device's low-space threshold.", gauge},
		storage(func(s *mgmt.StorageInfo) (float64, bool) { return boolValue(s.LowSpace), true })},
	{family{"device_storage_errors_total", "kv calls the store could not do, every container together.", counter},
		storage(func(s *mgmt.StorageInfo) (float64, bool) { return float64(s.Errors), true })},

	{family{"watchdog_stopped_total", "Runaway activations the watchdog stopped at their budget.", counter},
		watchdog(func(w *mgmt.WatchdogStats) float64 { return float64(w.Stopped) })},
	{family{"watchdog_overshoot_p50_seconds", "Median time past the deadline a recent runaway activation took to stop.", gauge},
		watchdog(func(w *mgmt.WatchdogStats) float64 { return float64(w.OvershootP50US) / 1e6 })},
	{family{"watchdog_overshoot_p99_seconds", "99th percentile of the time past the deadline recent runaway activations took to stop.", gauge},
		watchdog(func(w *mgmt.WatchdogStats) float64 { return float64(w.OvershootP99US) / 1e6 })},
	{family{"watchdog_overshoot_max_seconds", "Longest time past the deadline a recent runaway activation took to stop.", gauge},
		watchdog(func(w *mgmt.WatchdogStats) float64 { return float64(w.OvershootMaxUS) / 1e6 })},
}

// bus, mqtt, storage and watchdog read one part of the device's info.
func bus(f func(*mgmt.BusStats) uint64) func(*mgmt.DeviceInfo) (float64, bool) {
	return func(d *mgmt.DeviceInfo) (float64, bool) { return float64(f(&d.Bus)), true }
}

func mqtt(f func(*mgmt.BridgeStats) float64) func(*mgmt.DeviceInfo) (float64, bool) {
	return func(d *mgmt.DeviceInfo) (float64, bool) {
		if d.MQTT == nil {
			return 0, false
		}
		return f(d.MQTT), true
	}
}

func storage(f func(*mgmt.StorageInfo) (float64, bool)) func(*mgmt.DeviceInfo) (float64, bool) {
	return func(d *mgmt.DeviceInfo) (float64, bool) {
		if d.Storage == nil {
			return 0, false
		}
		return f(d.Storage)
	}
}

func watchdog(f func(*mgmt.WatchdogStats) float64) func(*mgmt.DeviceInfo) (float64, bool) {
	return func(d *mgmt.DeviceInfo) (float64, bool) { return f(&d.Watchdog), true }
}

var stateFamily = family{"container_state",
	"1 for the container's state (running, stopped, faulted), 0 for the others.", gauge}

// states are the container states, in the words of `ps`.
var states = []string{mgmt.StateRunning, mgmt.StateStopped, mgmt.StateFaulted}

// Gather implements prometheus.Gatherer: one read of the containers and
// one of the device per scrape.
func (g *gatherer) Gather() ([]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	defer cancel()
	cs, err := g.src.List(ctx)
	if err != nil {
		return nil, err
	}
	info, err := g.src.Info(ctx)
	if err != nil {
		return nil, err
	}
	// Series of a family must be in label order: by container name, then
	// (the other labels being the container's) by state.
	slices.SortFunc(cs, func(a, b mgmt.ContainerStatus) int { return strings.Compare(a.Name, b.Name) })
	var b builder
	b.grow(len(cs)*(len(perContainer)+len(states)), len(cs)*4)
	labels := make([][]*dto.LabelPair, len(cs))
	for i := range cs {
		c := &cs[i]
		labels[i] = b.labels("container", c.Name, "runtime", c.Runtime, "tenant", c.Tenant)
	}
	var fams []*dto.MetricFamily
	for _, m := range perContainer {
		f := b.family(m.family)
		f.Metric = make([]*dto.Metric, 0, len(cs))
		for i := range cs {
			f.Metric = append(f.Metric, b.metric(m.typ, m.value(&cs[i]), labels[i]))
		}
		fams = append(fams, f)
	}
	f := b.family(stateFamily)
	f.Metric = make([]*dto.Metric, 0, len(cs)*len(sortedStates))
	statePairs := map[string]*dto.LabelPair{}
	for _, st := range sortedStates {
		statePairs[st] = b.pair("state", st)
	}
	stateLabels := make([]*dto.LabelPair, 0, 4*len(cs)*len(sortedStates))
	for i := range cs {
		c, l := &cs[i], labels[i]
		for _, st := range sortedStates {
			// container, runtime, state, tenant: in name order.
			stateLabels = append(stateLabels, l[0], l[1], statePairs[st], l[2])
			ls := stateLabels[len(stateLabels)-4 : len(stateLabels) : len(stateLabels)]
			f.Metric = append(f.Metric, b.metric(gauge, boolValue(c.State == st), ls))
		}
	}
	fams = append(fams, f)
	fams = append(fams, deviceFamilies(&b, info)...)
	fams = append(fams, b.single(family{"up", "1 when the device could be read at this scrape.", gauge}, 1))
	slices.SortFunc(fams, func(x, y *dto.MetricFamily) int { return strings.Compare(x.GetName(), y.GetName()) })
	return fams, nil
}

// sortedStates are the states in label order.
var sortedStates = func() []string { s := slices.Clone(states); slices.Sort(s); return s }()

func deviceFamilies(b *builder, info mgmt.DeviceInfo) []*dto.MetricFamily {
	var fams []*dto.MetricFamily
	one := func(f family, v float64) { fams = append(fams, b.single(f, v)) }
	one(family{"uptime_seconds", "Time since the device started.", gauge}, info.UptimeS)
	byState := b.family(family{"containers", "Containers by state.", gauge})
	for _, st := range sortedStates {
		byState.Metric = append(byState.Metric, b.metric(gauge, float64(info.Containers[st]), b.labels("state", st)))
	}
	fams = append(fams, byState)
	if len(info.Runtimes) > 0 {
		rts := b.family(family{"runtime_info", "The device's runtimes and how each runs guests (engine).", gauge})
		rs := slices.Clone(info.Runtimes)
		slices.SortFunc(rs, func(x, y mgmt.RuntimeInfo) int {
			return strings.Compare(x.Engine+"\x00"+x.Kind, y.Engine+"\x00"+y.Kind)
		})
		for _, r := range slices.CompactFunc(rs, func(x, y mgmt.RuntimeInfo) bool { return x == y }) {
			rts.Metric = append(rts.Metric, b.metric(gauge, 1, b.labels("engine", r.Engine, "runtime", r.Kind)))
		}
		fams = append(fams, rts)
	}
	for _, m := range perDevice {
		if v, ok := m.value(&info); ok {
			one(m.family, v)
		}
	}
	return fams
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// builder allocates a scrape's metrics in a few large blocks rather than
// one small allocation per series.
type builder struct {
	metrics  []dto.Metric
	values   []float64
	counters []dto.Counter
	gauges   []dto.Gauge
	pairs    []dto.LabelPair
}

func (b *builder) grow(series, pairs int) {
	b.metrics = make([]dto.Metric, 0, series+64)
	b.values = make([]float64, 0, series+64)
	b.counters = make([]dto.Counter, 0, series+64)
	b.gauges = make([]dto.Gauge, 0, series/4+64)
	b.pairs = make([]dto.LabelPair, 0, pairs+64)
}

func (b *builder) family(f family) *dto.MetricFamily {
	name, help, typ := "tinycontainer_"+f.name, f.help, f.typ
	return &dto.MetricFamily{Name: &name, Help: &help, Type: &typ}
}

// pair makes one label pair; name and value are kept, not copied.
func (b *builder) pair(name, value string) *dto.LabelPair {
	if len(b.pairs) == cap(b.pairs) {
		b.pairs = make([]dto.LabelPair, 0, 64)
	}
	b.pairs = append(b.pairs, dto.LabelPair{Name: &name, Value: &value})
	return &b.pairs[len(b.pairs)-1]
}

// labels makes label pairs from name, value, ...; the names must come in
// sorted order.
func (b *builder) labels(nv ...string) []*dto.LabelPair {
	out := make([]*dto.LabelPair, 0, len(nv)/2)
	for i := 0; i+1 < len(nv); i += 2 {
		out = append(out, b.pair(nv[i], nv[i+1]))
	}
	return out
}

func (b *builder) metric(typ dto.MetricType, v float64, labels []*dto.LabelPair) *dto.Metric {
	// A full block is left to the series that point into it.
	if len(b.metrics) == cap(b.metrics) {
		b.metrics = make([]dto.Metric, 0, 64)
		b.values = make([]float64, 0, 64)
	}
	b.values = append(b.values, v)
	p := &b.values[len(b.values)-1]
	b.metrics = append(b.metrics, dto.Metric{Label: labels})
	m := &b.metrics[len(b.metrics)-1]
	if typ == counter {
		if len(b.counters) == cap(b.counters) {
			b.counters = make([]dto.Counter, 0, 64)
		}
		b.counters = append(b.counters, dto.Counter{Value: p})
		m.Counter = &b.counters[len(b.counters)-1]
	} else {
		if len(b.gauges) == cap(b.gauges) {
			b.gauges = make([]dto.Gauge, 0, 64)
		}
		b.gauges = append(b.gauges, dto.Gauge{Value: p})
		m.Gauge = &b.gauges[len(b.gauges)-1]
	}
	return m
}

// single is a family of one series without labels.
func (b *builder) single(f family, v float64) *dto.MetricFamily {
	fam := b.family(f)
	fam.Metric = []*dto.Metric{b.metric(f.typ, v, nil)}
	return fam
}
