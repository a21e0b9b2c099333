package bench

import (
	"fmt"
	"strings"
)

// Run measures every figure (those whose name starts with o.Only, when
// set) and reports each as it comes (progress may be nil). A measurement
// that fails is reported as a Result with a note and does not stop the
// others.
func Run(o Options, progress func(Result)) []Result {
	var out []Result
	add := func(rs ...Result) {
		for _, r := range rs {
			if r.Unit != "" && !strings.HasPrefix(r.Name, o.Only) {
				continue // a figure of a measurement that makes others too
			}
			out = append(out, r)
			if progress != nil {
				progress(r)
			}
		}
	}
	// wanted: a measurement whose figures' names start with one of
	// prefixes may make one o.Only asks for.
	wanted := func(prefixes ...string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(p, o.Only) || strings.HasPrefix(o.Only, p) {
				return true
			}
		}
		return false
	}
	fail := func(name string, err error) { add(Result{Name: name, Note: "failed: " + err.Error()}) }
	one := func(name string, f func() (Result, error)) {
		if !wanted(name) {
			return
		}
		if r, err := f(); err != nil {
			fail(name, err)
		} else {
			add(r)
		}
	}
	many := func(name string, f func() ([]Result, error), prefixes ...string) {
		if !wanted(append(prefixes, name)...) {
			return
		}
		if rs, err := f(); err != nil {
			fail(name, err)
		} else {
			add(rs...)
		}
	}
	many("endpoint_calls", func() ([]Result, error) { return EndpointCallsVsBare(o) }, "wazero/", "wasm/endpoint_call", "ebpf/endpoint_call")
	for _, kind := range []string{"wasm", "ebpf"} {
		one(kind+"/activation_warm", func() (Result, error) { return ActivationOverhead(kind, o) })
		one(kind+"/instantiate", func() (Result, error) { return Instantiation(kind, o) })
		one(kind+"/budget_stop_p99", func() (Result, error) { return BudgetStop(kind, o) })
	}
	many("wasm/compute", func() ([]Result, error) { return Compute(o) })
	one("ebpf/compute_crc32", func() (Result, error) { return EBPFCompute(o, false) })
	one("ebpf/compute_crc32_interpreted", func() (Result, error) { return EBPFCompute(o, true) })
	one("wasm/idle_container_rss", func() (Result, error) { return Density(o) })
	one("ebpf/idle_instance_bytes", func() (Result, error) { return EBPFIdleMemory(o) })
	one("msg/publish_to_activation", func() (Result, error) { return MessageLatency(o) })
	many("ml/", func() ([]Result, error) { return MLInference(o), nil })
	for _, kind := range []string{"wasm", "ebpf"} {
		one(kind+"/preemption_latency_p99", func() (Result, error) { return PreemptionLatency(kind, o) })
		if kind == "wasm" {
			one("wasm/preemption_latency_straight_p99", func() (Result, error) { return PreemptionLatencyStraight(o) })
		}
		many(kind+"/priority_rhythm", func() ([]Result, error) { return PriorityRhythm(kind, o) })
	}
	one("sched/tenant_share_25", func() (Result, error) { return TenantShare(o) })
	many("no_escape", func() ([]Result, error) { return NoEscape(o) }, "wasm/no_escape", "ebpf/no_escape")
	one("sched/kv_writers_kept", func() (Result, error) { return KVDensity(o) })
	many("sched/adversarial_install", func() ([]Result, error) { return AdversarialInstalls(o) })
	return out
}

// Format renders a result as one line of a table.
func Format(r Result) string {
	status := ""
	if r.Pass != nil {
		status = "FAIL"
		if *r.Pass {
			status = "ok"
		}
	}
	if r.Unit == "" {
		return fmt.Sprintf("%-32s %s", r.Name, r.Note)
	}
	return fmt.Sprintf("%-32s %12.2f %-20s %-4s %-16s %s", r.Name, r.Value, r.Unit, status, r.Target, r.Note)
}
