package adversary

// Shape is a named hostile image.
type Shape struct {
	Name string
	Make func() []byte
	// Heavy: accepted and costly to compile (a shape at the bounds);
	// tests under the race detector may leave it out.
	Heavy bool
	// Invalid: must be refused as invalid code (whatever it costs, it
	// must never install).
	Invalid bool
}

// WasmShapes returns the shapes of issue 11 (sizes as measured there) and
// shapes just within the install-time bounds.
func WasmShapes() []Shape {
	return []Shape{
		{"multi-result-32000", func() []byte { return MultiResult(32000) }, false, false},
		{"multi-result-64000", func() []byte { return MultiResult(64000) }, false, false},
		{"loops-4000-v128x64", func() []byte { return Loops(4000, 64) }, false, false},
		{"loops-8000-v128x64", func() []byte { return Loops(8000, 64) }, false, false},
		{"nested-400-locals-50000", func() []byte { return NestedLoops(400, 50000, 20000) }, false, false},
		{"straight-line-3MB", func() []byte { return StraightLine(3 << 20) }, false, false},
		{"deep-stack-300000", func() []byte { return DeepStack(1, 300000) }, false, false},
		{"ifs-20000", func() []byte { return Blocks(1, 20000) }, false, false},
		{"br-table-500000", func() []byte { return BrTable(500000) }, false, false},
		{"locals-1000x50000", func() []byte { return ManyLocals(1000, 50000) }, false, false},
		// Invalid, and valid once rewritten: refused before any rewriting.
		{"export-missing-global", ExportMissingGlobal, false, true},
		{"memory-max-65537-pages", MemoryMaxOver, false, true},
		// Within the bounds: installed.
		{"bound-multi-result-4000", func() []byte { return MultiResult(4000) }, true, false},
		{"bound-ifs-2x4000", func() []byte { return Blocks(2, 4000) }, true, false},
		{"bound-deep-stack-170x1000", func() []byte { return DeepStack(170, 1000) }, true, false},
		{"bound-nested-400-800", func() []byte { return NestedLoops(400, 5000, 800) }, true, false},
		{"bound-loops-200-v128x64", func() []byte { return Loops(200, 64) }, true, false},
		{"bound-br-table-32000", func() []byte { return BrTable(32000) }, true, false},
		{"bound-straight-line-120KB", func() []byte { return StraightLine(120 << 10) }, true, false},
	}
}
