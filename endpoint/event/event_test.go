package event

import (
	"testing"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/endpoint"
)

func TestEvent(t *testing.T) {
	s := endpoint.NewTestCall(endpoint.CallContext{})
	out := make([]byte, 16)
	if got := (Endpoint{}).Call(s, abi.OpRead, nil, out); got != 0 {
		t.Fatalf("no event: %d", got)
	}
	s = endpoint.NewTestCall(endpoint.CallContext{Event: Encode("a/b", []byte{1, 2})})
	if got := (Endpoint{}).Call(s, abi.OpRead, nil, out); got != 7 || string(out[:7]) != "\x03\x00a/b\x01\x02" {
		t.Fatalf("event: %d %x", got, out[:7])
	}
	if got := (Endpoint{}).Call(s, abi.OpRead, nil, out[:6]); got != abi.EMSGSIZE.Result() {
		t.Fatalf("small buffer: %d", got)
	}
}
