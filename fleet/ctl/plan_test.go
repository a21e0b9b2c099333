package ctl

import (
	"errors"
	"slices"
	"testing"
)

func TestParsePercent(t *testing.T) {
	for in, want := range map[string]Percent{"5%": 500, "25": 2500, "2.5%": 250, "0%": 0, "100%": 10000, " 12.25% ": 1225} {
		got, err := ParsePercent(in)
		if err != nil || got != want {
			t.Errorf("ParsePercent(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "%", "-1%", "101%", "abc", "1.234%", "NaN", "Inf"} {
		if _, err := ParsePercent(in); !errors.Is(err, ErrInput) {
			t.Errorf("ParsePercent(%q): err %v, want ErrInput", in, err)
		}
	}
	if s := Percent(250).String(); s != "2.5%" {
		t.Errorf("String = %q", s)
	}
}

func TestPlanWaves(t *testing.T) {
	cases := []struct {
		n            int
		canary, wave Percent
		want         []int
	}{
		{1000, 500, 2500, []int{50, 250, 250, 250, 200}},
		{1, 500, 2500, []int{1}},
		{3, 500, 2500, []int{1, 1, 1}},
		{10, 0, 10000, []int{1, 9}},     // a canary has at least one device
		{7, 1000, 3000, []int{1, 3, 3}}, // 0.7 rounds up to 1, 2.1 to 3
		{100, 10000, 2500, []int{100}},  // the canary is everything
		{0, 500, 2500, nil},
	}
	for _, c := range cases {
		if got := PlanWaves(c.n, c.canary, c.wave); !slices.Equal(got, c.want) {
			t.Errorf("PlanWaves(%d, %v, %v) = %v, want %v", c.n, c.canary, c.wave, got, c.want)
		}
	}
	for n := 1; n < 300; n++ {
		for _, p := range []Percent{1, 99, 500, 2500, 3333, 10000} {
			sum := 0
			for _, s := range PlanWaves(n, p, p) {
				if s < 1 {
					t.Fatalf("n=%d p=%v: empty wave", n, p)
				}
				sum += s
			}
			if sum != n {
				t.Fatalf("n=%d p=%v: waves hold %d", n, p, sum)
			}
		}
	}
}

func TestExceededBy(t *testing.T) {
	for _, c := range []struct {
		max               Percent
		failed, attempted int
		want              bool
	}{
		{0, 0, 10, false}, {0, 1, 10, true}, {1000, 1, 10, false}, {1000, 2, 10, true},
		{1000, 1, 9, true}, {10000, 10, 10, false}, {500, 0, 0, false},
	} {
		if got := c.max.exceededBy(c.failed, c.attempted); got != c.want {
			t.Errorf("%v exceededBy(%d, %d) = %v", c.max, c.failed, c.attempted, got)
		}
	}
}
