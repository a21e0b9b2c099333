package ml

import (
	"encoding/binary"
	"os"
	"testing"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/endpoint"
	"github.com/tinycontainer/tinycontainer/ml/tflite"
)

type mem []byte

func (m mem) Read(p, n uint32) ([]byte, bool) {
	if uint64(p)+uint64(n) > uint64(len(m)) {
		return nil, false
	}
	return m[p : p+n], true
}

func req(a ...uint32) []byte {
	var b []byte
	for _, v := range a {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	return b
}

func TestInvokeRequests(t *testing.T) {
	model, err := os.ReadFile("../../ml/tflite/testdata/demo_model.tflite")
	if err != nil {
		t.Fatal(err)
	}
	m := make(mem, 8192)
	copy(m, model)
	const in, out = 4096, 4200
	s := endpoint.NewTestCall(endpoint.CallContext{Container: "c", Memory: m})
	e := &Endpoint{Cache: tflite.NewCache(4)}
	ml := uint32(len(model))
	resp := make([]byte, 4)
	cases := []struct {
		name string
		req  []byte
		cap  int
		want int32
	}{
		{"ok", req(0, ml, in, 48, out, 16), 4, 4},
		{"short request", req(0, ml, in, 48, out), 4, abi.EINVAL.Result()},
		{"no room for the length", req(0, ml, in, 48, out, 16), 2, abi.EMSGSIZE.Result()},
		{"model out of memory", req(8000, ml, in, 48, out, 16), 4, abi.EFAULT.Result()},
		{"output out of memory", req(0, ml, in, 48, 8190, 16), 4, abi.EFAULT.Result()},
		{"output over the model", req(0, ml, in, 48, 100, 16), 4, abi.EINVAL.Result()},
		{"output over the input", req(0, ml, in, 48, in+8, 16), 4, abi.EINVAL.Result()},
		{"wrong input size", req(0, ml, in, 47, out, 16), 4, abi.EINVAL.Result()},
		{"output too small", req(0, ml, in, 48, out, 2), 4, abi.EMSGSIZE.Result()},
		{"not a model", req(in, 48, in, 48, out, 16), 4, abi.EINVAL.Result()},
	}
	for _, c := range cases {
		if got := e.Call(s, abi.OpInvoke, c.req, resp[:c.cap]); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	e.Call(s, abi.OpInvoke, req(0, ml, in, 48, out, 16), resp)
	if n := binary.LittleEndian.Uint32(resp); n != 4 {
		t.Fatalf("output length %d", n)
	}
	want, _ := tflite.Run(model, m[in:in+48])
	if string(want) != string(m[out:out+4]) {
		t.Fatalf("output %x, want %x", m[out:out+4], want)
	}
}
