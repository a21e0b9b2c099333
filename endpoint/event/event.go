// Package event is the `event` endpoint: what caused this activation
// (SPEC section 3).
package event

import (
	"encoding/binary"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/endpoint"
)

// Endpoint is the event endpoint.
type Endpoint struct{}

var _ endpoint.Endpoint = Endpoint{}

func (Endpoint) Ops() abi.OpSet { return abi.OpSetOf(abi.OpRead) }

// Call returns the session's current event: empty when the activation was
// not caused by a message.
func (Endpoint) Call(c *endpoint.Call, _ abi.Op, _, out []byte) int32 {
	if len(c.Event()) > len(out) {
		return abi.EMSGSIZE.Result()
	}
	return int32(copy(out, c.Event()))
}

// Encode lays out a message as the endpoint returns it: u16 topic length,
// topic, payload. Topics longer than 65535 bytes cannot occur (the bus
// refuses them).
func Encode(topic string, payload []byte) []byte {
	b := make([]byte, 2+len(topic)+len(payload))
	binary.LittleEndian.PutUint16(b, uint16(len(topic)))
	copy(b[2:], topic)
	copy(b[2+len(topic):], payload)
	return b
}
