package endpoint

import (
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// CallContext is what NewTestCall makes a call context of.
type CallContext struct {
	Container, Tenant string
	Manifest          *meta.Manifest // nil: no rules
	Memory            runtime.Memory // the caller's memory, for a MemoryUser
	Event             []byte
	Budget            *runtime.Budget // the activation's (Call.Wait, Call.Checkpoint); nil: none
}

// NewTestCall returns the context of one call as described, for testing an
// endpoint on its own (without a guest). Sessions make their own.
func NewTestCall(cc CallContext) *Call {
	s := &Session{container: cc.Container, tenant: cc.Tenant, event: cc.Event, now: runtime.Now}
	if cc.Manifest != nil {
		s.SetRules(NewRules(cc.Manifest))
	}
	s.callCtx = Call{s: s, mem: cc.Memory}
	s.budget = cc.Budget
	return &s.callCtx
}
