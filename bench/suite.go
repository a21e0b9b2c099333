package bench

import "fmt"

// Run measures every figure and reports each as it comes (progress may be
// nil). A measurement that fails is reported as a Result with a note and
// does not stop the others.
func Run(o Options, progress func(Result)) []Result {
	var out []Result
	add := func(rs ...Result) {
		for _, r := range rs {
			out = append(out, r)
			if progress != nil {
				progress(r)
			}
		}
	}
	fail := func(name string, err error) { add(Result{Name: name, Note: "failed: " + err.Error()}) }
	one := func(name string, f func() (Result, error)) {
		if r, err := f(); err != nil {
			fail(name, err)
		} else {
			add(r)
		}
	}
	if rs, err := EndpointCallsVsBare(o); err != nil {
		fail("endpoint_calls", err)
	} else {
		add(rs...)
	}
	for _, kind := range []string{"wasm", "ebpf"} {
		one(kind+"/activation_warm", func() (Result, error) { return ActivationOverhead(kind, o) })
		one(kind+"/instantiate", func() (Result, error) { return Instantiation(kind, o) })
		one(kind+"/budget_stop_p99", func() (Result, error) { return BudgetStop(kind, o) })
	}
	if rs, err := Compute(o); err != nil {
		fail("wasm/compute", err)
	} else {
		add(rs...)
	}
	one("ebpf/compute_crc32", func() (Result, error) { return EBPFCompute(o, false) })
	one("ebpf/compute_crc32_interpreted", func() (Result, error) { return EBPFCompute(o, true) })
	one("wasm/idle_container_rss", func() (Result, error) { return Density(o) })
	one("ebpf/idle_instance_bytes", func() (Result, error) { return EBPFIdleMemory(o) })
	one("msg/publish_to_activation", func() (Result, error) { return MessageLatency(o) })
	add(MLInference(o)...)
	for _, kind := range []string{"wasm", "ebpf"} {
		one(kind+"/preemption_latency_p99", func() (Result, error) { return PreemptionLatency(kind, o) })
		if rs, err := PriorityRhythm(kind, o); err != nil {
			fail(kind+"/priority_rhythm", err)
		} else {
			add(rs...)
		}
	}
	one("sched/tenant_share_25", func() (Result, error) { return TenantShare(o) })
	if rs, err := NoEscape(o); err != nil {
		fail("no_escape", err)
	} else {
		add(rs...)
	}
	one("sched/kv_writers_kept", func() (Result, error) { return KVDensity(o) })
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
