// Package mgmt is the management API of a device (SPEC sections 6 and 7) as
// a Go interface, independent of the transport: the device implements
// Device, the CoAP server in mgmt/coap exposes it, and the CoAP client in
// mgmt/coap implements it again, so the command line drives a local or a
// remote device through the same calls.
package mgmt

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Container states.
const (
	StateRunning = "running"
	StateStopped = "stopped"
	StateFaulted = "faulted"
)

// Fault kinds reported in ContainerStatus.LastFault ("" when none yet).
const (
	FaultBudget = "budget"
	FaultTrap   = "trap"
	FaultMemory = "memory"
)

// ContainerStatus is the container object of SPEC section 6; the JSON names
// are part of the external contract.
type ContainerStatus struct {
	Name            string `json:"name"`
	Tenant          string `json:"tenant"`
	Runtime         string `json:"runtime"`
	State           string `json:"state"`
	Version         uint64 `json:"version"`
	Activations     uint64 `json:"activations"`
	Faults          uint64 `json:"faults"`
	LastFault       string `json:"last_fault"`
	MissedDeadlines uint64 `json:"missed_deadlines"`
	EndpointCalls   uint64 `json:"endpoint_calls"`
	DeniedCalls     uint64 `json:"denied_calls"`
	CPUTimeUS       uint64 `json:"cpu_time_us"`
	MemoryBytes     uint64 `json:"memory_bytes"`
	StorageBytes    uint64 `json:"storage_bytes"`
	ExitCode        int32  `json:"exit_code"`
	Priority        int    `json:"priority"`
	Trigger         string `json:"trigger"`
	PeriodUS        uint64 `json:"period_us"`
	BudgetUS        uint64 `json:"budget_us"`
	// Event-triggered containers: messages queued for the container and
	// messages dropped (oldest first) because its queue was full.
	MessagesReceived uint64 `json:"messages_received"`
	MessagesDropped  uint64 `json:"messages_dropped"`
	// Version 2 of the contract (fairness between tenants).
	ThrottledUS      uint64 `json:"throttled_us"`       // time spent throttled by the tenant's CPU share
	Preemptions      uint64 `json:"preemptions"`        // times an activation was suspended for other work
	RateLimitedCalls uint64 `json:"rate_limited_calls"` // calls refused with -EAGAIN by a rate ceiling
	LogLinesDropped  uint64 `json:"log_lines_dropped"`  // log lines evicted or refused
	StorageErrors    uint64 `json:"storage_errors"`     // kv writes that failed (quota or store)
}

// DeviceInfo is the device as a whole (an extension of SPEC section 7,
// resource /d): how long it has run, how its runtimes execute guests, its
// containers by state, and its messaging.
type DeviceInfo struct {
	UptimeS    float64        `json:"uptime_s"`
	Containers map[string]int `json:"containers"` // by state: running, stopped, faulted
	Runtimes   []RuntimeInfo  `json:"runtimes"`
	Bus        BusStats       `json:"bus"`
	MQTT       *BridgeStats   `json:"mqtt,omitempty"` // absent when the device has no broker
	Storage    *StorageInfo   `json:"storage,omitempty"`
	Watchdog   WatchdogStats  `json:"watchdog"`
	Memory     *MemoryInfo    `json:"memory,omitempty"` // absent from devices before it was reported
	// LogSeq is the sequence number of the newest log line (0: none yet),
	// so a reader can ask for only the newest lines.
	LogSeq uint64 `json:"log_seq"`
}

// StorageInfo is the device's persistent storage: the space left where it
// keeps its state, and the kv calls that failed (quota or store).
type StorageInfo struct {
	FreeBytes  uint64 `json:"free_bytes,omitempty"`
	TotalBytes uint64 `json:"total_bytes,omitempty"`
	// LowSpace is set when FreeBytes fell below LowSpaceBytes: writes
	// will soon fail.
	LowSpace      bool   `json:"low_space"`
	LowSpaceBytes uint64 `json:"low_space_bytes,omitempty"`
	Errors        uint64 `json:"errors"`          // kv calls the store could not do, since start
	Error         string `json:"error,omitempty"` // why the free space is unknown
}

// MemoryInfo is the device process's memory as its Go runtime sees it,
// and the policy it works to: the soft memory limit (0: none) and GOGC
// (-1: off). Memory the runtime does not count (compiled guest code, the
// binary's own pages) is not in GoBytes.
type MemoryInfo struct {
	GoBytes       uint64 `json:"go_bytes"`        // mapped by the Go runtime and not returned to the OS
	HeapLiveBytes uint64 `json:"heap_live_bytes"` // heap marked live by the last collection
	LimitBytes    uint64 `json:"limit_bytes"`     // the soft memory limit, 0 when none
	GOGC          int    `json:"gogc"`            // heap growth between collections, percent; -1 off
	GCCycles      uint64 `json:"gc_cycles"`       // collections since the process started
}

// WatchdogStats tells how runaway activations were stopped: how many the
// watchdog stopped at their budget since the device started and, over the
// most recent of them, how long past the deadline each had stopped.
type WatchdogStats struct {
	Stopped        uint64 `json:"stopped"`
	OvershootP50US uint64 `json:"overshoot_p50_us"`
	OvershootP99US uint64 `json:"overshoot_p99_us"`
	OvershootMaxUS uint64 `json:"overshoot_max_us"`
}

// RuntimeInfo names a runtime and its engine, e.g. "compiler" or
// "interpreter".
type RuntimeInfo struct {
	Kind   string `json:"kind"`
	Engine string `json:"engine"`
}

// BusStats counts the device's message bus since it started.
type BusStats struct {
	Published     uint64 `json:"published"`
	Delivered     uint64 `json:"delivered"`     // one per matching subscription
	Dropped       uint64 `json:"dropped"`       // evicted from a full subscription queue
	Unmatched     uint64 `json:"unmatched"`     // no subscription matched
	Rejected      uint64 `json:"rejected"`      // invalid or oversized
	UplinkErrors  uint64 `json:"uplink_errors"` // publishes the broker bridge refused
	Subscriptions int    `json:"subscriptions"` // live
}

// BridgeStats counts the bridge to the MQTT broker.
type BridgeStats struct {
	Connected       bool     `json:"connected"`
	Connects        uint64   `json:"connects"`
	ConnectErrors   uint64   `json:"connect_errors"`
	Sent            uint64   `json:"sent"`
	Queued          int      `json:"queued"`
	OutDropped      uint64   `json:"out_dropped"`
	Received        uint64   `json:"received"`
	InDropped       uint64   `json:"in_dropped"`
	SubscribeErrors uint64   `json:"subscribe_errors"`
	Filters         []string `json:"filters"`
	LastError       string   `json:"last_error,omitempty"`
}

// LogLine is one line a container wrote to its log. Seq increases by one per
// line on a device, so a reader that sees a gap knows lines were dropped.
type LogLine struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Container string    `json:"container"`
	Text      string    `json:"text"`
}

// AuditEntry records one refused endpoint call or management request.
type AuditEntry struct {
	Time      time.Time `json:"time"`
	Container string    `json:"container"`
	Tenant    string    `json:"tenant"`
	Endpoint  string    `json:"endpoint"`
	Op        string    `json:"op"`
	Reason    string    `json:"reason"`
}

// Reader is the read-only part of Device: what a dashboard or a metrics
// scraper may see, and nothing that changes the device.
type Reader interface {
	List(ctx context.Context) ([]ContainerStatus, error)
	Logs(ctx context.Context, name string, after uint64, max int) ([]LogLine, error)
	WatchLogs(ctx context.Context, name string, after uint64) (<-chan LogLine, error)
	Audit(ctx context.Context, limit int) ([]AuditEntry, error)
	Info(ctx context.Context) (DeviceInfo, error)
}

// Every Device is a Reader.
var _ Reader = Device(nil)

// Device is everything a manager can do with a device. Implementations wrap
// one of the error classes below with %w so that every transport can report
// the class faithfully.
type Device interface {
	// List returns every container, ordered by name.
	List(ctx context.Context) ([]ContainerStatus, error)
	Status(ctx context.Context, name string) (ContainerStatus, error)
	// Meta returns the manifest in force, as JSON.
	Meta(ctx context.Context, name string) ([]byte, error)
	// Logs returns at most max lines with Seq > after, oldest first.
	Logs(ctx context.Context, name string, after uint64, max int) ([]LogLine, error)
	// WatchLogs delivers lines with Seq > after as they are written. The
	// channel is bounded (a slow reader loses lines, visible as Seq gaps)
	// and is closed when ctx ends or the container goes away.
	WatchLogs(ctx context.Context, name string, after uint64) (<-chan LogLine, error)
	// Audit returns at most limit entries, oldest first.
	Audit(ctx context.Context, limit int) ([]AuditEntry, error)
	// Deploy installs or updates a container from a signed image.
	Deploy(ctx context.Context, image []byte) (ContainerStatus, error)
	// Exec runs a signed state-changing command (start, stop, rm, meta
	// apply, tenant add, ...) and returns its JSON result.
	Exec(ctx context.Context, signedCommand []byte) ([]byte, error)
	// Info describes the device as a whole.
	Info(ctx context.Context) (DeviceInfo, error)
	// Tenants returns the tenants granted on the device, ordered by name.
	Tenants(ctx context.Context) ([]TenantInfo, error)
}

// TenantInfo is one tenant installed on a device: who it is and what its
// owner-signed grant allows.
type TenantInfo struct {
	Name string `json:"name"`
	// Key is the id of the key that signs the tenant's images and commands.
	Key string `json:"key"`
	// Containers is how many containers of the tenant are installed.
	Containers int `json:"containers"`
	// Ceiling is the granted ceiling, in the form of a grant's ceiling
	// (tenant, allow, max_memory, ...; docs/tenants.md).
	Ceiling json.RawMessage `json:"ceiling"`
}

// Error classes. A transport maps each class to one status of its own and
// back, keeping the message.
var (
	ErrNotFound    = errors.New("not found")
	ErrInvalid     = errors.New("invalid request")
	ErrDenied      = errors.New("denied")   // bad signature, replay, beyond the tenant's ceiling
	ErrConflict    = errors.New("conflict") // e.g. a version that is not newer
	ErrTooLarge    = errors.New("too large")
	ErrUnavailable = errors.New("unavailable")
)
