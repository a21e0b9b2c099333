package fleet

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tinycontainer/tinycontainer/fleet/doc"
	"github.com/tinycontainer/tinycontainer/store"
)

// The adapter's own state lives in the device's store, in the kv space of
// a name no container can take ("@fleet": container names are
// [a-z0-9-]), so it is as crash safe as the rest of the device's state.
const (
	kvSpace    = "@fleet"
	kvState    = "state"
	kvDesired  = "desired/" // + tenant: the last accepted desired state, as received
	kvQuota    = 1 << 30
	maxKVValue = store.MaxValueLen
)

// mark is the last signed document accepted on one topic.
type mark struct {
	Seq    uint64 `json:"seq"`
	Digest string `json:"digest"` // content address of the message bytes
}

// record is what the fleet knows of one container it manages.
type record struct {
	Tenant   string       `json:"tenant"`
	Current  doc.Ref      `json:"current"`            // the version in force, installed by the fleet
	Previous *doc.Ref     `json:"previous,omitempty"` // what ran before Current (the only version a revert may go to)
	Failed   *doc.Ref     `json:"failed,omitempty"`   // a version that failed here: not tried again
	Health   string       `json:"health"`
	Window   doc.Duration `json:"window"`
	Rollout  string       `json:"rollout,omitempty"`
	Error    string       `json:"error,omitempty"`
}

// persisted is the adapter's state as stored.
type persisted struct {
	Session    uint64             `json:"session"`
	Grants     map[string]mark    `json:"grants"`  // by tenant
	Desired    map[string]mark    `json:"desired"` // by tenant
	Revoked    map[string]bool    `json:"revoked"`
	Containers map[string]*record `json:"containers"` // by container name
}

func newPersisted() *persisted {
	return &persisted{Grants: map[string]mark{}, Desired: map[string]mark{}, Revoked: map[string]bool{},
		Containers: map[string]*record{}}
}

func loadState(kv store.KV) (*persisted, error) {
	p := newPersisted()
	b, err := kv.Get(kvSpace, kvState)
	if errors.Is(err, store.ErrNotFound) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fleet state: %w", err)
	}
	if err := json.Unmarshal(b, p); err != nil {
		return nil, fmt.Errorf("fleet state in the store is unreadable: %w", err)
	}
	for _, m := range []*map[string]mark{&p.Grants, &p.Desired} {
		if *m == nil {
			*m = map[string]mark{}
		}
	}
	if p.Revoked == nil {
		p.Revoked = map[string]bool{}
	}
	if p.Containers == nil {
		p.Containers = map[string]*record{}
	}
	return p, nil
}

func saveState(kv store.KV, p *persisted) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if len(b) > maxKVValue {
		return fmt.Errorf("fleet state of %d bytes is above the store's %d", len(b), maxKVValue)
	}
	return kv.Put(kvSpace, kvState, b, kvQuota)
}
