package adversary

// Shape is a named hostile image.
type Shape struct {
	Name string
	Make func() []byte
	// Heavy: accepted and costly to compile (a shape at the bounds);
	// tests under the race detector may leave it out.
	Heavy bool
}

// WasmShapes are the shapes of issue 11 (sizes as measured there) and
// shapes just within the install-time bounds.
var WasmShapes = []Shape{
	{"multi-result-32000", func() []byte { return MultiResult(32000) }, false},
	{"multi-result-64000", func() []byte { return MultiResult(64000) }, false},
	{"loops-4000-v128x64", func() []byte { return Loops(4000, 64) }, false},
	{"loops-8000-v128x64", func() []byte { return Loops(8000, 64) }, false},
	{"nested-400-locals-50000", func() []byte { return NestedLoops(400, 50000, 20000) }, false},
	{"straight-line-3MB", func() []byte { return StraightLine(3 << 20) }, false},
	{"deep-stack-300000", func() []byte { return DeepStack(1, 300000) }, false},
	{"ifs-20000", func() []byte { return Blocks(1, 20000) }, false},
	{"br-table-500000", func() []byte { return BrTable(500000) }, false},
	{"locals-1000x50000", func() []byte { return ManyLocals(1000, 50000) }, false},
	// Within the bounds: installed.
	{"bound-multi-result-4000", func() []byte { return MultiResult(4000) }, true},
	{"bound-ifs-2x4000", func() []byte { return Blocks(2, 4000) }, true},
	{"bound-deep-stack-170x1000", func() []byte { return DeepStack(170, 1000) }, true},
	{"bound-nested-400-800", func() []byte { return NestedLoops(400, 5000, 800) }, true},
	{"bound-loops-200-v128x64", func() []byte { return Loops(200, 64) }, true},
	{"bound-br-table-32000", func() []byte { return BrTable(32000) }, true},
	{"bound-straight-line-120KB", func() []byte { return StraightLine(120 << 10) }, true},
}
