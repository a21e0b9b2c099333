// Package kv is the `kv` endpoint: per-container key-value data bounded by
// the container's storage quota (SPEC section 3).
package kv

import (
	"errors"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/endpoint"
	"github.com/tinycontainer/tinycontainer/store"
)

// MaxValue is the largest value one put may store.
const MaxValue = 16 * 1024

// Endpoint is the kv endpoint over a store.
type Endpoint struct {
	Store store.KV
	// Failed, when set, is told of every call the store could not do: a
	// put beyond the quota (the guest gets -ENOSPC) or a store failure
	// (-EIO). It must not block: it runs inside the activation.
	Failed func(c *endpoint.Call, op abi.Op, err error)
}

var _ endpoint.Endpoint = (*Endpoint)(nil)

func (*Endpoint) Ops() abi.OpSet { return abi.OpSetOf(abi.OpGet, abi.OpPut, abi.OpDelete) }

func (e *Endpoint) Call(c *endpoint.Call, op abi.Op, in, out []byte) int32 {
	switch op {
	case abi.OpGet:
		if len(in) == 0 || len(in) > 255 {
			return abi.EINVAL.Result()
		}
		v, err := e.Store.Get(c.Container(), string(in))
		if err != nil {
			return e.fail(c, op, err)
		}
		if len(v) > len(out) {
			return abi.EMSGSIZE.Result()
		}
		return int32(copy(out, v))
	case abi.OpPut:
		if len(in) < 1 {
			return abi.EINVAL.Result()
		}
		kl := int(in[0])
		if kl == 0 || 1+kl > len(in) {
			return abi.EINVAL.Result()
		}
		if len(in)-1-kl > MaxValue {
			return abi.EMSGSIZE.Result()
		}
		quota := c.Rules().Manifest.Limits.Storage
		var err error
		// A durable put waits for the disk: other work runs meanwhile.
		c.Wait(func() { err = e.Store.Put(c.Container(), string(in[1:1+kl]), in[1+kl:], quota) })
		if err != nil {
			return e.fail(c, op, err)
		}
		return 0
	case abi.OpDelete:
		if len(in) == 0 || len(in) > 255 {
			return abi.EINVAL.Result()
		}
		var err error
		c.Wait(func() { err = e.Store.Delete(c.Container(), string(in)) })
		if err != nil {
			return e.fail(c, op, err)
		}
		return 0
	}
	return abi.ENOSYS.Result()
}

// fail maps a store error to the guest's errno and reports the ones that
// are not the guest's own doing (a missing key, a malformed request).
func (e *Endpoint) fail(c *endpoint.Call, op abi.Op, err error) int32 {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return abi.ENOENT.Result()
	case errors.Is(err, store.ErrInvalid):
		return abi.EINVAL.Result()
	}
	if e.Failed != nil {
		e.Failed(c, op, err)
	}
	if errors.Is(err, store.ErrQuota) {
		return abi.ENOSPC.Result()
	}
	// The store failed (a full disk, an I/O error, closed): the write did
	// not happen, and the guest is told so.
	return abi.EIO.Result()
}
