package kv

import (
	"testing"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/endpoint"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/store/memstore"
)

func TestKV(t *testing.T) {
	m, err := meta.Parse([]byte("name: c\ntenant: t\nversion: 1\nruntime: wasm\nschedule: {trigger: once}\nlimits: {storage: 16B}\nendpoints: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := endpoint.NewSession("c", "t", endpoint.NewRegistry(), endpoint.NewRules(m), nil)
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
