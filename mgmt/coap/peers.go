package coap

import (
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/udp/client"
)

// peers bounds what the server keeps for its clients (docs/notes/coap.md,
// "Clients"). go-coap keeps per client address a connection with its own
// goroutine and, for duplicate detection, a copy of every response for
// EXCHANGE_LIFETIME (247 s), none of it bounded: 20,000 addresses took
// 307 MB and 14,376 goroutines, and 8 busy clients 249 MB. go-coap lets a
// server neither cap its connections nor size that cache, so the server
// does both from outside: at most max clients (a new one evicts the one
// idle the longest), and a client that has made maxExchanges requests on
// its connection gets a fresh one (its old state, cached responses
// included, is dropped; its next request starts the new one). A request
// retransmitted across that moment is answered anew rather than from the
// cache: reads are idempotent, and signed commands carry replay counters.
type peers struct {
	mu           sync.Mutex
	max          int
	maxExchanges int
	m            map[*client.Conn]*peer
	evicted      uint64
	recycled     uint64
}

type peer struct {
	lastSeen  time.Time
	exchanges int
	closing   bool // evicted, or to close after its current exchange
	recycle   bool // used up its exchanges: close after the next response
}

func newPeers(max, maxExchanges int) *peers {
	return &peers{max: max, maxExchanges: maxExchanges, m: map[*client.Conn]*peer{}}
}

// add registers a new connection and evicts the idlest beyond the cap.
func (p *peers) add(cc *client.Conn, now time.Time) {
	p.mu.Lock()
	p.m[cc] = &peer{lastSeen: now}
	var victim *client.Conn
	if len(p.m) > p.max {
		var oldest time.Time
		for c, pe := range p.m {
			if c == cc || pe.closing {
				continue
			}
			if victim == nil || pe.lastSeen.Before(oldest) {
				victim, oldest = c, pe.lastSeen
			}
		}
		if victim != nil {
			p.m[victim].closing = true
			p.evicted++
		}
	}
	p.mu.Unlock()
	cc.AddOnClose(func() { p.remove(cc) })
	if victim != nil {
		go closePeer(victim)
	}
}

// goCoapCloseKey is where go-coap's UDP server keeps, in a connection's
// context, the function that closes it and frees its state at once;
// cc.Close alone leaves that to a sweep every few seconds (v3.8.1,
// udp/server/server.go). Without it (another go-coap) the sweep does it.
const goCoapCloseKey = "gocoapCloseConnection"

// closePeer closes a server-side client connection and frees its state.
func closePeer(cc *client.Conn) {
	_ = cc.Close()
	if f, ok := cc.Context().Value(goCoapCloseKey).(func()); ok {
		f()
	}
}

func (p *peers) remove(cc *client.Conn) {
	p.mu.Lock()
	delete(p.m, cc)
	p.mu.Unlock()
}

// seen notes a message from cc and counts its requests.
func (p *peers) seen(cc *client.Conn, m *pool.Message, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pe, ok := p.m[cc]
	if !ok {
		return
	}
	pe.lastSeen = now
	if m.Code() == 0 || (m.Type() != message.Confirmable && m.Type() != message.NonConfirmable) {
		return // pings, acknowledgements and resets cost no cached response
	}
	pe.exchanges++
	if pe.exchanges > p.maxExchanges && !pe.closing {
		pe.closing, pe.recycle = true, true
		p.recycled++
	}
}

// takeRecycle reports, once, that cc used up its exchanges.
func (p *peers) takeRecycle(cc *client.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	pe, ok := p.m[cc]
	if !ok || !pe.recycle {
		return false
	}
	pe.recycle = false
	return true
}

// count is how many client connections are open and not closing.
func (p *peers) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, pe := range p.m {
		if !pe.closing || pe.recycle {
			n++
		}
	}
	return n
}
