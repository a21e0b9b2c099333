package meta

import "fmt"

// ParseSize reads a size as the manifest writes it: a byte count, or a
// number with a unit (B, KiB, MiB, GiB, kB, MB, GB), e.g. "64KiB".
func ParseSize(s string) (uint64, error) {
	v, err := parseSize(s)
	if err != nil {
		return 0, fmt.Errorf("%q %w", s, err)
	}
	return v, nil
}
