package web

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// collector reads the device when scraped, so /metrics costs nothing
// between scrapes and always shows what `ps` would.
type collector struct {
	src     mgmt.Reader
	timeout time.Duration
	// up reports whether the device could be read (1) or not (0).
	up *prometheus.Desc
}

// perContainer are the metrics of one container, each labelled container,
// tenant and runtime (SPEC section 9 names them).
var perContainer = []struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(*mgmt.ContainerStatus) float64
}{
	{cdesc("activations_total", "Activations run."), prometheus.CounterValue,
		func(c *mgmt.ContainerStatus) float64 { return float64(c.Activations) }},
	{cdesc("faults_total", "Activations that faulted (budget, trap, memory)."), prometheus.CounterValue,
		func(c *mgmt.ContainerStatus) float64 { return float64(c.Faults) }},
	{cdesc("missed_deadlines_total", "Periodic activations that started after their next period was due."), prometheus.CounterValue,
		func(c *mgmt.ContainerStatus) float64 { return float64(c.MissedDeadlines) }},
	{cdesc("endpoint_calls_total", "Endpoint calls made."), prometheus.CounterValue,
		func(c *mgmt.ContainerStatus) float64 { return float64(c.EndpointCalls) }},
	{cdesc("denied_calls_total", "Endpoint calls refused by the metadata in force."), prometheus.CounterValue,
		func(c *mgmt.ContainerStatus) float64 { return float64(c.DeniedCalls) }},
	{cdesc("cpu_seconds_total", "Thread CPU time the container's activations used."), prometheus.CounterValue,
		func(c *mgmt.ContainerStatus) float64 { return float64(c.CPUTimeUS) / 1e6 }},
	{cdesc("throttled_seconds_total", "Time the container was held back by its tenant's CPU share."), prometheus.CounterValue,
		func(c *mgmt.ContainerStatus) float64 { return float64(c.ThrottledUS) / 1e6 }},
	{cdesc("preemptions_total", "Times an activation was suspended for other work."), prometheus.CounterValue,
		func(c *mgmt.ContainerStatus) float64 { return float64(c.Preemptions) }},
	{cdesc("rate_limited_calls_total", "Endpoint calls refused by a rate ceiling."), prometheus.CounterValue,
		func(c *mgmt.ContainerStatus) float64 { return float64(c.RateLimitedCalls) }},
	{cdesc("memory_bytes", "Linear memory (WebAssembly) or data (eBPF) of the container's instance."), prometheus.GaugeValue,
		func(c *mgmt.ContainerStatus) float64 { return float64(c.MemoryBytes) }},
	{cdesc("storage_bytes", "Bytes the container keeps in kv storage."), prometheus.GaugeValue,
		func(c *mgmt.ContainerStatus) float64 { return float64(c.StorageBytes) }},
	{cdesc("storage_errors_total", "kv writes that failed (quota or store)."), prometheus.CounterValue,
		func(c *mgmt.ContainerStatus) float64 { return float64(c.StorageErrors) }},
	{cdesc("log_lines_dropped_total", "Log lines evicted or refused."), prometheus.CounterValue,
		func(c *mgmt.ContainerStatus) float64 { return float64(c.LogLinesDropped) }},
	{cdesc("messages_received_total", "Messages queued for an event-triggered container."), prometheus.CounterValue,
		func(c *mgmt.ContainerStatus) float64 { return float64(c.MessagesReceived) }},
	{cdesc("messages_dropped_total", "Messages dropped, oldest first, from the container's full queue."), prometheus.CounterValue,
		func(c *mgmt.ContainerStatus) float64 { return float64(c.MessagesDropped) }},
	{cdesc("container_version", "Version of the metadata in force."), prometheus.GaugeValue,
		func(c *mgmt.ContainerStatus) float64 { return float64(c.Version) }},
}

var containerLabels = []string{"container", "tenant", "runtime"}

func cdesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc("tinycontainer_"+name, help, containerLabels, nil)
}

// states are the container states, in the words of `ps`.
var states = []string{mgmt.StateRunning, mgmt.StateStopped, mgmt.StateFaulted}

var (
	stateDesc = prometheus.NewDesc("tinycontainer_container_state",
		"1 for the container's state (running, stopped, faulted), 0 for the others.",
		append(containerLabels[:3:3], "state"), nil)
	uptimeDesc     = gdesc("uptime_seconds", "Time since the device started.")
	containersDesc = prometheus.NewDesc("tinycontainer_containers", "Containers by state.", []string{"state"}, nil)
	runtimeDesc    = prometheus.NewDesc("tinycontainer_runtime_info", "The device's runtimes and how each runs guests (engine).",
		[]string{"runtime", "engine"}, nil)

	busPublished     = gdesc("bus_published_total", "Messages published on the device's bus.")
	busDelivered     = gdesc("bus_delivered_total", "Messages delivered, one per matching subscription.")
	busDropped       = gdesc("bus_dropped_total", "Messages evicted from a full subscription queue.")
	busUnmatched     = gdesc("bus_unmatched_total", "Messages no subscription matched.")
	busRejected      = gdesc("bus_rejected_total", "Messages refused as invalid or oversized.")
	busUplinkErrors  = gdesc("bus_uplink_errors_total", "Publishes the broker bridge refused.")
	busSubscriptions = gdesc("bus_subscriptions", "Live subscriptions.")

	mqttConnected       = gdesc("mqtt_connected", "1 when the bridge to the MQTT broker is connected.")
	mqttConnects        = gdesc("mqtt_connects_total", "Connections made to the broker.")
	mqttConnectErrors   = gdesc("mqtt_connect_errors_total", "Failed connection attempts.")
	mqttSent            = gdesc("mqtt_sent_total", "Messages sent to the broker.")
	mqttQueued          = gdesc("mqtt_queued", "Messages waiting to be sent.")
	mqttOutDropped      = gdesc("mqtt_out_dropped_total", "Outgoing messages dropped.")
	mqttReceived        = gdesc("mqtt_received_total", "Messages received from the broker.")
	mqttInDropped       = gdesc("mqtt_in_dropped_total", "Incoming messages dropped.")
	mqttSubscribeErrors = gdesc("mqtt_subscribe_errors_total", "Subscriptions the broker refused.")

	storageFree     = gdesc("device_storage_free_bytes", "Free space where the device keeps its state.")
	storageTotal    = gdesc("device_storage_total_bytes", "Size of the file system where the device keeps its state.")
	storageLow      = gdesc("device_storage_low_space", "1 when the free space fell below the device's low-space threshold.")
	storageErrors   = gdesc("device_storage_errors_total", "kv calls the store could not do, every container together.")
	watchdogStopped = gdesc("watchdog_stopped_total", "Runaway activations the watchdog stopped at their budget.")
	overshootP50    = gdesc("watchdog_overshoot_p50_seconds", "Median time past the deadline a recent runaway activation took to stop.")
	overshootP99    = gdesc("watchdog_overshoot_p99_seconds", "99th percentile of the time past the deadline recent runaway activations took to stop.")
	overshootMax    = gdesc("watchdog_overshoot_max_seconds", "Longest time past the deadline a recent runaway activation took to stop.")
)

func gdesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc("tinycontainer_"+name, help, nil, nil)
}

func newCollector(src mgmt.Reader, timeout time.Duration) *collector {
	return &collector{src: src, timeout: timeout,
		up: prometheus.NewDesc("tinycontainer_up", "1 when the device could be read at this scrape.", nil, nil)}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	for _, m := range perContainer {
		ch <- m.desc
	}
	for _, d := range []*prometheus.Desc{stateDesc, uptimeDesc, containersDesc, runtimeDesc,
		busPublished, busDelivered, busDropped, busUnmatched, busRejected, busUplinkErrors, busSubscriptions,
		mqttConnected, mqttConnects, mqttConnectErrors, mqttSent, mqttQueued, mqttOutDropped, mqttReceived,
		mqttInDropped, mqttSubscribeErrors, storageFree, storageTotal, storageLow, storageErrors, watchdogStopped, overshootP50, overshootP99, overshootMax} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one read of the containers and
// one of the device per scrape.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	cs, err := c.src.List(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.up, err)
		return
	}
	info, err := c.src.Info(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.up, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for i := range cs {
		s := &cs[i]
		lv := []string{s.Name, s.Tenant, s.Runtime}
		for _, m := range perContainer {
			ch <- prometheus.MustNewConstMetric(m.desc, m.typ, m.value(s), lv...)
		}
		for _, st := range states {
			v := 0.0
			if s.State == st {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, v, s.Name, s.Tenant, s.Runtime, st)
		}
	}
	collectDevice(ch, info)
}

func collectDevice(ch chan<- prometheus.Metric, info mgmt.DeviceInfo) {
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(uptimeDesc, info.UptimeS)
	for _, st := range states {
		gauge(containersDesc, float64(info.Containers[st]), st)
	}
	for _, r := range info.Runtimes {
		gauge(runtimeDesc, 1, r.Kind, r.Engine)
	}
	b := info.Bus
	counter(busPublished, b.Published)
	counter(busDelivered, b.Delivered)
	counter(busDropped, b.Dropped)
	counter(busUnmatched, b.Unmatched)
	counter(busRejected, b.Rejected)
	counter(busUplinkErrors, b.UplinkErrors)
	gauge(busSubscriptions, float64(b.Subscriptions))
	if m := info.MQTT; m != nil {
		connected := 0.0
		if m.Connected {
			connected = 1
		}
		gauge(mqttConnected, connected)
		counter(mqttConnects, m.Connects)
		counter(mqttConnectErrors, m.ConnectErrors)
		counter(mqttSent, m.Sent)
		gauge(mqttQueued, float64(m.Queued))
		counter(mqttOutDropped, m.OutDropped)
		counter(mqttReceived, m.Received)
		counter(mqttInDropped, m.InDropped)
		counter(mqttSubscribeErrors, m.SubscribeErrors)
	}
	if s := info.Storage; s != nil {
		if s.TotalBytes > 0 {
			gauge(storageFree, float64(s.FreeBytes))
			gauge(storageTotal, float64(s.TotalBytes))
		}
		low := 0.0
		if s.LowSpace {
			low = 1
		}
		gauge(storageLow, low)
		counter(storageErrors, s.Errors)
	}
	w := info.Watchdog
	counter(watchdogStopped, w.Stopped)
	gauge(overshootP50, float64(w.OvershootP50US)/1e6)
	gauge(overshootP99, float64(w.OvershootP99US)/1e6)
	gauge(overshootMax, float64(w.OvershootMaxUS)/1e6)
}
