package instrument

import (
	"fmt"

	"github.com/tinycontainer/tinycontainer/runtime"
)

// validate checks, before anything is rewritten, what rewriting could
// otherwise hide: an index or limit that is invalid in the guest must not
// become valid in the output, where the instrumenter adds globals,
// functions, types and a memory maximum of its own. (An export of global
// N, one past the guest's last, would name the fuel counter; a memory
// maximum above 65,536 pages would be clamped to a valid one.) The rest of
// validation (operand types) is wazero's, on the output, which keeps every
// instruction of the guest with its types.
func (m *module) validate() error {
	if mem := m.memory; mem != nil {
		if mem.min > maxPages {
			return fmt.Errorf("%w: memory minimum of %d pages is above 65536 (4 GiB)", runtime.ErrInvalidCode, mem.min)
		}
		if mem.hasMax && mem.max > maxPages {
			return fmt.Errorf("%w: memory maximum of %d pages is above 65536 (4 GiB)", runtime.ErrInvalidCode, mem.max)
		}
		if mem.hasMax && mem.min > mem.max {
			return fmt.Errorf("%w: memory minimum %d is above its maximum %d", runtime.ErrInvalidCode, mem.min, mem.max)
		}
	}
	for i, t := range m.tables {
		if t.hasMax && t.min > t.max {
			return fmt.Errorf("%w: table %d: minimum %d is above its maximum %d", runtime.ErrInvalidCode, m.nImportTabs+uint32(i), t.min, t.max)
		}
	}
	nFuncs := m.nImportFuncs + uint32(len(m.funcTypes))
	nTables := m.nImportTabs + uint32(len(m.tables))
	for _, ex := range m.exports {
		var n uint32
		var what string
		switch ex.kind {
		case ExternFunc:
			n, what = nFuncs, "function"
		case ExternTable:
			n, what = nTables, "table"
		case ExternMemory:
			n, what = 0, "memory"
			if m.memory != nil {
				n = 1
			}
		default:
			n, what = m.nGlobals(), "global"
		}
		if ex.idx >= n {
			return fmt.Errorf("%w: export %q names %s %d, the module has %d", runtime.ErrInvalidCode, ex.name, what, ex.idx, n)
		}
	}
	if m.start != nil {
		s := *m.start
		if s >= nFuncs {
			return fmt.Errorf("%w: start function %d, the module has %d", runtime.ErrInvalidCode, s, nFuncs)
		}
		var t FuncType
		if s < m.nImportFuncs {
			t = m.types[m.importFuncs[s]]
		} else {
			t = m.types[m.funcTypes[s-m.nImportFuncs]]
		}
		if len(t.Params) != 0 || len(t.Results) != 0 {
			return fmt.Errorf("%w: start function %d has type %v, not () -> ()", runtime.ErrInvalidCode, s, t)
		}
	}
	return nil
}
