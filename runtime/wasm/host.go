package wasm

import (
	"context"
	"fmt"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/tinycontainer/tinycontainer/runtime"
	"github.com/tinycontainer/tinycontainer/runtime/wasm/instrument"
)

const (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// hostFunc is one function the runtime offers to guests.
type hostFunc struct {
	module, name    string
	params, results []api.ValueType
	fn              api.GoModuleFunc
}

const wasiModule = "wasi_snapshot_preview1"

// hostFuncs is the whole import surface: the guest ABI (SPEC section 2),
// the WASI subset, and the instrumenter's checkpoint. Compile refuses
// any other import.
var hostFuncs = []hostFunc{
	{"tc", "open", []api.ValueType{i32, i32}, []api.ValueType{i32}, tcOpen},
	{"tc", "call", []api.ValueType{i32, i32, i32, i32, i32}, []api.ValueType{i32}, tcCall},
	{"tc", "close", []api.ValueType{i32}, []api.ValueType{i32}, tcClose},
	{instrument.CheckpointModule, instrument.CheckpointName, nil, nil, checkpoint},
	{wasiModule, "fd_write", []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}, wasiFdWrite},
	{wasiModule, "clock_time_get", []api.ValueType{i32, i64, i32}, []api.ValueType{i32}, wasiClockTimeGet},
	{wasiModule, "random_get", []api.ValueType{i32, i32}, []api.ValueType{i32}, wasiRandomGet},
	{wasiModule, "proc_exit", []api.ValueType{i32}, nil, wasiProcExit},
	{wasiModule, "args_sizes_get", []api.ValueType{i32, i32}, []api.ValueType{i32}, wasiSizesGet},
	{wasiModule, "args_get", []api.ValueType{i32, i32}, []api.ValueType{i32}, wasiEmptyGet},
	{wasiModule, "environ_sizes_get", []api.ValueType{i32, i32}, []api.ValueType{i32}, wasiSizesGet},
	{wasiModule, "environ_get", []api.ValueType{i32, i32}, []api.ValueType{i32}, wasiEmptyGet},
}

// instantiateHost registers the host modules in rt.
func instantiateHost(ctx context.Context, rt wazero.Runtime) error {
	builders := map[string]wazero.HostModuleBuilder{}
	var order []string
	for _, h := range hostFuncs {
		b, ok := builders[h.module]
		if !ok {
			b = rt.NewHostModuleBuilder(h.module)
			builders[h.module] = b
			order = append(order, h.module)
		}
		b.NewFunctionBuilder().WithGoModuleFunction(h.fn, h.params, h.results).Export(h.name)
	}
	for _, name := range order {
		if _, err := builders[name].Instantiate(ctx); err != nil {
			return fmt.Errorf("host module %s: %w", name, err)
		}
	}
	return nil
}

// checkImports refuses what the runtime does not offer, naming it.
func checkImports(imports []instrument.Import) (usesExit bool, err error) {
	for _, im := range imports {
		if im.Kind != instrument.ExternFunc {
			return false, fmt.Errorf("%w: import %s.%s: only functions can be imported", runtime.ErrInvalidCode, im.Module, im.Name)
		}
		var found *hostFunc
		for i := range hostFuncs {
			h := &hostFuncs[i]
			if h.module == im.Module && h.name == im.Name && h.module != instrument.CheckpointModule {
				found = h
				break
			}
		}
		if found == nil {
			return false, fmt.Errorf("%w: import %s.%s is not offered (the ABI offers tc.open, tc.call, tc.close and a WASI subset)", runtime.ErrInvalidCode, im.Module, im.Name)
		}
		want := instrument.FuncType{Params: found.params, Results: found.results}
		if im.Type.String() != want.String() {
			return false, fmt.Errorf("%w: import %s.%s has type %v, want %v", runtime.ErrInvalidCode, im.Module, im.Name, im.Type, want)
		}
		if found.module == wasiModule && found.name == "proc_exit" {
			usesExit = true
		}
	}
	return usesExit, nil
}

// tcOpen is tc.open(name_ptr, name_len) -> handle.
func tcOpen(ctx context.Context, mod api.Module, stack []uint64) {
	a := ctx.(*activation)
	stack[0] = api.EncodeI32(a.host.Open(a.memory(mod), api.DecodeU32(stack[0]), api.DecodeU32(stack[1])))
	a.spend(callWork)
}

// tcCall is tc.call(handle, op, buf_ptr, in_len, buf_cap) -> n.
//
// When the host has a buffer fast path, the buffer is bounds-checked here
// against the memory as wazero has it (our allocator's current slice), which
// saves the interface call of runtime.Memory.Read; anything out of bounds
// goes the full way, which reports the ABI's errors in order.
func tcCall(ctx context.Context, mod api.Module, stack []uint64) {
	a := ctx.(*activation)
	h, op, ptr := api.DecodeU32(stack[0]), api.DecodeU32(stack[1]), api.DecodeU32(stack[2])
	in, bufCap := api.DecodeU32(stack[3]), api.DecodeU32(stack[4])
	if lm := a.inst.alloc.mem; a.bufHost != nil && lm != nil {
		cur := lm.cur // what wazero itself uses now, memory.grow included
		if end := uint64(ptr) + uint64(max(in, bufCap)); end <= uint64(len(cur)) {
			if a.mem == nil {
				a.memory(mod)
			}
			// a stands for the guest memory (see activation.Read).
			stack[0] = api.EncodeI32(a.bufHost.CallBuf(a, h, op, ptr, cur[ptr:end:end], in, bufCap))
			if n := max(in, bufCap); n > smallCall {
				a.spend(callWork + int(n/bytesPerWork))
			}
			return
		}
	}
	stack[0] = api.EncodeI32(a.host.Call(a.memory(mod), h, op, ptr, in, bufCap))
	if n := max(in, bufCap); n > smallCall {
		a.spend(callWork + int(n/bytesPerWork))
	}
}

// tcClose is tc.close(handle) -> 0.
func tcClose(ctx context.Context, _ api.Module, stack []uint64) {
	a := ctx.(*activation)
	stack[0] = api.EncodeI32(a.host.Close(api.DecodeU32(stack[0])))
	a.spend(callWork)
}

// checkpoint is reached by instrumented code every few thousand ticks. It
// ends the activation by panicking; wazero unwinds the guest and returns
// the panic value wrapped as the call's error. The activation may also be
// suspended here (Budget.Checkpoint blocks): the guest's stack and memory
// stay as they are and it goes on when its scheduler resumes it.
func checkpoint(ctx context.Context, _ api.Module, _ []uint64) {
	ctx.(*activation).check()
}

func (a *activation) check() {
	a.work = 0
	if a.budget.Checkpoint() {
		panic(runtime.ErrBudget)
	}
	if a.inst.closing.Load() || a.inst.m.r.closing.Load() {
		panic(errClosing)
	}
	if a.done != nil {
		select {
		case <-a.done:
			panic(a.Context.Err())
		default:
		}
	}
}

// Host work is charged in rough nanoseconds of host CPU: a host function
// that does work for the guest (copies, fills, generates, writes bytes)
// spends it, and past hostWork the budget is checked as at a checkpoint.
// So no loop of host calls, however few guest instructions it takes
// between them, stretches the distance between two budget checks (and two
// chances to preempt) beyond ~hostWork of host CPU.
const (
	hostWork = 50_000
	// callWork is one tc.call's fixed cost; its bytes are charged at
	// bytesPerWork each. A call of at most smallCall bytes is charged
	// nothing here: the instrumenter counts it as a tick, and a loop of
	// them reaches a checkpoint within ~4,096 such calls (~0.2 ms), so
	// the hot path of small calls pays one comparison.
	callWork     = 64
	bytesPerWork = 8
	smallCall    = 256
	// lineWork is one log line (the log endpoint keeps and forwards it).
	lineWork = 1_000
	// randChunk is how many random bytes random_get makes between two
	// charges; random bytes cost about 1 ns each.
	randChunk = 16 << 10
)

// spend charges n units of host work and checks the budget when they add
// up to hostWork. It may panic (the activation ends) or block (it is
// suspended). It only decides when the budget is checked (the budget
// itself counts CPU time), so erring high costs a few more checks, never
// a wrong verdict; host functions whose cost varies add what they took.
func (a *activation) spend(n int) {
	a.work += n
	if a.work >= hostWork {
		a.check()
	}
}

// noMemory stands for the memory of a guest that has none.
type noMemory struct{}

func (noMemory) Read(uint32, uint32) ([]byte, bool) { return nil, false }

var _ runtime.Memory = noMemory{}
