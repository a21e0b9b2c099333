package ctl

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Percent is a share of a fleet, 0 to 100, in hundredths of a percent so
// that "2.5%" is exact and comparisons stay integral.
type Percent uint32

// ParsePercent reads "25%", "25" or "2.5%" (at most two decimals).
func ParsePercent(s string) (Percent, error) {
	t := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "%"))
	if t == "" {
		return 0, fmt.Errorf("%w: empty percentage", ErrInput)
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > 100 {
		return 0, fmt.Errorf("%w: %q is not a percentage from 0 to 100", ErrInput, s)
	}
	h := math.Round(f * 100)
	if math.Abs(h-f*100) > 1e-6 {
		return 0, fmt.Errorf("%w: %q has more than two decimals", ErrInput, s)
	}
	return Percent(h), nil
}

func (p Percent) String() string {
	if p%100 == 0 {
		return fmt.Sprintf("%d%%", p/100)
	}
	return strings.TrimRight(fmt.Sprintf("%d.%02d", p/100, p%100), "0") + "%"
}

// shareOf is p percent of n devices, rounded up, at least one (when n > 0)
// and at most n.
func (p Percent) shareOf(n int) int {
	if n <= 0 {
		return 0
	}
	k := int((uint64(n)*uint64(p) + 9999) / 10000)
	return max(1, min(k, n))
}

// PlanWaves splits n devices into a canary wave of canary percent, then
// waves of wave percent each, every size rounded up and at least one
// device; the last wave takes what is left. The sizes sum to n.
func PlanWaves(n int, canary, wave Percent) []int {
	if n <= 0 {
		return nil
	}
	sizes := []int{canary.shareOf(n)}
	left := n - sizes[0]
	step := wave.shareOf(n)
	for left > 0 {
		k := min(step, left)
		sizes = append(sizes, k)
		left -= k
	}
	return sizes
}

// exceeds reports whether failed out of attempted is past max percent
// (strictly more than allowed).
func (p Percent) exceededBy(failed, attempted int) bool {
	if attempted <= 0 || failed <= 0 {
		return false
	}
	return uint64(failed)*10000 > uint64(p)*uint64(attempted)
}
