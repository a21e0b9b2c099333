// Package endpoint is the only door from a container to the host: the
// registry of named endpoints, the guest ABI (open/call/close with handles
// and bounds checks), the permission check against the metadata in force on
// every call, per-rule rate limits and the audit of denied calls.
//
// Host services live in subpackages, one per service; this package imports
// none of them.
package endpoint

import (
	"sort"
	"strings"
	"sync"

	"github.com/tinycontainer/tinycontainer/abi"
)

// Endpoint is one host service. Call serves one permitted call: c is the
// call's context (valid during the call only), in holds the request, out
// (which aliases the same guest buffer) receives the response; an endpoint
// reads all of in before writing to out. It returns the number of bytes
// written or a negated abi.Errno.
type Endpoint interface {
	// Ops are the operations the endpoint supports; a granted op outside
	// this set gets ENOSYS without reaching Call.
	Ops() abi.OpSet
	Call(c *Call, op abi.Op, in, out []byte) int32
}

// Family serves every name under a prefix, such as "msg/" for topics.
type Family func(rest string) (Endpoint, bool)

// Registry maps endpoint names to endpoints. It is filled at device start
// and read concurrently afterwards.
type Registry struct {
	mu       sync.RWMutex
	exact    map[string]Endpoint
	families map[string]Family // by prefix, e.g. "msg/"
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{exact: map[string]Endpoint{}, families: map[string]Family{}}
}

// Register adds an endpoint under an exact name, replacing any earlier one.
func (r *Registry) Register(name string, e Endpoint) {
	r.mu.Lock()
	r.exact[name] = e
	r.mu.Unlock()
}

// RegisterFamily serves every name that starts with prefix and is not
// registered exactly.
func (r *Registry) RegisterFamily(prefix string, f Family) {
	r.mu.Lock()
	r.families[prefix] = f
	r.mu.Unlock()
}

// Lookup finds the endpoint for name.
func (r *Registry) Lookup(name string) (Endpoint, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e, ok := r.exact[name]; ok {
		return e, true
	}
	for p, f := range r.families {
		if rest, ok := strings.CutPrefix(name, p); ok && rest != "" {
			return f(rest)
		}
	}
	return nil, false
}

// Names lists the exact names and the family prefixes (as "prefix<...>").
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.exact)+len(r.families))
	for n := range r.exact {
		out = append(out, n)
	}
	for p := range r.families {
		out = append(out, p+"<...>")
	}
	sort.Strings(out)
	return out
}
