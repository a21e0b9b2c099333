package mqtt

import (
	"slices"
	"strings"
	"testing"

	"github.com/tinycontainer/tinycontainer/msg"
)

func TestReduceFilters(t *testing.T) {
	cases := []struct{ in, want []string }{
		{nil, []string{}},
		{[]string{"a/b", "a/#"}, []string{"a/#"}},
		{[]string{"a", "a/#"}, []string{"a/#"}},
		{[]string{"a/b", "a/c"}, []string{"a/b", "a/c"}},
		{[]string{"a/+", "+/b"}, []string{"+/+"}},
		{[]string{"a/+", "a/b/c"}, []string{"a/+", "a/b/c"}},
		{[]string{"#", "$SYS/#", "a"}, []string{"#", "$SYS/#"}},
		{[]string{"+/x", "$SYS/x"}, []string{"$SYS/x", "+/x"}},
		{[]string{"x/+", "x/y/#", "+/y", "z"}, []string{"+/+/#", "z"}},
		{[]string{"a/b", "a/b/c/d"}, []string{"a/b", "a/b/c/d"}},
		{[]string{"a/b", "a/b/c/#"}, []string{"a/b", "a/b/c/#"}},
		{[]string{"a/b/#", "a/b/c/d"}, []string{"a/b/#"}},
	}
	for _, c := range cases {
		got := reduceFilters(c.in)
		if !slices.Equal(got, c.want) && !(len(got) == 0 && len(c.want) == 0) {
			t.Errorf("reduceFilters(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// witness builds a topic matched by both filters, which must overlap.
func witness(a, b string) string {
	concrete := func(f string) []string {
		var out []string
		for _, l := range strings.Split(f, "/") {
			switch l {
			case "#":
				return out
			case "+":
				out = append(out, "x")
			default:
				out = append(out, l)
			}
		}
		return out
	}
	var levels []string
	for {
		al, arest, amore := strings.Cut(a, "/")
		bl, brest, bmore := strings.Cut(b, "/")
		if al == "#" {
			levels = append(levels, concrete(b)...)
			break
		}
		if bl == "#" {
			levels = append(levels, concrete(a)...)
			break
		}
		l := al
		if l == "+" {
			l = bl
		}
		if l == "+" {
			l = "x"
		}
		levels = append(levels, l)
		if !amore || !bmore {
			break
		}
		a, b = arest, brest
	}
	if len(levels) == 0 {
		return "x"
	}
	return strings.Join(levels, "/")
}

// FuzzReduce checks overlap against witnesses and the two promises of
// reduceFilters: the result covers every topic the input matches, and no
// topic is matched by two result filters (so the broker sends no duplicates).
func FuzzReduce(f *testing.F) {
	f.Add("a/+,+/b,a/#", "a/b")
	f.Add("#,$SYS/#,+/x", "$SYS/x")
	f.Add("x/+,x/y/#,+/y,z", "x/y/z")
	f.Add("/+,+/,//#", "//")
	f.Add("a,a/b/c,+/+/+/#", "a/b/c/d")
	f.Fuzz(func(t *testing.T, list, topics string) {
		var in []string
		for _, fl := range strings.Split(list, ",") {
			if msg.ValidFilter(fl) == nil && !slices.Contains(in, fl) && len(in) < 16 {
				in = append(in, fl)
			}
		}
		for i := range in {
			for j := range in {
				if overlap(in[i], in[j]) != overlap(in[j], in[i]) {
					t.Fatalf("overlap(%q, %q) not symmetric", in[i], in[j])
				}
				if overlap(in[i], in[j]) {
					w := witness(in[i], in[j])
					if msg.Match(in[i], w) != msg.Match(in[j], w) || !msg.Match(in[i], w) {
						t.Fatalf("overlap(%q, %q) but witness %q does not match both", in[i], in[j], w)
					}
				}
			}
		}
		out := reduceFilters(in)
		for i := range out {
			if err := msg.ValidFilter(out[i]); err != nil && !strings.Contains(err.Error(), "bytes") {
				t.Fatalf("reduceFilters(%q) produced invalid %q: %v", in, out[i], err)
			}
			for j := i + 1; j < len(out); j++ {
				if overlap(out[i], out[j]) {
					t.Fatalf("reduceFilters(%q) = %q: %q and %q overlap", in, out, out[i], out[j])
				}
			}
		}
		for _, tp := range append(strings.Split(topics, ","), in...) {
			tp = strings.NewReplacer("+", "p", "#", "h").Replace(tp)
			valid := msg.ValidTopic(tp) == nil || (strings.HasPrefix(tp, "$") && msg.ValidTopic("x"+tp[1:]) == nil)
			if !valid {
				continue
			}
			want := slices.ContainsFunc(in, func(f string) bool { return msg.Match(f, tp) })
			n := 0
			for _, f := range out {
				if msg.Match(f, tp) {
					n++
				}
			}
			if n > 1 || (want && n == 0) {
				t.Fatalf("reduceFilters(%q) = %q: topic %q matched by %d (input matches: %v)", in, out, tp, n, want)
			}
			// Non-overlap implies any input pair matching tp must have been reported as overlapping.
			for _, a := range in {
				for _, b := range in {
					if msg.Match(a, tp) && msg.Match(b, tp) && !overlap(a, b) {
						t.Fatalf("%q and %q both match %q but overlap says no", a, b, tp)
					}
				}
			}
		}
	})
}
