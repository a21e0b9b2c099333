package instrument

import (
	"fmt"
	"math"

	"github.com/tinycontainer/tinycontainer/runtime"
)

// Active segments are copied into their table or memory when the module
// is instantiated; one that does not fit makes instantiation trap
// (WebAssembly 2.0). wazero v1.12 does not always get there: it skips an
// element segment past its table's end (and the segments after it), and
// on 32-bit platforms it computes the end of a segment in an int, which
// overflows: an element segment at offset 2^31 or more, or a data segment
// ending past 2^31, indexes the table or memory out of range and panics,
// taking the device down. So the segments whose place is known before
// instantiation are checked here, in 64-bit arithmetic, and a module with
// one that cannot fit is refused.
//
// What is not known here: the value of an imported global (an offset
// global.get reads; our runtime links no globals, so such a module is
// never instantiated) and the length of an imported table (our runtime
// links no tables either), which the checks bound by maxTableLen.

// maxTableLen bounds every table's length: wazero indexes tables with Go
// ints (on a 32-bit device, at most 2^31 - 1), and none of ours is near.
const maxTableLen = math.MaxInt32

// segment is an active element or data segment: what instantiation
// copies, and where.
type segment struct {
	data   bool   // a data segment, else an element segment
	i      uint32 // its index in its section
	table  uint32 // an element segment's table
	offset []byte // the offset's constant expression, end included
	n      uint32 // its length: elements or bytes
}

func (m *module) addActive(s segment) { m.active = append(m.active, s) }

// checkSegments refuses an active segment that would make instantiation
// trap: one that ends past its memory's or table's initial size.
func (m *module) checkSegments() error {
	for _, s := range m.active {
		off, ok := constOffset(s.offset)
		if !ok {
			continue // global.get: known when the module is linked
		}
		end := uint64(off) + uint64(s.n)
		if s.data {
			if m.memory == nil {
				continue // a data segment without a memory: invalid, wazero says so
			}
			if size := uint64(m.memory.min) * PageSize; end > size {
				return fmt.Errorf("%w: data segment %d: bytes %d to %d are past the end of the memory (%d bytes): instantiating it would trap",
					runtime.ErrInvalidCode, s.i, off, end, size)
			}
			continue
		}
		var size uint64
		switch t := s.table; {
		case t < m.nImportTabs:
			size = maxTableLen // an imported table's length is known when it is linked
		case uint64(t-m.nImportTabs) < uint64(len(m.tables)):
			size = uint64(m.tables[t-m.nImportTabs].min)
		default:
			continue // no such table: invalid, wazero says so
		}
		if end > size {
			return fmt.Errorf("%w: element segment %d: elements %d to %d are past the end of table %d (%d elements): instantiating it would trap",
				runtime.ErrInvalidCode, s.i, off, end, s.table, size)
		}
	}
	return nil
}

// constOffset is the value of an offset expression that is i32.const (as
// the unsigned offset it is), or false.
func constOffset(expr []byte) (uint32, bool) {
	if len(expr) == 0 || expr[0] != 0x41 {
		return 0, false
	}
	v, err := (&reader{b: expr[1:]}).signed(32)
	if err != nil {
		return 0, false
	}
	return uint32(int32(v)), true
}
