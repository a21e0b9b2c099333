// Package clock is the `clock` endpoint: microseconds since the device
// started, monotonic (SPEC section 3).
package clock

import (
	"encoding/binary"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/endpoint"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// Endpoint is the clock endpoint. Start is the runtime.Now() value of the
// device's start.
type Endpoint struct{ Start int64 }

var _ endpoint.Endpoint = (*Endpoint)(nil)

func (*Endpoint) Ops() abi.OpSet { return abi.OpSetOf(abi.OpRead) }

func (e *Endpoint) Call(_ *endpoint.Call, _ abi.Op, _, out []byte) int32 {
	if len(out) < 8 {
		return abi.EMSGSIZE.Result()
	}
	binary.LittleEndian.PutUint64(out, uint64(runtime.Now()-e.Start)/1000)
	return 8
}
