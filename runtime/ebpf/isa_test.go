package ebpf

import (
	"fmt"
	"math"
	"testing"

	"github.com/cilium/ebpf/asm"

	"github.com/tinycontainer/tinycontainer/runtime"
)

// eval64 runs insns followed by exit and returns all 64 bits of r0 (two
// runs: the exit code is r0's low half, then r0 >> 32).
func eval64(t *testing.T, insns ...asm.Instruction) uint64 {
	t.Helper()
	return evalFuncs(t, insns)
}

// evalFuncs is eval64 with functions placed after the entry function.
func evalFuncs(t *testing.T, main []asm.Instruction, funcs ...asm.Instruction) uint64 {
	t.Helper()
	prog := func(epilogue ...asm.Instruction) []byte {
		all := append(append(append([]asm.Instruction{}, main...), epilogue...), funcs...)
		return assemble(t, all...)
	}
	lo, err := runRaw(t, prog(asm.Return()), newFakeHost())
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	hi, err := runRaw(t, prog(asm.RSh.Imm(asm.R0, 32), asm.Return()), newFakeHost())
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return uint64(uint32(hi))<<32 | uint64(uint32(lo))
}

func ld(r asm.Register, v uint64) asm.Instruction { return asm.LoadImm(r, int64(v), asm.DWord) }

// stDW is a 64-bit immediate store, which asm.StoreImm refuses to build.
func stDW(dst asm.Register, off int16, v int32) asm.Instruction {
	return asm.Instruction{OpCode: asm.StoreImmOp(asm.DWord), Dst: dst, Offset: off, Constant: int64(v)}
}

// atomicInsn builds an atomic operation with its raw immediate; asm's own
// atomic instructions lose the operation when marshalled.
func atomicInsn(imm int32, dst, src asm.Register, size asm.Size, off int16) asm.Instruction {
	return asm.Instruction{OpCode: asm.OpCode(asm.StXClass).SetMode(asm.AtomicMode).SetSize(size),
		Dst: dst, Src: src, Offset: off, Constant: int64(imm)}
}

const (
	big    = 0x1122334455667788
	minI64 = 1 << 63 // the most negative int64, as a bit pattern
	m1     = math.MaxUint64
	m132   = math.MaxUint32
)

func TestALU(t *testing.T) {
	neg := func(v int64) uint64 { return uint64(v) }
	cases := []struct {
		name  string
		insns []asm.Instruction
		want  uint64
	}{
		{"add64 imm sign-extends", []asm.Instruction{asm.Mov.Imm(asm.R0, 5), asm.Add.Imm(asm.R0, -7)}, neg(-2)},
		{"add64 reg wraps", []asm.Instruction{ld(asm.R0, m1), asm.Mov.Imm(asm.R1, 2), asm.Add.Reg(asm.R0, asm.R1)}, 1},
		{"sub64", []asm.Instruction{asm.Mov.Imm(asm.R0, 3), asm.Mov.Imm(asm.R1, 5), asm.Sub.Reg(asm.R0, asm.R1)}, neg(-2)},
		{"mul64 wraps", []asm.Instruction{ld(asm.R0, 1<<62), asm.Mul.Imm(asm.R0, 6)}, 1 << 63},
		{"div64 unsigned", []asm.Instruction{asm.Mov.Imm(asm.R0, -1), asm.Div.Imm(asm.R0, 2)}, math.MaxInt64},
		{"div64 by zero reg", []asm.Instruction{asm.Mov.Imm(asm.R0, 9), asm.Mov.Imm(asm.R1, 0), asm.Div.Reg(asm.R0, asm.R1)}, 0},
		{"div64 by zero imm", []asm.Instruction{asm.Mov.Imm(asm.R0, 9), asm.Div.Imm(asm.R0, 0)}, 0},
		{"sdiv64", []asm.Instruction{asm.Mov.Imm(asm.R0, -7), asm.SDiv.Imm(asm.R0, 2)}, neg(-3)},
		{"sdiv64 reg negative divisor", []asm.Instruction{asm.Mov.Imm(asm.R0, 7), asm.Mov.Imm(asm.R1, -2), asm.SDiv.Reg(asm.R0, asm.R1)}, neg(-3)},
		{"sdiv64 overflow", []asm.Instruction{ld(asm.R0, minI64), asm.Mov.Imm(asm.R1, -1), asm.SDiv.Reg(asm.R0, asm.R1)}, minI64},
		{"sdiv64 by zero", []asm.Instruction{asm.Mov.Imm(asm.R0, -7), asm.Mov.Imm(asm.R1, 0), asm.SDiv.Reg(asm.R0, asm.R1)}, 0},
		{"mod64", []asm.Instruction{asm.Mov.Imm(asm.R0, 17), asm.Mod.Imm(asm.R0, 5)}, 2},
		{"mod64 unsigned", []asm.Instruction{asm.Mov.Imm(asm.R0, -1), asm.Mod.Imm(asm.R0, 10)}, m1 % 10},
		{"mod64 by zero reg keeps dst", []asm.Instruction{ld(asm.R0, big), asm.Mov.Imm(asm.R1, 0), asm.Mod.Reg(asm.R0, asm.R1)}, big},
		{"mod64 by zero imm keeps dst", []asm.Instruction{ld(asm.R0, big), asm.Mod.Imm(asm.R0, 0)}, big},
		{"smod64 sign of dividend", []asm.Instruction{asm.Mov.Imm(asm.R0, -7), asm.SMod.Imm(asm.R0, 2)}, neg(-1)},
		{"smod64 negative divisor", []asm.Instruction{asm.Mov.Imm(asm.R0, 7), asm.Mov.Imm(asm.R1, -2), asm.SMod.Reg(asm.R0, asm.R1)}, 1},
		{"smod64 overflow", []asm.Instruction{ld(asm.R0, minI64), asm.Mov.Imm(asm.R1, -1), asm.SMod.Reg(asm.R0, asm.R1)}, 0},
		{"smod64 by zero keeps dst", []asm.Instruction{asm.Mov.Imm(asm.R0, -7), asm.Mov.Imm(asm.R1, 0), asm.SMod.Reg(asm.R0, asm.R1)}, neg(-7)},
		{"or64", []asm.Instruction{asm.Mov.Imm(asm.R0, 0x0f), asm.Or.Imm(asm.R0, -256)}, neg(-241)},
		{"and64 imm sign-extends", []asm.Instruction{ld(asm.R0, big), asm.And.Imm(asm.R0, -16)}, big &^ 15},
		{"xor64", []asm.Instruction{ld(asm.R0, big), ld(asm.R1, m1), asm.Xor.Reg(asm.R0, asm.R1)}, ^uint64(big)},
		{"lsh64 reg masked", []asm.Instruction{asm.Mov.Imm(asm.R0, 1), asm.Mov.Imm(asm.R1, 65), asm.LSh.Reg(asm.R0, asm.R1)}, 2},
		{"lsh64 imm masked", []asm.Instruction{asm.Mov.Imm(asm.R0, 1), asm.LSh.Imm(asm.R0, 67)}, 8},
		{"rsh64 logical", []asm.Instruction{asm.Mov.Imm(asm.R0, -1), asm.RSh.Imm(asm.R0, 60)}, 15},
		{"rsh64 by 64 is by 0", []asm.Instruction{ld(asm.R0, big), asm.Mov.Imm(asm.R1, 64), asm.RSh.Reg(asm.R0, asm.R1)}, big},
		{"arsh64", []asm.Instruction{ld(asm.R0, minI64), asm.ArSh.Imm(asm.R0, 4)}, 0xf8 << 56},
		{"arsh64 reg masked", []asm.Instruction{asm.Mov.Imm(asm.R0, -64), asm.Mov.Imm(asm.R1, 66), asm.ArSh.Reg(asm.R0, asm.R1)}, neg(-16)},
		{"neg64", []asm.Instruction{asm.Mov.Imm(asm.R0, 5), asm.Neg.Imm(asm.R0, 0)}, neg(-5)},
		{"neg64 of min", []asm.Instruction{ld(asm.R0, minI64), asm.Neg.Imm(asm.R0, 0)}, minI64},
		{"mov64 imm sign-extends", []asm.Instruction{asm.Mov.Imm(asm.R0, -1)}, m1},
		{"mov64 reg", []asm.Instruction{ld(asm.R3, big), asm.Mov.Reg(asm.R0, asm.R3)}, big},
		{"movsx8 to 64", []asm.Instruction{asm.Mov.Imm(asm.R1, 0x180), asm.MovSX8.Reg(asm.R0, asm.R1)}, neg(-128)},
		{"movsx16 to 64", []asm.Instruction{asm.Mov.Imm(asm.R1, 0x18000), asm.MovSX16.Reg(asm.R0, asm.R1)}, neg(-32768)},
		{"movsx32 to 64", []asm.Instruction{ld(asm.R1, 0x1_8000_0000), asm.MovSX32.Reg(asm.R0, asm.R1)}, neg(math.MinInt32)},
		{"lddw", []asm.Instruction{ld(asm.R0, big)}, big},

		// 32-bit operations work on the low halves and zero-extend.
		{"add32 wraps and zero-extends", []asm.Instruction{ld(asm.R0, 0xaaaa_aaaa_ffff_ffff), asm.Add.Imm32(asm.R0, 1)}, 0},
		{"add32 reg", []asm.Instruction{ld(asm.R0, 0xaaaa_aaaa_0000_0001), ld(asm.R1, 0x5555_5555_0000_0002), asm.Add.Reg32(asm.R0, asm.R1)}, 3},
		{"sub32", []asm.Instruction{asm.Mov.Imm(asm.R0, 1), asm.Sub.Imm32(asm.R0, 2)}, m132},
		{"mul32", []asm.Instruction{ld(asm.R0, 0x1_0001_0000), asm.Mul.Imm32(asm.R0, 0x10000)}, 0},
		{"mov32 imm zero-extends", []asm.Instruction{asm.Mov.Imm32(asm.R0, -1)}, m132},
		{"mov32 reg truncates", []asm.Instruction{ld(asm.R1, big), asm.Mov.Reg32(asm.R0, asm.R1)}, 0x55667788},
		{"div32", []asm.Instruction{ld(asm.R0, 0xffff_ffff_ffff_fff0), asm.Div.Imm32(asm.R0, 16)}, 0x0fff_ffff},
		{"div32 by zero", []asm.Instruction{ld(asm.R0, big), asm.Mov.Imm(asm.R1, 0), asm.Div.Reg32(asm.R0, asm.R1)}, 0},
		{"div32 by zero imm", []asm.Instruction{ld(asm.R0, big), asm.Div.Imm32(asm.R0, 0)}, 0},
		{"div32 divisor low half only", []asm.Instruction{asm.Mov.Imm(asm.R0, 100), ld(asm.R1, 0x1_0000_0000), asm.Div.Reg32(asm.R0, asm.R1)}, 0},
		{"sdiv32", []asm.Instruction{asm.Mov.Imm32(asm.R0, -7), asm.SDiv.Imm32(asm.R0, 2)}, 0xffff_fffd},
		{"sdiv32 overflow", []asm.Instruction{asm.Mov.Imm32(asm.R0, math.MinInt32), asm.Mov.Imm(asm.R1, -1), asm.SDiv.Reg32(asm.R0, asm.R1)}, 0x8000_0000},
		{"sdiv32 by zero", []asm.Instruction{asm.Mov.Imm32(asm.R0, -7), asm.Mov.Imm(asm.R1, 0), asm.SDiv.Reg32(asm.R0, asm.R1)}, 0},
		{"mod32", []asm.Instruction{ld(asm.R0, 0x7_0000_0011), asm.Mod.Imm32(asm.R0, 5)}, 2},
		{"mod32 by zero zeroes upper half", []asm.Instruction{ld(asm.R0, big), asm.Mov.Imm(asm.R1, 0), asm.Mod.Reg32(asm.R0, asm.R1)}, 0x55667788},
		{"mod32 by zero imm zeroes upper half", []asm.Instruction{ld(asm.R0, big), asm.Mod.Imm32(asm.R0, 0)}, 0x55667788},
		{"smod32", []asm.Instruction{asm.Mov.Imm32(asm.R0, -7), asm.SMod.Imm32(asm.R0, 3)}, 0xffff_ffff},
		{"smod32 by zero", []asm.Instruction{ld(asm.R0, 0x1_ffff_fff9), asm.Mov.Imm(asm.R1, 0), asm.SMod.Reg32(asm.R0, asm.R1)}, 0xffff_fff9},
		{"or32", []asm.Instruction{ld(asm.R0, big), asm.Or.Imm32(asm.R0, 0xff)}, 0x556677ff},
		{"and32", []asm.Instruction{ld(asm.R0, big), asm.And.Imm32(asm.R0, -1)}, 0x55667788},
		{"xor32", []asm.Instruction{ld(asm.R0, big), ld(asm.R1, m1), asm.Xor.Reg32(asm.R0, asm.R1)}, 0xaa998877},
		{"lsh32 masked", []asm.Instruction{asm.Mov.Imm(asm.R0, 1), asm.Mov.Imm(asm.R1, 33), asm.LSh.Reg32(asm.R0, asm.R1)}, 2},
		{"lsh32 drops high bits", []asm.Instruction{asm.Mov.Imm(asm.R0, 3), asm.LSh.Imm32(asm.R0, 31)}, 0x8000_0000},
		{"rsh32 ignores upper half", []asm.Instruction{ld(asm.R0, 0xffff_ffff_0000_0010), asm.RSh.Imm32(asm.R0, 4)}, 1},
		{"arsh32", []asm.Instruction{asm.Mov.Imm32(asm.R0, math.MinInt32), asm.ArSh.Imm32(asm.R0, 4)}, 0xf800_0000},
		{"arsh32 reg masked", []asm.Instruction{asm.Mov.Imm32(asm.R0, -64), asm.Mov.Imm(asm.R1, 34), asm.ArSh.Reg32(asm.R0, asm.R1)}, 0xffff_fff0},
		{"neg32", []asm.Instruction{asm.Mov.Imm(asm.R0, 5), asm.Neg.Imm32(asm.R0, 0)}, 0xffff_fffb},
		{"movsx8 to 32", []asm.Instruction{asm.Mov.Imm(asm.R1, 0xff), asm.MovSX8.Reg32(asm.R0, asm.R1)}, m132},
		{"movsx16 to 32", []asm.Instruction{asm.Mov.Imm(asm.R1, 0x8000), asm.MovSX16.Reg32(asm.R0, asm.R1)}, 0xffff_8000},

		// Byte order: memory is little-endian.
		{"le16", []asm.Instruction{ld(asm.R0, big), asm.HostTo(asm.LE, asm.R0, asm.Half)}, 0x7788},
		{"le32", []asm.Instruction{ld(asm.R0, big), asm.HostTo(asm.LE, asm.R0, asm.Word)}, 0x55667788},
		{"le64", []asm.Instruction{ld(asm.R0, big), asm.HostTo(asm.LE, asm.R0, asm.DWord)}, big},
		{"be16", []asm.Instruction{ld(asm.R0, big), asm.HostTo(asm.BE, asm.R0, asm.Half)}, 0x8877},
		{"be32", []asm.Instruction{ld(asm.R0, big), asm.HostTo(asm.BE, asm.R0, asm.Word)}, 0x88776655},
		{"be64", []asm.Instruction{ld(asm.R0, big), asm.HostTo(asm.BE, asm.R0, asm.DWord)}, 0x8877665544332211},
		{"bswap16", []asm.Instruction{ld(asm.R0, big), asm.BSwap(asm.R0, asm.Half)}, 0x8877},
		{"bswap32", []asm.Instruction{ld(asm.R0, big), asm.BSwap(asm.R0, asm.Word)}, 0x88776655},
		{"bswap64", []asm.Instruction{ld(asm.R0, big), asm.BSwap(asm.R0, asm.DWord)}, 0x8877665544332211},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := eval64(t, c.insns...); got != c.want {
				t.Errorf("r0 = %#x, want %#x", got, c.want)
			}
		})
	}
}

// TestJumps checks every condition, 64- and 32-bit, register and
// immediate, taken and not, against edge values.
func TestJumps(t *testing.T) {
	type cond struct {
		op   asm.JumpOp
		is64 func(a, b uint64) bool
		is32 func(a, b uint32) bool
	}
	conds := []cond{
		{asm.JEq, func(a, b uint64) bool { return a == b }, func(a, b uint32) bool { return a == b }},
		{asm.JNE, func(a, b uint64) bool { return a != b }, func(a, b uint32) bool { return a != b }},
		{asm.JGT, func(a, b uint64) bool { return a > b }, func(a, b uint32) bool { return a > b }},
		{asm.JGE, func(a, b uint64) bool { return a >= b }, func(a, b uint32) bool { return a >= b }},
		{asm.JLT, func(a, b uint64) bool { return a < b }, func(a, b uint32) bool { return a < b }},
		{asm.JLE, func(a, b uint64) bool { return a <= b }, func(a, b uint32) bool { return a <= b }},
		{asm.JSet, func(a, b uint64) bool { return a&b != 0 }, func(a, b uint32) bool { return a&b != 0 }},
		{asm.JSGT, func(a, b uint64) bool { return int64(a) > int64(b) }, func(a, b uint32) bool { return int32(a) > int32(b) }},
		{asm.JSGE, func(a, b uint64) bool { return int64(a) >= int64(b) }, func(a, b uint32) bool { return int32(a) >= int32(b) }},
		{asm.JSLT, func(a, b uint64) bool { return int64(a) < int64(b) }, func(a, b uint32) bool { return int32(a) < int32(b) }},
		{asm.JSLE, func(a, b uint64) bool { return int64(a) <= int64(b) }, func(a, b uint32) bool { return int32(a) <= int32(b) }},
	}
	vals := []uint64{0, 1, 2, m1, m1 - 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 1 << 32, 0x1_0000_0001, minI64, minI64 - 1}
	var insns []asm.Instruction
	want := uint64(0)
	n := 0
	// One program runs many comparisons; r0 collects one bit per check
	// group and the count of taken jumps must match.
	emit := func(label string, jump asm.Instruction, taken bool) {
		insns = append(insns, jump, asm.Ja.Label(label+"_end"),
			asm.Add.Imm(asm.R0, 1).WithSymbol(label), asm.Ja.Label(label+"_end"),
			asm.Mov.Imm(asm.R9, 0).WithSymbol(label+"_end"))
		if taken {
			want++
		}
		n++
	}
	for ci, c := range conds {
		for ai, a := range vals {
			for bi, b := range vals {
				l := fmt.Sprintf("c%d_%d_%d", ci, ai, bi)
				insns = append(insns, ld(asm.R1, a), ld(asm.R2, b))
				emit(l+"r", c.op.Reg(asm.R1, asm.R2, l+"r"), c.is64(a, b))
				emit(l+"r32", c.op.Reg32(asm.R1, asm.R2, l+"r32"), c.is32(uint32(a), uint32(b)))
				if int64(b) == int64(int32(b)) {
					emit(l+"k", c.op.Imm(asm.R1, int32(b), l+"k"), c.is64(a, b))
				}
				if b <= math.MaxUint32 {
					emit(l+"k32", c.op.Imm32(asm.R1, int32(b), l+"k32"), c.is32(uint32(a), uint32(b)))
				}
			}
		}
	}
	insns = append([]asm.Instruction{asm.Mov.Imm(asm.R0, 0)}, insns...)
	if got := eval64(t, insns...); got != want {
		t.Errorf("%d of %d conditional jumps taken, want %d", got, n, want)
	}
	// Each condition alone, so a miscount cannot hide in a sum.
	for _, c := range conds {
		for _, pair := range [][2]uint64{{1, 2}, {2, 1}, {m1, 1}, {1, m1}, {0x1_0000_0001, 2}} {
			a, b := pair[0], pair[1]
			var w uint64
			if c.is64(a, b) {
				w = 1
			}
			got := eval64(t, ld(asm.R1, a), ld(asm.R2, b), asm.Mov.Imm(asm.R0, 0),
				c.op.Reg(asm.R1, asm.R2, "yes"), asm.Ja.Label("out"),
				asm.Mov.Imm(asm.R0, 1).WithSymbol("yes"), asm.Mov.Imm(asm.R9, 0).WithSymbol("out"))
			if got != w {
				t.Errorf("%v %#x, %#x: got %d, want %d", c.op, a, b, got, w)
			}
		}
	}
}

func TestJumpsBackwardsAndLong(t *testing.T) {
	// Sum 1..10 with a backward conditional jump, then a gotol.
	got := eval64(t,
		asm.Mov.Imm(asm.R0, 0), asm.Mov.Imm(asm.R1, 10),
		asm.Add.Reg(asm.R0, asm.R1).WithSymbol("loop"),
		asm.Sub.Imm(asm.R1, 1),
		asm.JNE.Imm(asm.R1, 0, "loop"),
		asm.LongJump("skip"),
		asm.Mov.Imm(asm.R0, -1),
		asm.Add.Imm(asm.R0, 100).WithSymbol("skip"),
	)
	if got != 155 {
		t.Errorf("got %d, want 155", got)
	}
}

func TestLoadStore(t *testing.T) {
	fp := asm.R10
	cases := []struct {
		name  string
		insns []asm.Instruction
		want  uint64
	}{
		{"dw round trip", []asm.Instruction{ld(asm.R1, big), asm.StoreMem(fp, -8, asm.R1, asm.DWord), asm.LoadMem(asm.R0, fp, -8, asm.DWord)}, big},
		{"little-endian parts", []asm.Instruction{ld(asm.R1, big), asm.StoreMem(fp, -8, asm.R1, asm.DWord),
			asm.LoadMem(asm.R0, fp, -8, asm.Byte), asm.LoadMem(asm.R2, fp, -6, asm.Half), asm.LSh.Imm(asm.R2, 8), asm.Or.Reg(asm.R0, asm.R2),
			asm.LoadMem(asm.R2, fp, -4, asm.Word), asm.LSh.Imm(asm.R2, 24), asm.Or.Reg(asm.R0, asm.R2)}, 0x11223344_556688},
		{"narrow stores truncate", []asm.Instruction{stDW(fp, -8, 0), asm.Mov.Imm(asm.R1, -1),
			asm.StoreMem(fp, -8, asm.R1, asm.Byte), asm.StoreMem(fp, -6, asm.R1, asm.Half), asm.LoadMem(asm.R0, fp, -8, asm.DWord)}, 0xffff00ff},
		{"word store", []asm.Instruction{stDW(fp, -8, -1), ld(asm.R1, big), asm.StoreMem(fp, -8, asm.R1, asm.Word), asm.LoadMem(asm.R0, fp, -8, asm.DWord)}, 0xffffffff_55667788},
		{"imm store dw sign-extends", []asm.Instruction{stDW(fp, -16, -2), asm.LoadMem(asm.R0, fp, -16, asm.DWord)}, m1 - 1},
		{"imm stores", []asm.Instruction{asm.StoreImm(fp, -8, 0x11223344, asm.Word), asm.StoreImm(fp, -4, 0x5566, asm.Half),
			asm.StoreImm(fp, -2, 0x77, asm.Byte), asm.StoreImm(fp, -1, 0x188, asm.Byte), asm.LoadMem(asm.R0, fp, -8, asm.DWord)}, 0x88775566_11223344},
		{"sign-extending loads", []asm.Instruction{stDW(fp, -8, -2),
			asm.LoadMemSX(asm.R0, fp, -8, asm.Byte), asm.LoadMemSX(asm.R1, fp, -8, asm.Half), asm.Add.Reg(asm.R0, asm.R1),
			asm.LoadMemSX(asm.R1, fp, -8, asm.Word), asm.Add.Reg(asm.R0, asm.R1)}, uint64(1<<64 - 6)},
		{"unsigned loads zero-extend", []asm.Instruction{stDW(fp, -8, -1), asm.LoadMem(asm.R0, fp, -8, asm.Word)}, m132},
		{"pointer arithmetic", []asm.Instruction{asm.Mov.Reg(asm.R1, fp), asm.Add.Imm(asm.R1, -512), asm.StoreImm(asm.R1, 0, 42, asm.Word),
			asm.LoadMem(asm.R0, fp, -512, asm.Word)}, 42},
		{"fp value", []asm.Instruction{asm.Mov.Reg(asm.R0, fp)}, StackTop},
		{"stack starts zeroed", []asm.Instruction{asm.LoadMem(asm.R0, fp, -200, asm.DWord), asm.LoadMem(asm.R1, fp, -8, asm.DWord), asm.Or.Reg(asm.R0, asm.R1)}, 0},
		{"atomic add", []asm.Instruction{stDW(fp, -8, 40), asm.Mov.Imm(asm.R1, 2),
			atomicInsn(atomicADD, fp, asm.R1, asm.DWord, -8), asm.LoadMem(asm.R0, fp, -8, asm.DWord), asm.Add.Reg(asm.R0, asm.R1)}, 44},
		// The low word wraps to 1, the high word stays 7, r1 gets the old low word.
		{"atomic fetch add 32", []asm.Instruction{ld(asm.R1, 0x7_ffff_ffff), asm.StoreMem(fp, -8, asm.R1, asm.DWord), asm.Mov.Imm(asm.R1, 2),
			atomicInsn(atomicADD|atomicFETCH, fp, asm.R1, asm.Word, -8), asm.LoadMem(asm.R0, fp, -8, asm.DWord), asm.Add.Reg(asm.R0, asm.R1)}, 0x7_0000_0001 + 0xffff_ffff},
		{"atomic or/and/xor", []asm.Instruction{stDW(fp, -8, 0b1100), asm.Mov.Imm(asm.R1, 0b0011),
			atomicInsn(atomicOR, fp, asm.R1, asm.DWord, -8), asm.Mov.Imm(asm.R1, 0b0110), atomicInsn(atomicAND, fp, asm.R1, asm.DWord, -8),
			asm.Mov.Imm(asm.R1, 0b1111), atomicInsn(atomicXOR|atomicFETCH, fp, asm.R1, asm.DWord, -8),
			asm.LoadMem(asm.R0, fp, -8, asm.DWord), asm.LSh.Imm(asm.R0, 8), asm.Or.Reg(asm.R0, asm.R1)}, 0b1001_0000_0110},
		{"atomic fetch and/or 64", []asm.Instruction{stDW(fp, -8, 0b1100), asm.Mov.Imm(asm.R1, 0b0110),
			atomicInsn(atomicAND|atomicFETCH, fp, asm.R1, asm.DWord, -8), asm.Mov.Imm(asm.R2, 1), atomicInsn(atomicOR|atomicFETCH, fp, asm.R2, asm.DWord, -8),
			asm.LoadMem(asm.R0, fp, -8, asm.DWord), asm.LSh.Imm(asm.R0, 8), asm.Or.Reg(asm.R0, asm.R1), asm.LSh.Imm(asm.R0, 8), asm.Or.Reg(asm.R0, asm.R2)}, 0x05_0c_04},
		{"xchg", []asm.Instruction{stDW(fp, -8, 7), asm.Mov.Imm(asm.R1, 9),
			atomicInsn(atomicXCHG, fp, asm.R1, asm.DWord, -8), asm.LoadMem(asm.R0, fp, -8, asm.DWord), asm.LSh.Imm(asm.R0, 8), asm.Or.Reg(asm.R0, asm.R1)}, 0x0907},
		{"cmpxchg hit", []asm.Instruction{asm.StoreImm(fp, -8, 7, asm.Word), asm.Mov.Imm(asm.R0, 7), asm.Mov.Imm(asm.R1, 9),
			atomicInsn(atomicCMPXCHG, fp, asm.R1, asm.Word, -8), asm.LoadMem(asm.R1, fp, -8, asm.Word), asm.LSh.Imm(asm.R1, 8), asm.Or.Reg(asm.R0, asm.R1)}, 0x0907},
		{"cmpxchg miss", []asm.Instruction{stDW(fp, -8, 7), asm.Mov.Imm(asm.R0, 8), asm.Mov.Imm(asm.R1, 9),
			atomicInsn(atomicCMPXCHG, fp, asm.R1, asm.DWord, -8), asm.LoadMem(asm.R1, fp, -8, asm.DWord), asm.LSh.Imm(asm.R1, 8), asm.Or.Reg(asm.R0, asm.R1)}, 0x0707},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := eval64(t, c.insns...); got != c.want {
				t.Errorf("r0 = %#x, want %#x", got, c.want)
			}
		})
	}
}

func TestCalls(t *testing.T) {
	t.Run("local call has its own frame and keeps r6-r9", func(t *testing.T) {
		got := evalFuncs(t, []asm.Instruction{
			asm.Mov.Imm(asm.R6, 6), asm.Mov.Imm(asm.R9, 9),
			stDW(asm.R10, -8, 100),
			asm.Mov.Imm(asm.R1, 5),
			asm.Call.Label("f"),
			// r0 = f(5) + r6 + r9 + caller's stack slot
			asm.Add.Reg(asm.R0, asm.R6), asm.Add.Reg(asm.R0, asm.R9),
			asm.LoadMem(asm.R1, asm.R10, -8, asm.DWord), asm.Add.Reg(asm.R0, asm.R1),
		},
			// f(x): clobbers r6, r9 and its own -8 slot; returns 2x + its frame's depth
			asm.Mov.Imm(asm.R6, 1000).WithSymbol("f"), asm.Mov.Imm(asm.R9, 1000),
			stDW(asm.R10, -8, 7),
			asm.Mov.Reg(asm.R0, asm.R1), asm.Add.Reg(asm.R0, asm.R1),
			asm.Mov.Imm(asm.R2, StackTop), asm.Sub.Reg(asm.R2, asm.R10), asm.Add.Reg(asm.R0, asm.R2),
			asm.Return(),
		)
		if want := uint64(10 + 512 + 6 + 9 + 100); got != want {
			t.Errorf("got %d, want %d", got, want)
		}
	})
	t.Run("recursion within the depth limit", func(t *testing.T) {
		// sum(n) = n + sum(n-1), sum(0) = 0; 8 frames in all for n = 6.
		got := evalFuncs(t, []asm.Instruction{asm.Mov.Imm(asm.R1, 6), asm.Call.Label("sum")},
			asm.Mov.Imm(asm.R0, 0).WithSymbol("sum"), asm.JEq.Imm(asm.R1, 0, "ret"),
			asm.Mov.Reg(asm.R6, asm.R1), asm.Sub.Imm(asm.R1, 1), asm.Call.Label("sum"), asm.Add.Reg(asm.R0, asm.R6),
			asm.Return().WithSymbol("ret"),
		)
		if got != 21 {
			t.Errorf("got %d, want 21", got)
		}
	})
	t.Run("helpers truncate arguments and sign-extend results", func(t *testing.T) {
		h := newFakeHost()
		code := assemble(t,
			ld(asm.R1, 0xdead_0000_0000_0001), ld(asm.R2, 0xffff_ffff_0000_0002), ld(asm.R3, 3|1<<40),
			asm.Mov.Imm(asm.R4, 4), asm.Mov.Imm(asm.R5, -5),
			asm.BuiltinFunc(helperCall).Call(), // handle 1 is not open: -EBADF
			asm.Return())
		m, err := rawModule(code)
		if err != nil {
			t.Fatal(err)
		}
		in, _ := m.Instantiate(t.Context(), h)
		got, err := in.Run(t.Context(), nil)
		if err != nil || got != -9 {
			t.Fatalf("got %d, %v; want -9 (EBADF)", got, err)
		}
		want := []uint32{1, 2, 3, 4, 0xffff_fffb}
		if fmt.Sprint(h.args) != fmt.Sprint([][]uint32{want}) {
			t.Errorf("host saw %v, want %v", h.args, want)
		}
		// The 64-bit r0 is the sign-extended result.
		if r := eval64(t, asm.Mov.Imm(asm.R1, 77), asm.BuiltinFunc(helperClose).Call()); r != uint64(1<<64-9) {
			t.Errorf("r0 = %#x, want -9 sign-extended", r)
		}
	})
	t.Run("r1 is zero at entry and the exit code is r0's low half", func(t *testing.T) {
		got, err := runRaw(t, assemble(t, asm.Mov.Reg(asm.R0, asm.R1), ld(asm.R2, 0x7_0000_0000), asm.Or.Reg(asm.R0, asm.R2), asm.Return()), newFakeHost())
		if err != nil || got != 0 {
			t.Errorf("got %d, %v; want 0", got, err)
		}
		got, _ = runRaw(t, assemble(t, ld(asm.R0, 0x1_ffff_fffe), asm.Return()), newFakeHost())
		if got != -2 {
			t.Errorf("exit code %d, want -2", got)
		}
	})
}

// runProgram runs verified code p once.
func runProgram(t *testing.T, p *program) (int32, error) {
	t.Helper()
	in, err := newModule(p, &image{}).Instantiate(t.Context(), newFakeHost())
	if err != nil {
		t.Fatal(err)
	}
	return in.Run(t.Context(), nil)
}

// TestFusion checks each fused pair against the same code unfused,
// entering both at the pair's first slot and, by a jump, at its second.
func TestFusion(t *testing.T) {
	// second is the instruction after the first of the pair; the loop
	// runs the pair once whole and once from second with other inputs.
	pair := func(first []asm.Instruction, second asm.Instruction) []asm.Instruction {
		body := append([]asm.Instruction{
			asm.Mov.Imm(asm.R6, 2), asm.Mov.Imm(asm.R0, 0), ld(asm.R1, 0xffff_ffff_8000_0007), asm.Mov.Imm(asm.R3, 10),
		}, first...)
		return append(body,
			second.WithSymbol("second"),
			asm.Add.Reg(asm.R0, asm.R2), asm.Mul.Imm(asm.R0, 3),
			asm.Sub.Imm(asm.R6, 1), ld(asm.R1, 0x1234_5678_9abc_def0), asm.Mov.Imm(asm.R3, -3),
			asm.JEq.Imm(asm.R6, 1, "second"),
			asm.Mov.Reg(asm.R1, asm.R0), asm.RSh.Imm(asm.R1, 32), asm.Xor.Reg(asm.R0, asm.R1),
			asm.Return())
	}
	cases := []struct {
		name  string
		insns []asm.Instruction
		fused op
	}{
		{"mov add", pair([]asm.Instruction{asm.Mov.Reg(asm.R2, asm.R1)}, asm.Add.Imm(asm.R2, -5)), opMovAdd64K},
		{"mov and", pair([]asm.Instruction{asm.Mov.Reg(asm.R2, asm.R1)}, asm.And.Imm(asm.R2, 0xff0)), opMovAnd64K},
		{"mov lsh", pair([]asm.Instruction{asm.Mov.Reg(asm.R2, asm.R1)}, asm.LSh.Imm(asm.R2, 3)), opMovLsh64K},
		{"mov rsh", pair([]asm.Instruction{asm.Mov.Reg(asm.R2, asm.R1)}, asm.RSh.Imm(asm.R2, 9)), opMovRsh64K},
		{"mov arsh", pair([]asm.Instruction{asm.Mov.Reg(asm.R2, asm.R1)}, asm.ArSh.Imm(asm.R2, 9)), opMovArsh64K},
		{"zero-extend", pair([]asm.Instruction{asm.Mov.Reg(asm.R2, asm.R1), asm.LSh.Imm(asm.R2, 32)}, asm.RSh.Imm(asm.R2, 32)), opZext32},
		{"sign-extend", pair([]asm.Instruction{asm.Mov.Reg(asm.R2, asm.R1), asm.LSh.Imm(asm.R2, 32)}, asm.ArSh.Imm(asm.R2, 32)), opSext32},
		{"mov zero-extend", pair([]asm.Instruction{asm.Mov.Reg(asm.R2, asm.R1), asm.LSh.Imm(asm.R2, 32)}, asm.RSh.Imm(asm.R2, 32)), opMovZext32},
		{"mov sign-extend", pair([]asm.Instruction{asm.Mov.Reg(asm.R2, asm.R1), asm.LSh.Imm(asm.R2, 32)}, asm.ArSh.Imm(asm.R2, 32)), opMovSext32},
		{"mov mov", pair([]asm.Instruction{asm.Mov.Reg(asm.R2, asm.R1)}, asm.Mov.Reg(asm.R4, asm.R2)), opMovMov},
		{"mov mov overlapping", pair([]asm.Instruction{asm.Mov.Reg(asm.R2, asm.R1)}, asm.Mov.Reg(asm.R2, asm.R3)), opMovMov},
		{"xor lsh", pair([]asm.Instruction{asm.Xor.Reg(asm.R2, asm.R1)}, asm.LSh.Imm(asm.R2, 2)), opXorLsh64},
		{"and rsh", pair([]asm.Instruction{asm.And.Reg(asm.R2, asm.R1)}, asm.RSh.Imm(asm.R2, 8)), opAndRsh64},
		{"xor lsh other register (not fused)", pair([]asm.Instruction{asm.Xor.Reg(asm.R2, asm.R1)}, asm.LSh.Imm(asm.R3, 2)), opInvalid},
		{"lddw add", pair([]asm.Instruction{ld(asm.R2, 0x1_0000_0000)}, asm.Add.Reg(asm.R2, asm.R3)), opLdAdd64X},
		{"lddw add self (not fused)", pair([]asm.Instruction{ld(asm.R2, 0x1_0000_0000)}, asm.Add.Reg(asm.R2, asm.R2)), opInvalid},
	}
	// lddw + add + load: an element of an array (here on the stack: the
	// raw programs have no data), entered whole and at the add and load.
	for _, size := range []asm.Size{asm.Byte, asm.Half, asm.Word, asm.DWord} {
		name := fmt.Sprintf("lddw add load %v", size)
		cases = append(cases, struct {
			name  string
			insns []asm.Instruction
			fused op
		}{name, []asm.Instruction{
			ld(asm.R1, 0x8877_6655_4433_2211), asm.StoreMem(asm.R10, -16, asm.R1, asm.DWord),
			ld(asm.R1, 0x1122_3344_5566_7788), asm.StoreMem(asm.R10, -8, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R0, 0), asm.Mov.Imm(asm.R3, -16), asm.Mov.Imm(asm.R6, 3),
			ld(asm.R2, StackTop),
			asm.Add.Reg(asm.R2, asm.R3).WithSymbol("add"),
			asm.LoadMem(asm.R4, asm.R2, 1, size).WithSymbol("load"),
			asm.Add.Reg(asm.R0, asm.R4), asm.LSh.Imm(asm.R0, 5), asm.Add.Reg(asm.R0, asm.R2),
			asm.Sub.Imm(asm.R6, 1), asm.Mov.Imm(asm.R3, -8),
			asm.JEq.Imm(asm.R6, 2, "add"),
			asm.JEq.Imm(asm.R6, 1, "load"),
			asm.Return(),
		}, opLdAddLdxB + op(map[asm.Size]int{asm.Byte: 0, asm.Half: 1, asm.Word: 2, asm.DWord: 3}[size])})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code := assemble(t, c.insns...)
			fused, err := compile(code)
			if err != nil {
				t.Fatal(err)
			}
			plain, _ := verify(code)
			plain.insns = append(plain.insns, insn{op: opHalt})
			has := false
			for _, in := range fused.insns {
				has = has || in.op == c.fused
			}
			if !has && c.fused != opInvalid {
				t.Errorf("no fused op %d in the program", c.fused)
			}
			got, err1 := runProgram(t, fused)
			want, err2 := runProgram(t, plain)
			if err1 != nil || err2 != nil || got != want {
				t.Errorf("fused: %#x, %v; unfused: %#x, %v", got, err1, want, err2)
			}
		})
	}
}

// TestRegionEdges: loads and stores of every size at and around the ends
// of read-only data, writable data and the stack (wrapELF's layout) are
// allowed exactly when they lie within a region they may touch, on every
// engine.
func TestRegionEdges(t *testing.T) {
	type region struct {
		lo, hi uint64 // guest addresses [lo, hi)
		store  bool   // stores allowed
	}
	regions := []region{{DataBase, DataBase + 16, false}, {DataBase + 16, DataBase + 64, true}, {StackTop - frameSize, StackTop, true}}
	allowed := func(p, size uint64, store bool) bool {
		for _, r := range regions {
			if p >= r.lo && p+size <= r.hi && (r.store || !store) {
				return true
			}
		}
		// A read-only/writable straddle is one data region for loads.
		return !store && p >= DataBase && p+size <= DataBase+64
	}
	sizes := []asm.Size{asm.Byte, asm.Half, asm.Word, asm.DWord}
	for _, edge := range []uint64{DataBase, DataBase + 16, DataBase + 64, StackTop - frameSize, StackTop} {
		for delta := int64(-9); delta <= 9; delta++ {
			p := uint64(int64(edge) + delta)
			for _, sz := range sizes {
				for _, kind := range []string{"load", "signed load", "store"} {
					store := kind == "store"
					var access asm.Instruction
					switch kind {
					case "load":
						access = asm.LoadMem(asm.R0, asm.R1, 0, sz)
					case "signed load":
						if sz == asm.DWord {
							continue
						}
						access = asm.LoadMemSX(asm.R0, asm.R1, 0, sz)
					default:
						access = asm.StoreMem(asm.R1, 0, asm.R2, sz)
					}
					code := assemble(t, ld(asm.R1, p), asm.Mov.Imm(asm.R2, 7), access, asm.Mov.Imm(asm.R0, 1), asm.Return())
					want := allowed(p, uint64(sz.Sizeof()), store)
					var faults []string
					for _, rt := range []*Runtime{NewInterpreter(), New()} {
						m, err := rt.Compile(t.Context(), wrapELF(code), runtime.Config{})
						if err != nil {
							t.Fatal(err)
						}
						in, _ := m.Instantiate(t.Context(), newFakeHost())
						_, err = in.Run(t.Context(), nil)
						if got := err == nil; got != want {
							t.Errorf("%d-byte %s at %#x (compiled %v): allowed %v, want %v (%v)",
								sz.Sizeof(), kind, p, m.(*Module).Compiled(), got, want, err)
						}
						faults = append(faults, fmt.Sprint(err))
					}
					if faults[0] != faults[1] {
						t.Errorf("%d-byte %s at %#x: the engines fault differently:\n%s\n%s", sz.Sizeof(), kind, p, faults[0], faults[1])
					}
				}
			}
		}
	}
}

// TestCallsAcrossPolls: a loop calling a function 200,000 times runs out
// of fuel over and over, at backward jumps, at calls and at returns; each
// budget poll resumes where it left and the sum comes out right.
func TestCallsAcrossPolls(t *testing.T) {
	const n = 200000
	got := evalFuncs(t, []asm.Instruction{
		asm.Mov.Imm(asm.R6, 0), asm.Mov.Imm(asm.R7, 0),
		asm.Mov.Reg(asm.R1, asm.R7).WithSymbol("loop"), asm.Call.Label("f"),
		asm.Add.Reg(asm.R6, asm.R0), asm.Add.Imm(asm.R7, 1), asm.JLT.Imm(asm.R7, n, "loop"),
		asm.Mov.Reg(asm.R0, asm.R6),
	},
		// f(x) = (x & 3) + 1, with a stack slot of its own
		asm.Mov.Reg(asm.R0, asm.R1).WithSymbol("f"), asm.And.Imm(asm.R0, 3), asm.StoreMem(asm.R10, -8, asm.R0, asm.DWord),
		asm.LoadMem(asm.R0, asm.R10, -8, asm.DWord), asm.Add.Imm(asm.R0, 1), asm.Return(),
	)
	if want := uint64(n / 4 * (1 + 2 + 3 + 4)); got != want {
		t.Errorf("got %d, want %d", got, want)
	}
}

// TestLargeProgram: a program whose machine code exceeds a short branch's
// reach (AArch64's conditional branches reach 1 MiB; the first access's
// out-of-line check is past the end of the code) is still run right:
// compiled where the code links, interpreted where it does not.
func TestLargeProgram(t *testing.T) {
	const body = 21000
	insns := []asm.Instruction{
		ld(asm.R6, StackTop-8), asm.Mov.Imm(asm.R0, 0), asm.Mov.Imm(asm.R1, 1),
	}
	for range body {
		insns = append(insns, asm.StoreMem(asm.R6, 0, asm.R1, asm.DWord), asm.LoadMem(asm.R2, asm.R6, 0, asm.DWord),
			asm.Add.Reg(asm.R0, asm.R2))
	}
	insns = append(insns, asm.Return())
	code := assemble(t, insns...)
	for _, rt := range []*Runtime{NewInterpreter(), New()} {
		m, err := rt.Compile(t.Context(), wrapELF(code), runtime.Config{})
		if err != nil {
			t.Fatal(err)
		}
		in, _ := m.Instantiate(t.Context(), newFakeHost())
		got, err := in.Run(t.Context(), nil)
		if err != nil || got != body {
			t.Errorf("compiled %v: got %d, %v; want %d", m.(*Module).Compiled(), got, err, body)
		}
		t.Logf("compiled: %v", m.(*Module).Compiled())
	}
}
