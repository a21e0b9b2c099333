package instrument

import (
	"context"
	goruntime "runtime"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/runtime"
)

// straightModule is a module whose exported function "run" is one
// straight-line body of the largest size allowed (MaxFuncSize), made of
// unit repeated: issue 10's shape (a 3 MB straight-line module reached
// its checkpoints 0.56 s apart; the function size cap now bounds it, this
// makes the bound explicit). Function 0 is a free helper f (61
// instructions adding to a global), called by the "call" shape; global 0
// is an i32, global 1 an i64.
func straightModule(unit []byte) (code []byte, units int) {
	b := testModule()
	b = append(b, testSection(secType, 1, 0x60, 0, 0)...)
	b = append(b, testSection(secFunction, 2, 0, 0)...)
	b = append(b, testSection(secGlobal, 2, 0x7F, 1, 0x41, 0, 0x0B, 0x7E, 1, 0x42, 0, 0x0B)...)
	b = append(b, testSection(secExport, 1, 3, 'r', 'u', 'n', 0, 1)...)
	var f []byte
	f = append(f, 0)
	for range 15 {
		f = append(f, 0x23, 0, 0x41, 1, 0x6A, 0x24, 0) // g += 1
	}
	f = append(f, 0x0B)
	run := []byte{0}
	for len(run)+len(unit)+1 <= MaxFuncSize-16 {
		run = append(run, unit...)
		units++
	}
	run = append(run, 0x0B)
	body := appendU32(nil, 2)
	body = appendU32(body, uint32(len(f)))
	body = append(body, f...)
	body = appendU32(body, uint32(len(run)))
	body = append(body, run...)
	return append(b, testSection(secCode, body...)...), units
}

// TestStraightLineCheckpoints: a straight-line function of the largest
// size reaches the checkpoint every Interval ticks of its work, not once
// per call: its region is cut into pieces, each charged where it starts.
// The verdict is the count of checkpoints; the CPU time between two is
// logged (BENCHMARKS.md, wasm/checkpoint_gap_straight).
func TestStraightLineCheckpoints(t *testing.T) {
	for _, shape := range []struct {
		name string
		unit []byte
		cost int // estimated units of one unit
	}{
		{"call", []byte{0x10, 0}, 1 + 61},                        // call f
		{"div", []byte{0x23, 1, 0x42, 7, 0x80, 0x24, 1}, 4 + 31}, // g64 = g64 / 7 (i64.div_u)
		{"add", []byte{0x23, 0, 0x41, 1, 0x6A, 0x24, 0}, 4},      // g += 1
	} {
		for _, interp := range []bool{false, true} {
			code, units := straightModule(shape.unit)
			res, err := Instrument(code, Options{})
			if err != nil {
				t.Fatal(err)
			}
			b := newBare(t, interp)
			var last, gap time.Duration
			b.onCheckpoint = func() {
				now, _ := runtime.ThreadCPU()
				gap = max(gap, now-last)
				last = now
			}
			mod := b.instantiate(t, res.Code)
			goruntime.LockOSThread()
			const calls = 20
			n0 := b.checkpoints.Load()
			last, _ = runtime.ThreadCPU()
			for range calls {
				if _, err := mod.ExportedFunction("run").Call(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			goruntime.UnlockOSThread()
			got := b.checkpoints.Load() - n0
			ticks := calls * units * shape.cost / unitsPerTick
			want := int64(ticks/DefaultInterval)*9/10 - 1 // pieces round their charge down
			t.Logf("%s interpreter=%v: %d x %d units of %d estimated instructions, %d checkpoints; most CPU between two checkpoints %v",
				shape.name, interp, calls, units, shape.cost, got, gap)
			if got < want {
				t.Errorf("%s interpreter=%v: %d checkpoints in %d calls of ~%d ticks, want at least %d", shape.name, interp, got, calls, ticks/calls, want)
			}
		}
	}
}
