//go:build !(linux && (amd64 || arm64))

package ebpf

import "errors"

// jitSupported: this platform has no eBPF compiler; programs are
// interpreted.
const jitSupported = false

type jitCode struct{}

func jitCompile([]insn, uint32, uint32, uint32) (*jitCode, error) {
	return nil, errors.New("ebpf: no compiler for this platform")
}

func (*jitCode) entryPC() uintptr { return 0 }
func (*jitCode) startPC() uintptr { return 0 }

func jitCall(uintptr, *jitState) { panic("ebpf: no compiler for this platform") }
