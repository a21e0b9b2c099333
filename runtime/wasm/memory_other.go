//go:build !linux

package wasm

import "errors"

var errNoMmap = errors.New("no anonymous mappings on this system")

func mapMemory(uint64) ([]byte, error) { return nil, errNoMmap }
func dropPages([]byte) error           { return errNoMmap }
func unmapMemory([]byte) error         { return errNoMmap }
