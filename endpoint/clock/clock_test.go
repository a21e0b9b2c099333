package clock

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/runtime"
)

func TestClockIsMonotonicMicroseconds(t *testing.T) {
	e := &Endpoint{Start: runtime.Now() - int64(5*time.Second)}
	out := make([]byte, 8)
	if got := e.Call(nil, abi.OpRead, nil, out); got != 8 {
		t.Fatalf("read: %d", got)
	}
	a := binary.LittleEndian.Uint64(out)
	if a < 5_000_000 || a > 60_000_000 {
		t.Fatalf("%d us since a start 5 s ago", a)
	}
	e.Call(nil, abi.OpRead, nil, out)
	if b := binary.LittleEndian.Uint64(out); b < a {
		t.Fatalf("clock went back: %d then %d", a, b)
	}
	if got := e.Call(nil, abi.OpRead, nil, out[:7]); got != abi.EMSGSIZE.Result() {
		t.Fatalf("small buffer: %d", got)
	}
}
