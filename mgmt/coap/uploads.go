package coap

import (
	"fmt"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
)

// uploads is the accounting behind the upload cap. go-coap reassembles
// Block1 transfers without any size limit, so the server's request monitor
// asks check about every body-carrying datagram before go-coap sees it.
//
// A transfer is counted from its first block until its last block or until
// ttl after its last block. go-coap drops a partial transfer ttl after its
// first block, so a counted transfer always outlives go-coap's buffer and
// at most max × limit bytes are ever buffered.
type uploads struct {
	mu     sync.Mutex
	max    int
	ttl    time.Duration
	active map[string]time.Time // transfer key → last block seen
}

func newUploads(max int, ttl time.Duration) *uploads {
	return &uploads{max: max, ttl: ttl, active: map[string]time.Time{}}
}

// transfer describes one body-carrying datagram.
type transfer struct {
	key      string // peer and token
	hasBlock bool   // a Block1 option is present
	block    uint32 // its value
	size1    int64  // the Size1 option (announced total), -1 if absent
	n        int64  // payload bytes in this datagram
	limit    int64  // cap of the request's path
}

// verdict is check's answer: code 0 lets the datagram through.
type verdict struct {
	code       codes.Code
	msg        string
	retryAfter time.Duration // for 5.03
}

func (u *uploads) check(t transfer, now time.Time) verdict {
	if !t.hasBlock {
		if size := max(t.n, t.size1); size > t.limit {
			return tooLarge(size, t.limit)
		}
		return verdict{}
	}
	szx, num, more, err := blockwise.DecodeBlockOption(t.block)
	if err != nil || szx >= blockwise.SZXBERT {
		// BERT is for reliable transports only (RFC 8323).
		return verdict{code: codes.BadOption, msg: fmt.Sprintf("bad Block1 option %#x", t.block)}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if size := max(num*szx.Size()+t.n, t.size1); size > t.limit {
		if num == 0 {
			// Nothing of it is buffered yet. A refused later block keeps
			// its slot until expiry: go-coap still holds what came before.
			delete(u.active, t.key)
		}
		return tooLarge(size, t.limit)
	}
	_, counted := u.active[t.key]
	if !more {
		delete(u.active, t.key)
		return verdict{}
	}
	if num != 0 {
		// A later block of a transfer not counted here has no buffer at
		// go-coap either, which answers it with 4.08.
		if counted {
			u.active[t.key] = now
		}
		return verdict{}
	}
	if !counted {
		u.expire(now)
		if len(u.active) >= u.max {
			return verdict{
				code:       codes.ServiceUnavailable,
				msg:        fmt.Sprintf("unavailable: %d uploads in progress", len(u.active)),
				retryAfter: u.oldest(now),
			}
		}
	}
	u.active[t.key] = now
	return verdict{}
}

func (u *uploads) expire(now time.Time) {
	for k, t := range u.active {
		if now.Sub(t) > u.ttl {
			delete(u.active, k)
		}
	}
}

// oldest is the time until the oldest transfer expires.
func (u *uploads) oldest(now time.Time) time.Duration {
	d := u.ttl
	for _, t := range u.active {
		d = min(d, u.ttl-now.Sub(t))
	}
	return max(d, 0)
}

func tooLarge(size, limit int64) verdict {
	return verdict{
		code: codes.RequestEntityTooLarge,
		msg:  fmt.Sprintf("too large: body of at least %d bytes exceeds the limit of %d", size, limit),
	}
}
