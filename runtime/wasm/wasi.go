package wasm

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"math"

	"github.com/tetratelabs/wazero/api"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// WASI errno values (wasi_snapshot_preview1).
const (
	wasiSuccess  = 0
	wasiEAGAIN   = 6
	wasiEBADF    = 8
	wasiEFAULT   = 21
	wasiEINVAL   = 28
	wasiEIO      = 29
	wasiEMSGSIZE = 35
	wasiENOENT   = 44
	wasiENOSPC   = 51
	wasiENOSYS   = 52
	wasiEPERM    = 63
)

// wasiErrno maps a negative ABI result to a WASI errno.
func wasiErrno(r int32) uint64 {
	switch abi.Errno(-r) {
	case abi.EPERM:
		return wasiEPERM
	case abi.ENOENT:
		return wasiENOENT
	case abi.EBADF:
		return wasiEBADF
	case abi.EAGAIN:
		return wasiEAGAIN
	case abi.EFAULT:
		return wasiEFAULT
	case abi.EINVAL:
		return wasiEINVAL
	case abi.ENOSPC:
		return wasiENOSPC
	case abi.ENOSYS:
		return wasiENOSYS
	case abi.EMSGSIZE:
		return wasiEMSGSIZE
	}
	return wasiEIO
}

const (
	// maxLine bounds the buffered partial log line; a longer line is
	// logged in pieces of this size.
	maxLine = 1024
	// maxWrite bounds the bytes one fd_write consumes (a short write, as
	// POSIX allows), so a hostile iovec list cannot keep the host busy.
	maxWrite = 4096
	// maxIovs bounds the iovec entries one fd_write reads (IOV_MAX): a
	// list of empty ones would otherwise cost the host time for nothing.
	maxIovs = 1024
	// iovWork is what reading one iovec entry is charged.
	iovWork = 16
)

// view returns n bytes of guest memory at ptr, or nil, false.
func view(mem runtime.Memory, ptr, n uint64) ([]byte, bool) {
	if ptr > math.MaxUint32 || n > math.MaxUint32 {
		return nil, false
	}
	return mem.Read(uint32(ptr), uint32(n))
}

// wasiFdWrite is fd_write(fd, iovs, iovs_len, nwritten) -> errno. Standard
// output and error go to the log endpoint, one line per call.
func wasiFdWrite(ctx context.Context, mod api.Module, stack []uint64) {
	a := ctx.(*activation)
	fd, iovs, n, nwPtr := api.DecodeU32(stack[0]), uint64(api.DecodeU32(stack[1])), uint64(api.DecodeU32(stack[2])), uint64(api.DecodeU32(stack[3]))
	if fd != 1 && fd != 2 {
		stack[0] = wasiEBADF
		return
	}
	t0 := runtime.Now() // a log line's cost varies: what it took is charged too
	mem := a.memory(mod)
	nw, ok := view(mem, nwPtr, 4)
	if !ok {
		stack[0] = wasiEFAULT
		return
	}
	var total uint32
	var errno uint64
	k := uint64(0)
	for ; k < min(n, maxIovs) && total < maxWrite; k++ {
		iov, ok := view(mem, iovs+8*k, 8)
		if !ok {
			errno = wasiEFAULT
			break
		}
		ptr, ln := binary.LittleEndian.Uint32(iov), binary.LittleEndian.Uint32(iov[4:])
		ln = min(ln, maxWrite-total)
		data, ok := view(mem, uint64(ptr), uint64(ln))
		if !ok {
			errno = wasiEFAULT
			break
		}
		if errno = a.logWrite(data); errno != wasiSuccess {
			break
		}
		total += ln
	}
	if errno != wasiSuccess && total == 0 {
		stack[0] = errno
		a.spend(callWork + int(k)*iovWork + int(runtime.Now()-t0))
		return
	}
	binary.LittleEndian.PutUint32(nw, total)
	stack[0] = wasiSuccess
	a.spend(callWork + int(k)*iovWork + int(total) + int(runtime.Now()-t0))
}

// logWrite adds data to the partial line, logging every complete line.
func (a *activation) logWrite(data []byte) uint64 {
	for len(data) > 0 {
		i := 0
		for i < len(data) && data[i] != '\n' && len(a.line)+i < maxLine {
			i++
		}
		a.line = append(a.line, data[:i]...)
		if i < len(data) && data[i] == '\n' {
			i++
		} else if len(a.line) < maxLine {
			return wasiSuccess // partial line, kept for later
		}
		data = data[i:]
		if errno := a.flushLine(); errno != wasiSuccess {
			return errno
		}
	}
	return wasiSuccess
}

// flushLine logs the buffered line. A line the log refuses is dropped.
func (a *activation) flushLine() uint64 {
	a.work += lineWork + len(a.line) // checked by the caller's spend
	line := a.line
	a.line = a.line[:0]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if r := a.host.CallName("log", abi.OpWrite, line, len(line)); r < 0 {
		return wasiErrno(r)
	}
	return wasiSuccess
}

// wasiClockTimeGet is clock_time_get(id, precision, result_ptr) -> errno.
// Every clock reads the device's monotonic clock endpoint.
func wasiClockTimeGet(ctx context.Context, mod api.Module, stack []uint64) {
	a := ctx.(*activation)
	id, resPtr := api.DecodeU32(stack[0]), uint64(api.DecodeU32(stack[2]))
	if id > 3 { // realtime, monotonic, process and thread CPU time
		stack[0] = wasiEINVAL
		return
	}
	out, ok := view(a.memory(mod), resPtr, 8)
	if !ok {
		stack[0] = wasiEFAULT
		return
	}
	buf := a.clock[:]
	r := a.host.CallName("clock", abi.OpRead, buf, 0)
	switch {
	case r < 0:
		stack[0] = wasiErrno(r)
		return
	case r != 8:
		stack[0] = wasiEIO
		return
	}
	binary.LittleEndian.PutUint64(out, binary.LittleEndian.Uint64(buf)*1000)
	stack[0] = wasiSuccess
	a.spend(callWork)
}

// wasiRandomGet is random_get(buf, len) -> errno.
func wasiRandomGet(ctx context.Context, mod api.Module, stack []uint64) {
	a := ctx.(*activation)
	b, ok := view(a.memory(mod), uint64(api.DecodeU32(stack[0])), uint64(api.DecodeU32(stack[1])))
	if !ok {
		stack[0] = wasiEFAULT
		return
	}
	// In chunks, each charged: one call may fill all of the guest's
	// memory, and the budget is checked (and the guest may be suspended)
	// between chunks.
	for len(b) > 0 {
		n := min(len(b), randChunk)
		_, _ = rand.Read(b[:n]) // never fails (crypto/rand documents it)
		b = b[n:]
		a.spend(callWork + n)
	}
	stack[0] = wasiSuccess
	a.spend(callWork)
}

// wasiProcExit is proc_exit(code): it ends the activation with that exit
// code by unwinding the guest.
func wasiProcExit(ctx context.Context, _ api.Module, stack []uint64) {
	a := ctx.(*activation)
	a.exit.code = int32(api.DecodeU32(stack[0]))
	panic(&a.exit)
}

// wasiSizesGet is args_sizes_get and environ_sizes_get: no arguments, no
// environment.
func wasiSizesGet(ctx context.Context, mod api.Module, stack []uint64) {
	a := ctx.(*activation)
	mem := a.memory(mod)
	count, ok1 := view(mem, uint64(api.DecodeU32(stack[0])), 4)
	size, ok2 := view(mem, uint64(api.DecodeU32(stack[1])), 4)
	if !ok1 || !ok2 {
		stack[0] = wasiEFAULT
		return
	}
	binary.LittleEndian.PutUint32(count, 0)
	binary.LittleEndian.PutUint32(size, 0)
	stack[0] = wasiSuccess
	a.spend(callWork)
}

// wasiEmptyGet is args_get and environ_get: there is nothing to write.
func wasiEmptyGet(ctx context.Context, _ api.Module, stack []uint64) {
	stack[0] = wasiSuccess
	ctx.(*activation).spend(callWork)
}

// exitSignal is the panic value of proc_exit.
type exitSignal struct{ code int32 }

func (e *exitSignal) Error() string { return "proc_exit" }
