//go:build linux && (amd64 || arm64)

package ebpf

import (
	"fmt"
	goruntime "runtime"
	"syscall"
	"unsafe"
)

// jitSupported: this platform compiles eBPF to machine code.
const jitSupported = true

// Offsets into jitState used by the generated code.
var (
	offRegs   = int32(unsafe.Offsetof(jitState{}.regs))
	offFuel   = int32(unsafe.Offsetof(jitState{}.fuel))
	offResume = int32(unsafe.Offsetof(jitState{}.resume))
	offExit   = int32(unsafe.Offsetof(jitState{}.exit))
	offArg    = int32(unsafe.Offsetof(jitState{}.arg))
	offAddr   = int32(unsafe.Offsetof(jitState{}.addr))
	offDepth  = int32(unsafe.Offsetof(jitState{}.depth))
	offHostFP = int32(unsafe.Offsetof(jitState{}.hostFP))
	offStack  = int32(unsafe.Offsetof(jitState{}.stack))
	offData   = int32(unsafe.Offsetof(jitState{}.data))
	offSave   = int32(unsafe.Offsetof(jitState{}.save))
	offFrames = int32(unsafe.Offsetof(jitState{}.frames))
)

func offReg(r uint8) int32 { return offRegs + 8*int32(r) }

// jitCode is a program's machine code, mapped read+execute. It is unmapped
// when nothing references it any more.
type jitCode struct {
	mem   []byte
	entry uintptr // loads the guest registers, jumps to st.resume
	start uintptr // instruction 0
}

func (j *jitCode) entryPC() uintptr { return j.entry }
func (j *jitCode) startPC() uintptr { return j.start }

// mapCode copies code into a fresh mapping and makes it read+execute
// (never writable and executable at once); instruction 0 is at start.
func mapCode(code []byte, start int) (*jitCode, error) {
	size := (len(code) + 4095) &^ 4095
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return nil, fmt.Errorf("ebpf: jit: mapping %d bytes of code: %w", size, err)
	}
	copy(mem, code)
	flushCode(mem[:len(code)])
	if err := syscall.Mprotect(mem, syscall.PROT_READ|syscall.PROT_EXEC); err != nil {
		syscall.Munmap(mem)
		return nil, fmt.Errorf("ebpf: jit: protecting code: %w", err)
	}
	base := uintptr(unsafe.Pointer(&mem[0]))
	j := &jitCode{mem: mem, entry: base, start: base + uintptr(start)}
	goruntime.AddCleanup(j, func(m []byte) { syscall.Munmap(m) }, mem)
	return j, nil
}
