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

// HumanSize renders n bytes for people, to one decimal in the largest
// binary unit it reaches: "812 B", "12.5 KiB", "4.0 MiB", "1.2 GiB". (A
// manifest writes sizes exactly: "64KiB".)
func HumanSize(n uint64) string {
	switch {
	case n >= GiB:
		return fmt.Sprintf("%.1f GiB", float64(n)/GiB)
	case n >= MiB:
		return fmt.Sprintf("%.1f MiB", float64(n)/MiB)
	case n >= KiB:
		return fmt.Sprintf("%.1f KiB", float64(n)/KiB)
	}
	return fmt.Sprintf("%d B", n)
}
