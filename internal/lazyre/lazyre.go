// Package lazyre compiles a package's regular expressions on first use
// instead of at program start: the tinycontainer binary links every
// package, and each package-level regexp.MustCompile ran in every process,
// `tinycontainer ps` included (BENCHMARKS.md, "process start").
package lazyre

import (
	"regexp"
	"sync"
)

// New returns a function giving expr compiled, once, at its first call
// (which panics if expr is invalid, as regexp.MustCompile does; a test of
// the package's validation finds it).
func New(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}
