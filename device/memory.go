package device

import (
	"math"
	"runtime/metrics"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// memoryMetrics are the runtime metrics behind mgmt.MemoryInfo, in the
// order memoryInfo reads them.
var memoryMetrics = [...]string{"/memory/classes/total:bytes", "/memory/classes/heap/released:bytes",
	"/gc/heap/live:bytes", "/gc/gomemlimit:bytes", "/gc/gogc:percent", "/gc/cycles/total:gc-cycles"}

// memoryInfo reads the process's memory and memory policy (both the
// process's, whatever device asks).
func memoryInfo() *mgmt.MemoryInfo {
	s := make([]metrics.Sample, len(memoryMetrics))
	for i, n := range memoryMetrics {
		s[i].Name = n
	}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	m := &mgmt.MemoryInfo{GoBytes: v(0) - min(v(1), v(0)), HeapLiveBytes: v(2), LimitBytes: v(3), GCCycles: v(5)}
	if m.LimitBytes >= math.MaxInt64 {
		m.LimitBytes = 0
	}
	if g := v(4); g > math.MaxInt32 {
		m.GOGC = -1
	} else {
		m.GOGC = int(g)
	}
	return m
}
