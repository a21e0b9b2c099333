// Package store is the device's state: per-container kv data with quotas,
// installed containers, tenants, audit records and replay counters.
// Implementations live in subpackages (memstore: in memory; boltstore:
// bbolt on disk, crash safe).
package store

import (
	"errors"
	"time"
)

// Error classes; implementations wrap them with %w.
var (
	ErrNotFound = errors.New("not found")
	ErrQuota    = errors.New("storage quota exceeded")
	ErrReplay   = errors.New("replayed or stale counter")
	ErrInvalid  = errors.New("invalid record")
)

// KV is the per-container key-value data behind the kv endpoint.
// Usage counts len(key)+len(value) of every pair of the container.
type KV interface {
	Get(container, key string) ([]byte, error)
	// Put stores value under key unless the container's usage after the put
	// would exceed quota bytes (then ErrQuota and nothing changes).
	Put(container, key string, value []byte, quota uint64) error
	Delete(container, key string) error // ErrNotFound when absent
	Usage(container string) (uint64, error)
	DeleteAll(container string) error
}

// Container is an installed container as the store keeps it.
type Container struct {
	Name     string
	Tenant   string
	Version  uint64
	Image    []byte // the signed image as installed (or the unsigned code in insecure mode)
	Manifest []byte // the metadata in force, JSON (replaced by live updates)
	State    string // "running" | "stopped" | "faulted"
	Compiled []byte // optional cache of compiled code; may be nil
}

// Tenant is an owner-signed tenant grant as installed.
type Tenant struct {
	Name  string
	Grant []byte // the signed grant document
}

// Audit is one audit record (a denied call, a refused command, ...).
type Audit struct {
	Time      time.Time `json:"time"`
	Container string    `json:"container"`
	Tenant    string    `json:"tenant"`
	Endpoint  string    `json:"endpoint"`
	Op        string    `json:"op"`
	Reason    string    `json:"reason"`
}

// Store is all of a device's persistent state. Every method is atomic: after
// a crash each write either happened completely or not at all.
type Store interface {
	KV
	PutContainer(c Container) error
	GetContainer(name string) (Container, error)
	ListContainers() ([]Container, error)
	// DeleteContainer removes the container and its kv data.
	DeleteContainer(name string) error

	PutTenant(t Tenant) error
	GetTenant(name string) (Tenant, error)
	ListTenants() ([]Tenant, error)

	// AppendAudit keeps at most a bounded number of the newest records.
	AppendAudit(a Audit) error
	ListAudit(limit int) ([]Audit, error) // oldest first

	// UseCounter accepts counter for signer only if it is greater than the
	// last one accepted for that signer, and records it (replay protection).
	UseCounter(signer string, counter uint64) error

	Close() error
}
