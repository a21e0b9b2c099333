package coap

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// TestListBlocksOfOneRepresentation is the soak's "compressed body: flate:
// corrupt input": when the server lost the state of a List's block-wise
// transfer between two blocks (its connection with the client evicted or
// recycled), the next block request was answered from a fresh rendering
// of the table, which had changed meanwhile, and the client glued the
// blocks of two tables together. Here the device's list changes at every
// call and the server's connection is closed after the client has received
// block 1 of each list: every list must still arrive whole and be one
// snapshot (the blocks carry the representation's ETag; the client begins
// again when it changes). Both the compressed table (List) and the plain
// one (where a mix would decode silently) are checked.
func TestListBlocksOfOneRepresentation(t *testing.T) {
	d := newFakeDevice()
	fillContainers(d, 500)
	var lists atomic.Uint64
	s, err := Serve(context.Background(), "127.0.0.1:0", &changingList{fakeDevice: d, n: &lists},
		ServerOptions{Errors: func(err error) { t.Logf("server: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	c := dialServer(t, s)
	ctx := ctxT(t)

	var evict atomic.Bool // once per list, at its block 1
	var evictions, maxBlock atomic.Int64
	hook := func(num int64) {
		if num > maxBlock.Load() {
			maxBlock.Store(num)
		}
		if num != 1 || !evict.CompareAndSwap(true, false) {
			return
		}
		evictions.Add(1)
		closeAllPeers(s)
	}
	c.blockHook.Store(&hook)

	oneSnapshot := func(what string, i int, cs []mgmt.ContainerStatus, err error) {
		t.Helper()
		if err != nil || len(cs) != 500 {
			t.Fatalf("%s %d: %d containers, %v", what, i, len(cs), err)
		}
		for _, st := range cs {
			if st.Activations != cs[0].Activations {
				t.Fatalf("%s %d mixes two lists: %d and %d activations", what, i, cs[0].Activations, st.Activations)
			}
		}
	}
	const n = 20
	for i := range n {
		evict.Store(true)
		cs, err := c.List(ctx)
		oneSnapshot("compressed list", i, cs, err)

		evict.Store(true)
		cs, err = plainList(ctx, c)
		oneSnapshot("plain list", i, cs, err)
	}
	if maxBlock.Load() < 2 || evictions.Load() < 2*n {
		t.Fatalf("the test did not cut transfers: %d blocks at most, %d evictions", maxBlock.Load()+1, evictions.Load())
	}
	if r := c.restarts.Load(); r == 0 {
		t.Fatalf("no read began again after %d evictions", evictions.Load())
	}
}

// getRequest is a CON GET as the server's request monitor sees it.
func getRequest(t *testing.T, mid int32, token string) *pool.Message {
	m := pool.NewMessage(context.Background())
	m.SetCode(codes.GET)
	m.SetType(message.Confirmable)
	m.SetMessageID(mid)
	m.SetToken([]byte(token))
	if err := m.SetPath("/c"); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestEvictionSparesUnansweredRequest is the soak's List that timed out
// after 10 s while the device answered every List within 226 ms: under a
// flood of new client addresses, a client whose request had been handed
// to its connection but was not yet in the handler (queued behind the
// device) was evicted, its request lost with the connection; its
// retransmission, 2 s or more later, began a fresh connection, a
// passer-by that the next new address evicted first, request lost again.
// A connection with a request not yet answered is never evicted.
func TestEvictionSparesUnansweredRequest(t *testing.T) {
	s, _ := startServer(t, ServerOptions{})
	p := newPeers(1, 256, nil)
	now := time.Now()
	a := rawConn(t, s)
	p.add(a, now)
	for mid := range int32(3) {
		p.seen(a, getRequest(t, mid, "a"), now)
	}
	p.answered(a, 0)
	p.answered(a, 1) // request 2 is queued, unanswered
	b := rawConn(t, s)
	p.add(b, now.Add(time.Second))
	if gone(p, a) {
		t.Fatal("a client with a request not yet answered was evicted")
	}
	// Once answered it may go again (b, a passer-by, goes first).
	p.answered(a, 2)
	c := rawConn(t, s)
	p.add(c, now.Add(2*time.Second))
	if n := p.count(); n != 2 {
		t.Fatalf("%d connections kept, want 2 (one over the cap while a's request was unanswered)", n)
	}
}

// TestEvictionSparesTransfer: a client in the middle of a block-wise
// transfer is evicted after idle clients without one, even when it has
// been idle the longest (its transfer would be cut: the client begins it
// again, see TestListBlocksOfOneRepresentation).
func TestEvictionSparesTransfer(t *testing.T) {
	s, _ := startServer(t, ServerOptions{})
	p := newPeers(2, 256, nil)
	now := time.Now()
	a, b := rawConn(t, s), rawConn(t, s)
	p.add(a, now)
	for mid := range int32(3) {
		r := getRequest(t, mid, "a")
		p.seen(a, r, now)
		if mid == 2 { // a 5 KB list: block 0 sent, four to go
			p.responding(a, r, 5000, now)
		}
		p.answered(a, mid)
	}
	p.add(b, now.Add(time.Second))
	for mid := range int32(3) {
		p.seen(b, getRequest(t, mid, "b"), now.Add(time.Second))
		p.answered(b, mid)
	}
	p.add(rawConn(t, s), now.Add(2*time.Second))
	if ga, gb := gone(p, a), gone(p, b); ga || !gb {
		t.Fatalf("evicted: a (in a transfer, idle longest) %v, b (idle, no transfer) %v; want b", ga, gb)
	}
	// b was established: its next connection starts established.
	p.mu.Lock()
	_, renewed := p.renewed[b.RemoteAddr().String()]
	p.mu.Unlock()
	if !renewed {
		t.Fatal("the evicted established client's address is not marked renewed")
	}
}

// gone reports whether cc was evicted (closing, or already removed).
func gone(p *peers, cc *client.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	pe, ok := p.m[cc]
	return !ok || pe.closing
}

// shrinkingList is a device whose list alternates between all its
// containers and its first 40, with every call counted in Activations.
type shrinkingList struct {
	*fakeDevice
	n atomic.Uint64
}

func (d *shrinkingList) List(ctx context.Context) ([]mgmt.ContainerStatus, error) {
	cs, err := d.fakeDevice.List(ctx)
	n := d.n.Add(1)
	if n%2 == 0 && len(cs) > 40 {
		cs = cs[:40]
	}
	for i := range cs {
		cs[i].Activations = n
	}
	return cs, err
}

// TestListBlocksRenderingShrank: when the fresh rendering of a cut
// transfer is shorter than the block asked for, go-coap's server answers
// 4.08; the client begins the read again rather than failing the call.
func TestListBlocksRenderingShrank(t *testing.T) {
	d := &shrinkingList{fakeDevice: newFakeDevice()}
	fillContainers(d.fakeDevice, 500)
	s, err := Serve(context.Background(), "127.0.0.1:0", d,
		ServerOptions{Errors: func(err error) { t.Logf("server: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	c := dialServer(t, s)
	ctx := ctxT(t)
	var evict atomic.Bool
	var evictions atomic.Int64
	hook := func(num int64) {
		if num != 10 || !evict.CompareAndSwap(true, false) {
			return
		}
		evictions.Add(1)
		closeAllPeers(s)
	}
	c.blockHook.Store(&hook)
	for i := range 6 {
		evict.Store(true)
		cs, err := plainList(ctx, c)
		if err != nil || (len(cs) != 500 && len(cs) != 40) {
			t.Fatalf("list %d: %d containers, %v", i, len(cs), err)
		}
		for _, st := range cs {
			if st.Activations != cs[0].Activations {
				t.Fatalf("list %d mixes two lists", i)
			}
		}
	}
	if evictions.Load() == 0 || c.restarts.Load() == 0 {
		t.Fatalf("%d evictions, %d restarts: the test cut no transfer", evictions.Load(), c.restarts.Load())
	}
}

// closeAllPeers closes every client connection the server holds, as an
// eviction does (a transfer in flight loses its server-side state).
func closeAllPeers(s *Server) {
	s.peers.mu.Lock()
	var victims []*client.Conn
	for cc, pe := range s.peers.m {
		if !pe.closing {
			pe.closing = true
			victims = append(victims, cc)
		}
	}
	s.peers.mu.Unlock()
	for _, cc := range victims {
		closePeer(cc)
	}
}

// plainList is a List in the uncompressed table form (what a device from
// before the compressed form answers).
func plainList(ctx context.Context, c *Client) ([]mgmt.ContainerStatus, error) {
	body, err := c.getAs(ctx, "/c", message.AppCBOR, "form=table")
	if err != nil {
		return nil, err
	}
	doc, err := decodeCBOR(body)
	if err != nil {
		return nil, err
	}
	return statusesFromTable(doc)
}
