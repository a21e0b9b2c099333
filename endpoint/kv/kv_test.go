package kv

import (
	"errors"
	"testing"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/endpoint"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/store"
	"github.com/tinycontainer/tinycontainer/store/memstore"
)

func TestKV(t *testing.T) {
	m, err := meta.Parse([]byte("name: c\ntenant: t\nversion: 1\nruntime: wasm\nschedule: {trigger: once}\nlimits: {storage: 16B}\nendpoints: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := endpoint.NewTestCall(endpoint.CallContext{Container: "c", Tenant: "t", Manifest: m})
	e := &Endpoint{Store: memstore.New()}
	buf := make([]byte, 32)
	call := func(op abi.Op, in string, cap int) int32 {
		n := copy(buf, in)
		return e.Call(s, op, buf[:n], buf[:cap])
	}
	cases := []struct {
		op   abi.Op
		in   string
		cap  int
		want int32
	}{
		{abi.OpPut, "\x01kvalue", 0, 0},
		{abi.OpGet, "k", 16, 5},
		{abi.OpGet, "k", 4, abi.EMSGSIZE.Result()},
		{abi.OpPut, "\x01k0123456789abcdef", 0, abi.ENOSPC.Result()}, // 1+16 > 16 bytes
		{abi.OpGet, "k", 16, 5},                                      // the refused put changed nothing
		{abi.OpPut, "\x09k", 0, abi.EINVAL.Result()},                 // key length past the request
		{abi.OpPut, "\x00v", 0, abi.EINVAL.Result()},                 // empty key
		{abi.OpPut, "", 0, abi.EINVAL.Result()},
		{abi.OpGet, "", 16, abi.EINVAL.Result()},
		{abi.OpDelete, "k", 0, 0},
		{abi.OpDelete, "k", 0, abi.ENOENT.Result()},
		{abi.OpGet, "k", 16, abi.ENOENT.Result()},
		{abi.OpRead, "k", 16, abi.ENOSYS.Result()},
	}
	for i, c := range cases {
		if got := call(c.op, c.in, c.cap); got != c.want {
			t.Errorf("case %d (%s %q): %d, want %d", i, c.op, c.in, got, c.want)
		}
	}
}

// failingStore is a store whose writes fail like a full or broken disk.
type failingStore struct {
	*memstore.Store
	err error
}

func (f failingStore) Put(string, string, []byte, uint64) error { return f.err }
func (f failingStore) Delete(string, string) error              { return f.err }

// TestKVStoreFailureIsEIO is issue 12's finding: a put on a full disk
// failed silently (-EAGAIN, nothing reported). It is -EIO now, and reported
// with the quota's -ENOSPC.
func TestKVStoreFailureIsEIO(t *testing.T) {
	m, err := meta.Parse([]byte("name: c\ntenant: t\nversion: 1\nruntime: wasm\nschedule: {trigger: once}\nlimits: {storage: 16B}\nendpoints: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := endpoint.NewTestCall(endpoint.CallContext{Container: "c", Tenant: "t", Manifest: m})
	var reported []error
	e := &Endpoint{Store: failingStore{memstore.New(), errors.New("write /data/state.db: no space left on device")},
		Failed: func(c *endpoint.Call, op abi.Op, err error) {
			if c.Container() != "c" || op != abi.OpPut && op != abi.OpDelete {
				t.Errorf("reported %s %v", c.Container(), op)
			}
			reported = append(reported, err)
		}}
	in := []byte("\x01kv")
	if got := e.Call(s, abi.OpPut, in, nil); got != abi.EIO.Result() {
		t.Fatalf("put on a failing store: %d, want -EIO", got)
	}
	if got := e.Call(s, abi.OpDelete, []byte("k"), nil); got != abi.EIO.Result() {
		t.Fatalf("delete on a failing store: %d, want -EIO", got)
	}
	e.Store = memstore.New()
	if got := e.Call(s, abi.OpPut, []byte("\x01k0123456789abcdef"), nil); got != abi.ENOSPC.Result() {
		t.Fatalf("put past the quota: %d", got)
	}
	if len(reported) != 3 || !errors.Is(reported[2], store.ErrQuota) {
		t.Fatalf("reported %v", reported)
	}
	// A missing key is not a storage error.
	if got := e.Call(s, abi.OpDelete, []byte("nokey"), nil); got != abi.ENOENT.Result() || len(reported) != 3 {
		t.Fatalf("delete of a missing key: %d, reported %d", got, len(reported))
	}
}
