// Package examples holds the example guests (C sources, their built
// binaries and manifests) and embeds the binaries and manifests so the
// demo runs from any directory with no setup.
package examples

import "embed"

// FS holds every example's manifest and binary, as examples/<name>/<file>.
//
//go:embed */*.yaml */*.wasm */*.bpf.o
var FS embed.FS
