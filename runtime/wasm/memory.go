package wasm

import (
	"sync"

	"github.com/tetratelabs/wazero/experimental"
)

// Guest memories live outside the Go heap, in anonymous mappings that
// reserve the memory's maximum up front:
//   - a new instance gets zero pages without zeroing anything: the kernel
//     maps a zero page on first touch, and pages the guest never touches
//     cost no RSS;
//   - memory.grow never copies (the reservation does not move);
//   - the Go heap does not carry 64 KiB or more per instance, so
//     instantiation does not drive garbage collection.
// A closed instance's mapping goes to a pool and the next instance with
// the same maximum takes it. Small memories are zeroed in place (pages
// stay resident, so the next instance takes no page faults), up to a
// budget of resident pooled bytes; the others have their pages dropped
// with madvise(MADV_DONTNEED), which costs a syscall with a TLB shootdown
// and a page fault per page touched again (instantiating with it
// measured 15 µs of CPU against 7 µs with zeroing in place).
//
// Host functions get views into guest memory (runtime.Memory.Read): a view
// is valid during the host call only, as the runtime's contract says; after
// the instance is closed its memory may be unmapped or belong to another
// instance.

const (
	// maxPooled bounds the mappings a runtime keeps for reuse.
	maxPooled = 256
	// maxZeroed is the largest memory zeroed in place when pooled.
	maxZeroed = 256 << 10
	// maxResident bounds the resident bytes of the pooled memories.
	maxResident = 2 << 20
)

// memPool allocates guest memories for one Runtime and keeps closed ones
// for reuse, by size.
type memPool struct {
	mu       sync.Mutex
	free     map[uint64][]*linearMemory
	n        int
	resident uint64 // bytes of pooled memories zeroed in place
	live     int    // mapped memories handed out and not freed
	closed   bool
	keep     bool // closed with guest code still running: unmap nothing
}

func newMemPool() *memPool { return &memPool{free: map[uint64][]*linearMemory{}} }

// instAlloc is the allocator wazero gets for one instantiation. It
// remembers the memory: when wazero fails to instantiate (a failing start
// function; a data segment out of bounds, which the instrumenter refuses
// first) it drops the instance without freeing its memory, and Instantiate
// frees it with release.
type instAlloc struct {
	pool *memPool
	mem  *linearMemory
}

var _ experimental.MemoryAllocator = (*instAlloc)(nil)

// Allocate is called by wazero for an instance with a memory; maxBytes
// is the memory's maximum (the instrumenter sets one, at most the
// container's limit).
func (a *instAlloc) Allocate(_, maxBytes uint64) experimental.LinearMemory {
	a.mem = a.pool.get(maxBytes, a)
	return a.mem
}

// release frees the memory if wazero has not: it is still a's.
func (a *instAlloc) release() {
	if a.mem != nil {
		a.pool.put(a.mem, a)
	}
}

// get hands out a memory of maxBytes to owner.
func (p *memPool) get(maxBytes uint64, owner *instAlloc) *linearMemory {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l := p.free[maxBytes]; len(l) > 0 {
		m := l[len(l)-1]
		p.free[maxBytes] = l[:len(l)-1]
		p.n--
		p.live++
		p.resident -= m.resident
		m.resident = 0
		m.owner = owner
		return m
	}
	m := &linearMemory{pool: p, owner: owner}
	if buf, err := mapMemory(maxBytes); err == nil {
		m.buf = buf
		p.live++
	} else {
		// No address space for it (or no mmap here): an ordinary slice,
		// grown by copying, like wazero's own.
		m.heap = true
	}
	return m
}

// put takes back a memory: from wazero when its instance closes (owner
// nil: whoever holds it), or from release (only if owner still holds
// it). A memory already freed is left alone, so that a late release
// cannot free it under its next instance.
func (p *memPool) put(m *linearMemory, owner *instAlloc) {
	if m.heap {
		return
	}
	p.mu.Lock()
	if m.owner == nil || (owner != nil && m.owner != owner) {
		p.mu.Unlock()
		return
	}
	m.owner = nil
	p.live--
	if p.keep {
		p.mu.Unlock()
		return
	}
	if p.closed || p.n >= maxPooled {
		p.mu.Unlock()
		_ = unmapMemory(m.buf)
		return
	}
	zero := m.used <= maxZeroed && p.resident+m.used <= maxResident
	if zero {
		m.resident = m.used
		p.resident += m.used
	}
	p.n++ // counted now, so that concurrent puts respect maxPooled
	p.mu.Unlock()

	if zero {
		clear(m.buf[:m.used])
	} else if dropPages(m.buf[:m.used]) != nil {
		p.mu.Lock()
		p.n--
		p.mu.Unlock()
		_ = unmapMemory(m.buf)
		return
	}
	m.used = 0
	p.mu.Lock()
	if p.closed { // close reset the counts
		p.mu.Unlock()
		if !p.keep {
			_ = unmapMemory(m.buf)
		}
		return
	}
	size := uint64(len(m.buf))
	p.free[size] = append(p.free[size], m)
	p.mu.Unlock()
}

// close unmaps the pooled mappings; memories freed later are unmapped at
// once, or, if some guest code may still be running (!drained), never:
// leaking them is better than a guest fault in unmapped memory.
func (p *memPool) close(drained bool) {
	p.mu.Lock()
	free := p.free
	p.free, p.n, p.resident, p.closed = nil, 0, 0, true // live stays: still in use
	p.keep = !drained
	p.mu.Unlock()
	for _, l := range free {
		for _, m := range l {
			_ = unmapMemory(m.buf)
		}
	}
}

// linearMemory is one guest memory: a mapping of its maximum size, or a
// heap slice when no mapping could be made.
type linearMemory struct {
	pool     *memPool
	owner    *instAlloc // nil while free (guarded by pool.mu)
	buf      []byte
	cur      []byte // the memory as wazero has it now (the last Reallocate)
	used     uint64 // the largest size handed out: what may have been touched
	resident uint64 // while pooled: bytes zeroed in place
	heap     bool
}

var _ experimental.LinearMemory = (*linearMemory)(nil)

// Reallocate returns the memory at size bytes, or nil past the maximum
// (memory.grow then fails).
func (m *linearMemory) Reallocate(size uint64) []byte {
	if m.heap {
		if m.buf == nil || size > uint64(cap(m.buf)) {
			nb := make([]byte, size, max(size, 2*uint64(cap(m.buf))))
			copy(nb, m.buf)
			m.buf = nb
		}
		m.buf = m.buf[:size]
		m.cur = m.buf
		return m.buf
	}
	if size > uint64(len(m.buf)) {
		return nil
	}
	m.used = max(m.used, size)
	m.cur = m.buf[:size:size]
	return m.cur
}

// Free is called by wazero when the instance is closed.
func (m *linearMemory) Free() { m.pool.put(m, nil) }
