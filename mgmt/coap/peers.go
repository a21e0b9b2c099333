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
// idle the longest, passers-by with a single request first; a client
// waiting for an answer never), and a client that has made maxExchanges requests on
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
	closing   bool // evicted, or to close once quiet
	recycle   bool // used up its exchanges: close once quiet (sweep)
	// active counts its requests in the handler: a client waiting for an
	// answer is not idle, and is never evicted.
	active int
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
		var vp *peer
		for c, pe := range p.m {
			if c == cc || pe.closing || pe.active > 0 {
				continue
			}
			if vp == nil || evictBefore(pe, vp) {
				victim, vp = c, pe
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
		// At once, on the server's reading goroutine (go-coap calls
		// OnNewConn there): a datagram of the victim's read after this
		// finds it closed and begins a fresh connection, where closing in
		// the background would let it reach the closing one and be lost
		// (the client would wait for its retransmission, 2 s or more).
		closePeer(victim)
	}
}

// closePeer closes a server-side client connection. go-coap frees its
// state (and calls its close hooks: remove here) at its next periodic
// sweep, which the server runs every sweepEvery (server.go); a datagram
// from the same address before that finds the connection closed and
// begins a fresh one.
func closePeer(cc *client.Conn) { _ = cc.Close() }

// established is how many requests make a client more than a passer-by.
const established = 2

// evictBefore orders eviction: clients that made a single request (a
// flood of new addresses is made of them) before the others, and among
// each the one idle the longest first. So a burst of one-shot addresses
// churns among itself and does not push out a client in the middle of a
// block-wise transfer.
func evictBefore(a, b *peer) bool {
	ea, eb := a.exchanges >= established, b.exchanges >= established
	if ea != eb {
		return !ea
	}
	return a.lastSeen.Before(b.lastSeen)
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
	if pe.recycle {
		pe.lastSeen = now
	}
}

// begin and end bracket a request in the handler.
func (p *peers) begin(cc *client.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pe, ok := p.m[cc]; ok {
		pe.active++
	}
}

func (p *peers) end(cc *client.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pe, ok := p.m[cc]; ok {
		pe.active--
		pe.lastSeen = time.Now()
	}
}

// recycleIdle is how long a client that used up its exchanges must be
// quiet before its connection goes: never in the middle of an exchange
// (the blocks of a block-wise response follow each other closely).
const recycleIdle = 250 * time.Millisecond

// sweep closes the connections that used up their exchanges and have
// been quiet for recycleIdle.
func (p *peers) sweep(now time.Time) {
	var done []*client.Conn
	p.mu.Lock()
	for cc, pe := range p.m {
		if pe.recycle && pe.active == 0 && now.Sub(pe.lastSeen) >= recycleIdle {
			pe.recycle = false
			done = append(done, cc)
		}
	}
	p.mu.Unlock()
	for _, cc := range done {
		closePeer(cc)
	}
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
