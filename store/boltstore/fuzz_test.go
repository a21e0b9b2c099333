package boltstore

import "testing"

// FuzzOpen feeds mutated state.db files to Open and, when Open accepts one,
// uses it: every outcome must be success or an error wrapping
// store.ErrInvalid, never a panic, fault or hang.
func FuzzOpen(f *testing.F) {
	f.Add(populated(f, 0))
	f.Add(populated(f, 3))
	f.Add(populated(f, 30))
	f.Fuzz(func(t *testing.T, data []byte) {
		openAndUse(t, data)
	})
}
