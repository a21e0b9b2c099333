package device

import (
	"fmt"
	"time"

	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/runtime"
	"github.com/tinycontainer/tinycontainer/sched"
)

// faultOutcome says in words what the fault policy decided.
var faultOutcome = map[sched.Action]string{
	sched.Continue: "the next activation starts from a fresh instance",
	sched.Stop:     "the container is stopped (on_fault: stop)",
	sched.Fault:    "the container is faulted (max_faults reached); `tinycontainer start` runs it again",
	sched.Done:     "the container is stopped",
}

// onFault makes a fault visible where people look: a line in the
// container's log, an audit entry and a warning in the device's own
// output. It runs on a scheduler worker, which may hold up a Stop that
// holds d.mu, so it must not take d.mu (the tenant comes from tenantOf).
func (d *Device) onFault(name string, f *runtime.Fault, a sched.Action) {
	outcome := faultOutcome[a]
	d.Line(name, fmt.Sprintf("[fault] %v; %s", f, outcome))
	tenant, _ := d.tenantOf.Load(name)
	t, _ := tenant.(string)
	d.audit.add(mgmt.AuditEntry{Time: time.Now(), Container: name, Tenant: t, Endpoint: "sched",
		Op: "fault", Reason: fmt.Sprintf("%v; %s", f, outcome)})
	d.log.Warn("container fault", "container", name, "tenant", t, "fault", f.Error(), "then", a.String())
	if d.opts.OnFault != nil {
		d.opts.OnFault(name, f, a)
	}
}
