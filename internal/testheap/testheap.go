// Package testheap is how tests read the Go heap when a verdict rests on
// memory held (bytes, never time).
package testheap

import "runtime"

// InUse is the heap in use (bytes) after two collections: the second
// frees what finalizers released in the first.
func InUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}
