package device

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/tinycontainer/tinycontainer/endpoint"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/store"
)

// auditLog keeps the newest audit entries in memory and persists them to
// the store from a goroutine of its own, so a denied call never waits for
// a disk. When the persistence queue is full, entries still reach the
// in-memory log and the drop is counted.
type auditLog struct {
	mu      sync.Mutex
	ring    []mgmt.AuditEntry
	next    int
	persist chan store.Audit
	drained chan struct{} // closed when every queued entry is persisted
	dropped atomic.Uint64
	onEntry func(mgmt.AuditEntry)
}

const auditRing = 4096

func newAuditLog(st store.Store, log *slog.Logger, onEntry func(mgmt.AuditEntry)) *auditLog {
	a := &auditLog{persist: make(chan store.Audit, 1024), drained: make(chan struct{}), onEntry: onEntry}
	go func() {
		defer close(a.drained)
		for r := range a.persist {
			if err := st.AppendAudit(r); err != nil {
				log.Warn("audit record not persisted", "err", err)
			}
		}
	}()
	return a
}

var _ endpoint.Auditor = (*auditLog)(nil)

// Audit records a denied endpoint call.
func (a *auditLog) Audit(d endpoint.Denial) {
	reason := d.Reason
	if d.Count > 1 {
		reason = fmt.Sprintf("%s (x%d)", reason, d.Count)
	}
	a.add(mgmt.AuditEntry{Time: d.Time, Container: d.Container, Tenant: d.Tenant, Endpoint: d.Endpoint, Op: d.Op, Reason: reason})
}

func (a *auditLog) add(e mgmt.AuditEntry) {
	a.remember(e)
	if a.onEntry != nil {
		a.onEntry(e)
	}
	select {
	case a.persist <- store.Audit(e):
	default:
		a.dropped.Add(1)
	}
}

// entries returns the newest limit entries (0: all), oldest first.
func (a *auditLog) entries(limit int) []mgmt.AuditEntry {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := len(a.ring)
	out := make([]mgmt.AuditEntry, 0, n)
	for i := range n {
		out = append(out, a.ring[(a.next+i)%n])
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out
}

// close persists what is queued and stops; nothing may be added after.
func (a *auditLog) close() {
	close(a.persist)
	<-a.drained
}

// remember adds an entry read back from the store, without persisting it
// again or reporting it as new.
func (a *auditLog) remember(e mgmt.AuditEntry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.ring) < auditRing {
		a.ring = append(a.ring, e)
	} else {
		a.ring[a.next] = e
		a.next = (a.next + 1) % auditRing
	}
}
