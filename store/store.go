// Package store is the device's state: per-container kv data with quotas,
// installed containers, tenants, audit records and replay counters.
// Implementations live in subpackages (memstore: in memory; boltstore:
// bbolt on disk, crash safe).
package store

import (
	"errors"
	"time"
)

// Error classes; implementations wrap them with %w. ErrInvalid also covers
// a corrupt or foreign database file.
var (
	ErrNotFound = errors.New("not found")
	ErrQuota    = errors.New("storage quota exceeded")
	ErrReplay   = errors.New("replayed or stale counter")
	ErrInvalid  = errors.New("invalid record")
	ErrClosed   = errors.New("store closed")
)

// Limits every implementation enforces; a record outside them is refused
// with ErrInvalid.
const (
	MaxKeyLen       = 255      // kv key, bytes (at least 1)
	MaxValueLen     = 64 << 10 // kv value, bytes (may be 0)
	MaxNameLen      = 255      // container, tenant and signer names, bytes (at least 1)
	MaxBlobLen      = 16 << 20 // each of Container.Image/Manifest/Compiled and Tenant.Grant
	MaxAuditField   = 4096     // each string field of an Audit record
	MaxAuditRecords = 10000    // audit records kept; AppendAudit drops the oldest beyond this
)

// Container states (Container.State must be one of them).
const (
	StateRunning = "running"
	StateStopped = "stopped"
	StateFaulted = "faulted"
)

// KV is the per-container key-value data behind the kv endpoint.
// Usage counts len(key)+len(value) of every pair of the container.
// Returned slices are the caller's own; values passed in are copied.
type KV interface {
	Get(container, key string) ([]byte, error) // ErrNotFound when absent
	// Put stores value under key unless the container's usage after the put
	// would exceed quota bytes (then ErrQuota and nothing changes).
	// Replacing a value counts the new size minus the old one.
	Put(container, key string, value []byte, quota uint64) error
	Delete(container, key string) error     // ErrNotFound when absent
	Usage(container string) (uint64, error) // 0 for a container without data
	DeleteAll(container string) error       // no error when there is no data
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
	// ListContainers and ListTenants return records sorted by name.
	// DeleteContainer removes the container and its kv data (ErrNotFound,
	// and nothing changes, when no such container is installed).
	DeleteContainer(name string) error

	PutTenant(t Tenant) error
	GetTenant(name string) (Tenant, error)
	ListTenants() ([]Tenant, error)
	// DeleteTenant removes a tenant grant (ErrNotFound when there is none).
	DeleteTenant(name string) error

	// AppendAudit keeps at most MaxAuditRecords of the newest records.
	AppendAudit(a Audit) error
	// ListAudit returns the newest limit records (all when limit <= 0),
	// oldest first.
	ListAudit(limit int) ([]Audit, error)

	// UseCounter accepts counter for signer only if it is greater than the
	// last one accepted for that signer (any counter is accepted first), and
	// records it (replay protection); otherwise ErrReplay.
	UseCounter(signer string, counter uint64) error

	// Close releases the store; later calls fail with ErrClosed.

	Close() error
}
