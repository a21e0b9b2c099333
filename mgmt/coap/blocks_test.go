package coap

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
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
		b, err := c.getAs(ctx, "/c", message.AppCBOR, "form=table")
		if err == nil {
			var doc any
			if doc, err = decodeCBOR(b); err == nil {
				cs, err = statusesFromTable(doc)
			}
		}
		oneSnapshot("plain list", i, cs, err)
	}
	if maxBlock.Load() < 2 || evictions.Load() < 2*n {
		t.Fatalf("the test did not cut transfers: %d blocks at most, %d evictions", maxBlock.Load()+1, evictions.Load())
	}
	if r := c.restarts.Load(); r == 0 {
		t.Fatalf("no read began again after %d evictions", evictions.Load())
	}
}
