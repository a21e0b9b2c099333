// Package memstore is an in-memory store.Store for `run`, `demo` and tests.
// It is goroutine-safe and enforces the same limits and quotas as the
// on-disk store; its state is lost with the process.
package memstore

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/tinycontainer/tinycontainer/store"
	"github.com/tinycontainer/tinycontainer/store/internal/rec"
)

// Store is the in-memory store. The zero value is not usable; call New.
type Store struct {
	mu         sync.RWMutex
	closed     bool
	kv         map[string]map[string][]byte
	usage      map[string]uint64
	containers map[string]store.Container
	tenants    map[string]store.Tenant
	counters   map[string]uint64
	// audit is a ring of at most store.MaxAuditRecords; head is the oldest.
	audit []store.Audit
	head  int
}

var _ store.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{
		kv:         make(map[string]map[string][]byte),
		usage:      make(map[string]uint64),
		containers: make(map[string]store.Container),
		tenants:    make(map[string]store.Tenant),
		counters:   make(map[string]uint64),
	}
}

func (s *Store) checkOpen() error {
	if s.closed {
		return fmt.Errorf("memstore: %w", store.ErrClosed)
	}
	return nil
}

// Get returns a copy of the value under key.
func (s *Store) Get(container, key string) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	v, ok := s.kv[container][key]
	if !ok {
		return nil, fmt.Errorf("%w: kv key %q of container %q", store.ErrNotFound, key, container)
	}
	return append([]byte{}, v...), nil
}

// Put stores a copy of value under key within quota.
func (s *Store) Put(container, key string, value []byte, quota uint64) error {
	if err := rec.CheckKV(container, key, value); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	m := s.kv[container]
	used := s.usage[container]
	if old, ok := m[key]; ok {
		used -= uint64(len(key) + len(old))
	}
	used += uint64(len(key) + len(value))
	if used > quota {
		return fmt.Errorf("%w: container %q would use %d of %d bytes", store.ErrQuota, container, used, quota)
	}
	if m == nil {
		m = make(map[string][]byte)
		s.kv[container] = m
	}
	m[key] = append([]byte{}, value...)
	s.usage[container] = used
	return nil
}

// Delete removes key.
func (s *Store) Delete(container, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	m := s.kv[container]
	old, ok := m[key]
	if !ok {
		return fmt.Errorf("%w: kv key %q of container %q", store.ErrNotFound, key, container)
	}
	delete(m, key)
	if len(m) == 0 {
		delete(s.kv, container)
		delete(s.usage, container)
	} else {
		s.usage[container] -= uint64(len(key) + len(old))
	}
	return nil
}

// Usage returns the bytes the container's kv data occupies.
func (s *Store) Usage(container string) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.checkOpen(); err != nil {
		return 0, err
	}
	return s.usage[container], nil
}

// DeleteAll removes all kv data of the container.
func (s *Store) DeleteAll(container string) error {
	if err := rec.CheckName("container", container); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	delete(s.kv, container)
	delete(s.usage, container)
	return nil
}

// PutContainer installs or replaces a container record.
func (s *Store) PutContainer(c store.Container) error {
	if err := rec.CheckContainer(&c); err != nil {
		return err
	}
	c = rec.CloneContainer(c)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	s.containers[c.Name] = c
	return nil
}

// GetContainer returns a copy of the named container.
func (s *Store) GetContainer(name string) (store.Container, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.checkOpen(); err != nil {
		return store.Container{}, err
	}
	c, ok := s.containers[name]
	if !ok {
		return store.Container{}, fmt.Errorf("%w: container %q", store.ErrNotFound, name)
	}
	return rec.CloneContainer(c), nil
}

// ListContainers returns copies of all containers, sorted by name.
func (s *Store) ListContainers() ([]store.Container, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	out := make([]store.Container, 0, len(s.containers))
	for _, c := range s.containers {
		out = append(out, rec.CloneContainer(c))
	}
	slices.SortFunc(out, func(a, b store.Container) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// DeleteContainer removes the container and its kv data.
func (s *Store) DeleteContainer(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	if _, ok := s.containers[name]; !ok {
		return fmt.Errorf("%w: container %q", store.ErrNotFound, name)
	}
	delete(s.containers, name)
	delete(s.kv, name)
	delete(s.usage, name)
	return nil
}

// PutTenant installs or replaces a tenant grant.
func (s *Store) PutTenant(t store.Tenant) error {
	if err := rec.CheckTenant(&t); err != nil {
		return err
	}
	t.Grant = rec.Clone(t.Grant)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	s.tenants[t.Name] = t
	return nil
}

// GetTenant returns a copy of the named tenant.
func (s *Store) GetTenant(name string) (store.Tenant, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.checkOpen(); err != nil {
		return store.Tenant{}, err
	}
	t, ok := s.tenants[name]
	if !ok {
		return store.Tenant{}, fmt.Errorf("%w: tenant %q", store.ErrNotFound, name)
	}
	t.Grant = rec.Clone(t.Grant)
	return t, nil
}

// DeleteTenant removes a tenant grant.
func (s *Store) DeleteTenant(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	if _, ok := s.tenants[name]; !ok {
		return fmt.Errorf("%w: tenant %q", store.ErrNotFound, name)
	}
	delete(s.tenants, name)
	return nil
}

// ListTenants returns copies of all tenants, sorted by name.
func (s *Store) ListTenants() ([]store.Tenant, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	out := make([]store.Tenant, 0, len(s.tenants))
	for _, t := range s.tenants {
		t.Grant = rec.Clone(t.Grant)
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b store.Tenant) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// AppendAudit appends a record, dropping the oldest beyond the bound.
func (s *Store) AppendAudit(a store.Audit) error {
	if err := rec.CheckAudit(&a); err != nil {
		return err
	}
	a.Time = rec.StripTime(a.Time)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	if len(s.audit) < store.MaxAuditRecords {
		s.audit = append(s.audit, a)
		return nil
	}
	s.audit[s.head] = a
	s.head = (s.head + 1) % len(s.audit)
	return nil
}

// ListAudit returns the newest limit records (all if limit <= 0), oldest first.
func (s *Store) ListAudit(limit int) ([]store.Audit, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	n := len(s.audit)
	if limit <= 0 || limit > n {
		limit = n
	}
	out := make([]store.Audit, limit)
	for i := range out {
		out[i] = s.audit[(s.head+n-limit+i)%n]
	}
	return out, nil
}

// UseCounter records counter for signer if it is above the last one.
func (s *Store) UseCounter(signer string, counter uint64) error {
	if err := rec.CheckName("signer", signer); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	if last, ok := s.counters[signer]; ok && counter <= last {
		return fmt.Errorf("%w: signer %q counter %d, last accepted %d", store.ErrReplay, signer, counter, last)
	}
	s.counters[signer] = counter
	return nil
}

// Close makes later calls fail with store.ErrClosed and frees the data.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	s.closed = true
	s.kv, s.usage, s.containers, s.tenants, s.counters, s.audit = nil, nil, nil, nil, nil, nil
	return nil
}
