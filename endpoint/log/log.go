// Package log is the `log` endpoint: a container writes one UTF-8 line per
// call (SPEC section 3).
package log

import (
	"strings"
	"unicode/utf8"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/endpoint"
)

// MaxLine is the longest line accepted; longer requests get EMSGSIZE
// rather than being cut, so nothing is silently lost.
const MaxLine = 1024

// Sink receives the lines.
type Sink interface {
	Line(container, text string)
}

// Endpoint is the log endpoint.
type Endpoint struct{ Sink Sink }

var _ endpoint.Endpoint = (*Endpoint)(nil)

func (*Endpoint) Ops() abi.OpSet { return abi.OpSetOf(abi.OpWrite) }

// Call writes in as one line. A trailing newline is dropped; invalid UTF-8
// or embedded newlines are refused with EINVAL, so one call is one line.
func (e *Endpoint) Call(c *endpoint.Call, _ abi.Op, in, _ []byte) int32 {
	if len(in) > MaxLine {
		return abi.EMSGSIZE.Result()
	}
	text := strings.TrimSuffix(string(in), "\n")
	text = strings.TrimSuffix(text, "\r")
	if !utf8.ValidString(text) || strings.ContainsAny(text, "\n\x00") {
		return abi.EINVAL.Result()
	}
	e.Sink.Line(c.Container(), text)
	return 0
}
