package coap

import (
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/udp/client"
)

// peers bounds what the server keeps for its clients (docs/notes/coap.md,
// "Clients"). go-coap keeps per client address a connection with its own
// goroutine and, for duplicate detection, a copy of every response for
// EXCHANGE_LIFETIME (247 s), none of it bounded: 20,000 addresses took
// 307 MB and 14,376 goroutines, and one client listing 500 containers
// every 200 ms held ~25 MB. go-coap lets a server neither cap its
// connections nor size that cache, so the server does both from outside:
// at most max clients (a new one evicts the one idle the longest,
// passers-by with a single request first, clients in a block-wise
// transfer last; a client waiting for an answer, or with a request not
// yet answered, never), and a client that has made maxExchanges requests on its
// connection gets a fresh one (its old state, cached responses included,
// is dropped).
//
// The fresh connection begins at a moment where nothing can be lost: on
// go-coap's reading goroutine, when the client's next datagram arrives
// and before it is handed to the connection (go-coap asks the
// connection's inactivity monitor then, and gives the datagram to a new
// connection when the old one has closed), and only when the old one has
// answered every request it was given and is in the middle of no
// block-wise transfer. The client notices nothing; a retransmission of a
// request answered before that moment is answered anew rather than from
// the cache (reads are idempotent, signed commands carry replay counters).
type peers struct {
	mu           sync.Mutex
	max          int
	maxExchanges int
	m            map[*client.Conn]*peer
	evicted      uint64
	recycled     uint64
	// observed reports whether a client address has log observations (a
	// connection with some is not recycled: they would end).
	observed func(remote string) bool
	// renewed are the addresses whose connection was just recycled: their
	// fresh one starts established, not as a passer-by that a flood of
	// new addresses would evict first.
	renewed map[string]struct{}
}

type peer struct {
	lastSeen  time.Time
	exchanges int
	closing   bool // evicted or recycled
	recycle   bool // used up its exchanges: a fresh connection at the next safe moment
	// active counts its requests in the handler: a client waiting for an
	// answer is not idle, and is never evicted.
	active int
	// pending are the message IDs of the requests handed to the
	// connection and not yet answered, with when they came (one go-coap
	// drops without processing, over its in-flight limit, would
	// otherwise hold the connection forever: see waiting).
	pending map[int32]time.Time
	// transfers are its block-wise transfers in progress, by token.
	transfers map[string]*xfer
}

// xfer is a block-wise transfer in progress: a response of size bytes
// being fetched block by block (Block2), or a request body being sent
// (Block1, size 0).
type xfer struct {
	size int
	last time.Time
}

// staleTransfer is how long a transfer may go without a block before it
// no longer holds its connection back (a client gave up on it).
const staleTransfer = time.Minute

func newPeers(max, maxExchanges int, observed func(string) bool) *peers {
	return &peers{max: max, maxExchanges: maxExchanges, m: map[*client.Conn]*peer{}, observed: observed,
		renewed: map[string]struct{}{}}
}

// add registers a new connection and evicts the idlest beyond the cap.
func (p *peers) add(cc *client.Conn, now time.Time) {
	p.mu.Lock()
	pe := &peer{lastSeen: now, pending: map[int32]time.Time{}, transfers: map[string]*xfer{}}
	if addr := cc.RemoteAddr().String(); len(p.renewed) > 0 {
		if _, ok := p.renewed[addr]; ok {
			delete(p.renewed, addr)
			pe.exchanges = established
		}
	}
	p.m[cc] = pe
	var victim *client.Conn
	if len(p.m) > p.max {
		var vp *peer
		for c, pe := range p.m {
			if c == cc || pe.closing || pe.active > 0 || pe.waiting(now) {
				continue
			}
			if vp == nil || evictBefore(pe, vp, now) {
				victim, vp = c, pe
			}
		}
		if victim != nil {
			p.m[victim].closing = true
			p.evicted++
			// An established client's next request begins a fresh
			// connection: established too, not a passer-by.
			if vp.exchanges >= established && len(p.renewed) < 4*p.max {
				p.renewed[victim.RemoteAddr().String()] = struct{}{}
			}
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

// evictBefore orders eviction: clients in the middle of a block-wise
// transfer last (evicting one cuts its transfer: the rest of the body is
// rendered afresh and the client must begin again, see etagOf), then
// clients that made a single request (a flood of new addresses is made of
// them) before the others, and among each the one idle the longest first.
// So a burst of one-shot addresses churns among itself and does not push
// out a client in the middle of a transfer. A client with a request
// handed to its connection and not yet answered is never evicted (add):
// the request would be lost, and the client would wait for its
// retransmission, 2 s or more; and its fresh connection, a passer-by
// again, would be the next victim, request lost again (the soak's List
// that timed out after 10 s).
func evictBefore(a, b *peer, now time.Time) bool {
	ta, tb := a.transferring(now), b.transferring(now)
	if ta != tb {
		return !ta
	}
	ea, eb := a.exchanges >= established, b.exchanges >= established
	if ea != eb {
		return !ea
	}
	return a.lastSeen.Before(b.lastSeen)
}

// waiting reports whether the peer has a request handed to its connection
// and not yet answered; one unanswered for staleTransfer is forgotten.
func (pe *peer) waiting(now time.Time) bool {
	for mid, t := range pe.pending {
		if now.Sub(t) < staleTransfer {
			return true
		}
		delete(pe.pending, mid)
	}
	return false
}

// transferring reports whether the peer has a block-wise transfer that is
// not stale.
func (pe *peer) transferring(now time.Time) bool {
	for _, t := range pe.transfers {
		if now.Sub(t.last) < staleTransfer {
			return true
		}
	}
	return false
}

func (p *peers) remove(cc *client.Conn) {
	p.mu.Lock()
	delete(p.m, cc)
	p.mu.Unlock()
}

// seen notes a message from cc (the request monitor, on the reading
// goroutine, as the message is handed to the connection): its requests,
// and the blocks of its transfers.
func (p *peers) seen(cc *client.Conn, m *pool.Message, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pe, ok := p.m[cc]
	if !ok {
		return
	}
	pe.lastSeen = now
	if m.Code() == 0 || (m.Type() != message.Confirmable && m.Type() != message.NonConfirmable) {
		return // pings, acknowledgements and resets are not requests
	}
	pe.exchanges++
	pe.pending[m.MessageID()] = now
	if pe.exchanges > p.maxExchanges && !pe.closing {
		pe.recycle = true
	}
	token := string(m.Token())
	if v, err := m.GetOptionUint32(message.Block1); err == nil {
		if _, _, more, err := blockwise.DecodeBlockOption(v); err == nil && more {
			pe.transfers[token] = &xfer{last: now}
		} else {
			delete(pe.transfers, token) // the last block: the handler answers
		}
	}
	if v, err := m.GetOptionUint32(message.Block2); err == nil {
		if t, ok := pe.transfers[token]; ok && t.size > 0 {
			szx, num, _, err := blockwise.DecodeBlockOption(v)
			if err == nil && (num+1)*int64(szx.Size()) >= int64(t.size) {
				delete(pe.transfers, token) // the last block asked for
			} else {
				t.last = now
			}
		}
	}
}

// answered notes that cc's request mid has been answered (the response
// written): it runs on the connection's goroutine after go-coap's
// processing of the request.
func (p *peers) answered(cc *client.Conn, mid int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pe, ok := p.m[cc]; ok {
		delete(pe.pending, mid)
	}
}

// responding notes a response of size bytes to token, before it is sent:
// beyond one block of the request's size it is a block-wise transfer
// until its last block is asked for.
func (p *peers) responding(cc *client.Conn, r *pool.Message, size int, now time.Time) {
	blockSize := blockSZX.Size()
	if v, err := r.GetOptionUint32(message.Block2); err == nil {
		if szx, _, _, err := blockwise.DecodeBlockOption(v); err == nil && szx < blockSZX {
			blockSize = szx.Size()
		}
	}
	if int64(size) <= blockSize {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if pe, ok := p.m[cc]; ok {
		pe.transfers[string(r.Token())] = &xfer{size: size, last: now}
	}
}

// recycleNow reports whether cc, which has used up its exchanges, is to
// be closed now, when its client's next datagram is about to be handed to
// it: only when it has answered everything it was given, has no
// transfer in progress and no observation. The datagram then goes to a
// fresh connection.
func (p *peers) recycleNow(cc *client.Conn, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	pe, ok := p.m[cc]
	if !ok || !pe.recycle || pe.closing || pe.active > 0 || pe.waiting(now) {
		return false
	}
	for token, t := range pe.transfers {
		if now.Sub(t.last) < staleTransfer {
			return false
		}
		delete(pe.transfers, token)
	}
	if p.observed != nil && p.observed(cc.RemoteAddr().String()) {
		return false
	}
	pe.closing, pe.recycle = true, false
	p.recycled++
	if len(p.renewed) < 4*p.max { // bounded: an entry goes with its fresh connection
		p.renewed[cc.RemoteAddr().String()] = struct{}{}
	}
	return true
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

// count is how many client connections are open and not closing.
func (p *peers) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, pe := range p.m {
		if !pe.closing {
			n++
		}
	}
	return n
}

// recycleMonitor is a server connection's inactivity monitor: go-coap's
// own (closing the connection after the idle timeout), and the moment to
// recycle it. go-coap asks it from its periodic sweep and, with a time
// 10 ms ahead, from its reading goroutine before it hands a datagram to
// the connection (v3.8.1, udp/server/server.go getConn); only the latter
// may recycle, as only there does the datagram go to the fresh
// connection. With another go-coap that does not ask from there, clients
// simply keep their connections until they move to a fresh socket.
type recycleMonitor struct {
	client.InactivityMonitor
	p *peers
}

func (m recycleMonitor) CheckInactivity(now time.Time, cc *client.Conn) {
	m.InactivityMonitor.CheckInactivity(now, cc)
	if now.After(time.Now()) && m.p.recycleNow(cc, time.Now()) {
		_ = cc.Close() // go-coap frees it and makes a fresh one
	}
}
