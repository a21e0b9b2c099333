//go:build race

package adversary

// Race: built with the race detector.
const Race = true
