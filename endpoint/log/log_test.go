package log

import (
	"strings"
	"testing"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/endpoint"
)

type sink struct{ lines []string }

func (s *sink) Line(c, text string) { s.lines = append(s.lines, c+": "+text) }

func TestLogLines(t *testing.T) {
	sk := &sink{}
	e := &Endpoint{Sink: sk}
	s := endpoint.NewTestCall(endpoint.CallContext{Container: "c"})
	cases := []struct {
		in   string
		want int32
	}{
		{"hello", 0},
		{"with newline\n", 0},
		{"crlf\r\n", 0},
		{"", 0},
		{"two\nlines", abi.EINVAL.Result()},
		{"nul\x00", abi.EINVAL.Result()},
		{"\xff\xfe", abi.EINVAL.Result()},
		{strings.Repeat("x", MaxLine+1), abi.EMSGSIZE.Result()},
	}
	for _, c := range cases {
		if got := e.Call(s, abi.OpWrite, []byte(c.in), nil); got != c.want {
			t.Errorf("%q: %d, want %d", c.in, got, c.want)
		}
	}
	want := []string{"c: hello", "c: with newline", "c: crlf", "c: "}
	if strings.Join(sk.lines, "|") != strings.Join(want, "|") {
		t.Fatalf("lines %q", sk.lines)
	}
}
