// Package ctl is the fleet controller behind `tinycontainer fleet`: it
// reads the fleet's state from the retained messages of an MQTT broker,
// installs grants, and drives rollouts in health-gated waves. It keeps no
// state of its own: a rollout, its waves, each device's job and the lease
// of the controller driving it all live in the rollout's retained message,
// so any controller can show it, and `resume` can take over one whose
// controller died.
//
// The package has three layers:
//   - pure decisions: wave planning (plan.go), the rollout state machine
//     (machine.go) and the lease (lease.go), driven by a clock and by
//     observations of devices, with no I/O;
//   - the read API (view.go): a snapshot of devices, their containers and
//     the rollouts, as the CLI and the fleet dashboard show them;
//   - the driver (driver.go and friends), which connects the decisions to
//     the broker through package fleet's MQTT client.
package ctl

import "errors"

// Error classes: every error of this package wraps one of them.
var (
	// ErrInput: a bad argument, selector, file or document (exit code 2).
	ErrInput = errors.New("fleet: bad input")
	// ErrBroker: the broker could not be reached or refused us.
	ErrBroker = errors.New("fleet: broker")
	// ErrLease: another controller drives this rollout.
	ErrLease = errors.New("fleet: rollout driven by another controller")
	// ErrNotFound: no such rollout or device on the broker.
	ErrNotFound = errors.New("fleet: not found")
)
