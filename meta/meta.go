// Package meta is the rulebook of a container (SPEC section 5): what it may
// touch with which ops, how it is scheduled, its limits; and the ceiling an
// owner grants a tenant.
package meta

import (
	"time"

	"github.com/tinycontainer/tinycontainer/abi"
)

// Trigger says what starts an activation.
type Trigger string

const (
	Periodic Trigger = "periodic"
	Event    Trigger = "event"
	Once     Trigger = "once"
)

// FaultAction is what happens after a fault.
type FaultAction string

const (
	Restart FaultAction = "restart"
	Stop    FaultAction = "stop"
)

// Manifest is a container's metadata, validated. Field names and units
// match the YAML/JSON form of SPEC section 5.
type Manifest struct {
	Name      string         `json:"name"`
	Tenant    string         `json:"tenant"`
	Version   uint64         `json:"version"`
	Runtime   string         `json:"runtime"` // "wasm" | "ebpf"
	Code      string         `json:"code,omitempty"`
	Schedule  Schedule       `json:"schedule"`
	Limits    Limits         `json:"limits"`
	Endpoints []EndpointRule `json:"endpoints"`
}

// Schedule is how and when the container runs.
type Schedule struct {
	Trigger   Trigger
	Period    time.Duration // periodic only
	Topics    []string      // event only; MQTT filters
	Budget    time.Duration // longest activation
	Priority  int           // 0..15, higher runs first
	OnFault   FaultAction
	MaxFaults int // consecutive faults before "faulted"
}

// Limits bound the container's resources, in bytes.
type Limits struct {
	Memory  uint64
	Storage uint64
}

// EndpointRule grants ops on the endpoints whose names match Name (an MQTT
// style pattern: '+' one level, '#' the rest).
type EndpointRule struct {
	Name string
	Ops  abi.OpSet
	Rate *Rate // nil: no rate limit
}

// Rate is at most N calls per Per.
type Rate struct {
	N   int
	Per time.Duration
}
