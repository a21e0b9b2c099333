// Package ml is the `ml` endpoint: int8 TFLite inference on the host, on a
// model that lives in the container's own memory (SPEC section 3).
package ml

import (
	"encoding/binary"
	"errors"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/endpoint"
	"github.com/tinycontainer/tinycontainer/ml/tflite"
)

// Endpoint is the ml endpoint over a model cache shared by the device.
type Endpoint struct{ Cache *tflite.Cache }

var _ endpoint.Endpoint = (*Endpoint)(nil)

func (*Endpoint) Ops() abi.OpSet { return abi.OpSetOf(abi.OpInvoke) }

// UsesMemory marks the endpoint as reading further guest pointers.
func (*Endpoint) UsesMemory() {}

var _ endpoint.MemoryUser = (*Endpoint)(nil)

// Call reads the six guest pointers of the request, runs the model in
// place and writes the output length.
func (e *Endpoint) Call(c *endpoint.Call, _ abi.Op, in, out []byte) int32 {
	if len(in) != 24 {
		return abi.EINVAL.Result()
	}
	if len(out) < 4 {
		return abi.EMSGSIZE.Result()
	}
	var a [6]uint32
	for i := range a {
		a[i] = binary.LittleEndian.Uint32(in[4*i:])
	}
	mem := c.Memory()
	if mem == nil {
		return abi.EFAULT.Result()
	}
	model, ok1 := mem.Read(a[0], a[1])
	input, ok2 := mem.Read(a[2], a[3])
	output, ok3 := mem.Read(a[4], a[5])
	if !ok1 || !ok2 || !ok3 {
		return abi.EFAULT.Result()
	}
	// The output must not overwrite the model or the input while the
	// engine reads them.
	if overlap(a[4], a[5], a[0], a[1]) || overlap(a[4], a[5], a[2], a[3]) {
		return abi.EINVAL.Result()
	}
	// The inference is paced by the activation's budget: it may be
	// suspended for higher-priority work every few tens of microseconds,
	// and it is given up (EAGAIN: nothing was computed) when the
	// activation must end, which it then does at its next checkpoint.
	n, err := e.Cache.InvokePaced(c.Container(), model, input, output, c.Checkpoint)
	if err != nil {
		return errno(err)
	}
	binary.LittleEndian.PutUint32(out, uint32(n))
	return 4
}

func errno(err error) int32 {
	switch {
	case errors.Is(err, tflite.ErrStopped):
		return abi.EAGAIN.Result()
	case errors.Is(err, tflite.ErrUnsupported):
		return abi.ENOSYS.Result()
	case errors.Is(err, tflite.ErrOutputTooSmall):
		return abi.EMSGSIZE.Result()
	}
	return abi.EINVAL.Result()
}

func overlap(p, n, q, m uint32) bool {
	return n > 0 && m > 0 && uint64(p) < uint64(q)+uint64(m) && uint64(q) < uint64(p)+uint64(n)
}
