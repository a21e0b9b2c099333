package conformance

import (
	"encoding/binary"
	"encoding/hex"
	"testing"

	"github.com/tinycontainer/tinycontainer/abi"
)

const (
	read    = byte(abi.OpRead)
	write   = byte(abi.OpWrite)
	get     = byte(abi.OpGet)
	put     = byte(abi.OpPut)
	del     = byte(abi.OpDelete)
	publish = byte(abi.OpPublish)
)

func e(errno abi.Errno) int32 { return errno.Result() }

func le32(v int32) []byte { return binary.LittleEndian.AppendUint32(nil, uint32(v)) }

func kvPut(key string, val []byte) []byte {
	return append(append([]byte{byte(len(key))}, key...), val...)
}

// want is the expected result of one step; data, when set, is the hex of
// the response bytes; anyHandle accepts any handle >= 0.
type want struct {
	r         int32
	anyHandle bool
	data      string
}

var ok = want{anyHandle: true}

// abiCases is the one table of SPEC section 2-4 rules run on every runtime.
var abiCases = []struct {
	name  string
	rules string
	prog  prog
	want  []want
}{
	{"open checks permission before existence (SPEC 2)",
		"  - {name: 'sensor/+', ops: [read]}\n",
		prog{}.open("actuator/led0").open("actuator/nope").open("sensor/nope").open("sensor/temperature"),
		[]want{{r: e(abi.EPERM)}, {r: e(abi.EPERM)}, {r: e(abi.ENOENT)}, ok}},
	{"bad handles are EBADF (SPEC 2, 4)",
		"",
		prog{}.call(9, read, nil, 4).close(9).open("log").close(res(2)).close(res(2)),
		[]want{{r: e(abi.EBADF)}, {r: e(abi.EBADF)}, ok, {r: 0}, {r: e(abi.EBADF)}}},
	{"an op not granted is EPERM; granted but unsupported is ENOSYS (SPEC 4)",
		"  - {name: sensor/temperature, ops: [read, write]}\n",
		prog{}.open("sensor/temperature").call(res(0), get, nil, 4).call(res(0), write, le32(1), 0).call(res(0), 42, nil, 4),
		[]want{ok, {r: e(abi.EPERM)}, {r: e(abi.ENOSYS)}, {r: e(abi.EPERM)}}},
	{"pointers and lengths outside memory are EFAULT (SPEC 2)",
		"  - {name: clock, ops: [read]}\n",
		prog{}.open("clock").raw(res(0), read, 0xfffffff0, 0, 8).raw(res(0), read, 0, 0, 0xffffffff).raw(res(0), read, 0xffffffff, 0xffffffff, 0),
		[]want{ok, {r: e(abi.EFAULT)}, {r: e(abi.EFAULT)}, {r: e(abi.EFAULT)}}},
	{"clock: u64 microseconds; small buffer is EMSGSIZE (SPEC 3)",
		"  - {name: clock, ops: [read]}\n",
		prog{}.open("clock").call(res(0), read, nil, 8).call(res(0), read, nil, 4),
		[]want{ok, {r: 8}, {r: e(abi.EMSGSIZE)}}},
	{"log: one line, write only (SPEC 3)",
		"",
		prog{}.open("log").call(res(0), read, nil, 4),
		[]want{ok, {r: e(abi.EPERM)}}},
	{"kv: put, get, delete, missing key, quota (SPEC 3, 4)",
		"  - {name: kv, ops: [get, put, delete]}\n",
		prog{}.open("kv").
			call(res(0), put, kvPut("k", []byte("hello")), 0).
			call(res(0), get, []byte("k"), 16).
			call(res(0), get, []byte("k"), 2).
			call(res(0), del, []byte("k"), 0).
			call(res(0), get, []byte("k"), 16).
			call(res(0), del, []byte("k"), 0).
			call(res(0), put, kvPut("big", make([]byte, 100)), 0).
			call(res(0), put, []byte{9, 'x'}, 0),
		[]want{ok, {r: 0}, {r: 5, data: hex.EncodeToString([]byte("hello"))}, {r: e(abi.EMSGSIZE)}, {r: 0},
			{r: e(abi.ENOENT)}, {r: e(abi.ENOENT)}, {r: e(abi.ENOSPC)}, {r: e(abi.EINVAL)}}},
	{"actuator: write then read back; malformed write is EINVAL (SPEC 3)",
		"  - {name: 'actuator/#', ops: [read, write]}\n",
		prog{}.open("actuator/led1").call(res(0), write, le32(7), 0).call(res(0), read, nil, 4).call(res(0), write, []byte{1}, 0),
		[]want{ok, {r: 0}, {r: 4, data: "07000000"}, {r: e(abi.EINVAL)}}},
	{"sensors: i32 readings, accel is 3 x i32, microphone fills whole samples (SPEC 3)",
		"  - {name: 'sensor/#', ops: [read]}\n",
		prog{}.open("sensor/humidity").call(res(0), read, nil, 4).open("sensor/accel").call(res(2), read, nil, 12).
			call(res(2), read, nil, 8).open("sensor/microphone").call(res(5), read, nil, 33),
		[]want{ok, {r: 4}, ok, {r: 12}, {r: e(abi.EMSGSIZE)}, ok, {r: 32}}},
	{"msg: publish within the grant; wildcards decide (SPEC 3, 5)",
		"  - {name: 'msg/t1/#', ops: [publish]}\n",
		prog{}.open("msg/t1/a/b").call(res(0), publish, []byte("x"), 0).open("msg/t2/a"),
		[]want{ok, {r: 0}, {r: e(abi.EPERM)}}},
	{"rate: beyond the rate calls get EAGAIN (SPEC 5)",
		"  - {name: clock, ops: [read], rate: 2/h}\n",
		prog{}.open("clock").call(res(0), read, nil, 8).call(res(0), read, nil, 8).call(res(0), read, nil, 8),
		[]want{ok, {r: 8}, {r: 8}, {r: e(abi.EAGAIN)}}},
	{"event: the activation's message (SPEC 3)",
		"",
		prog{}.open("event").call(res(0), read, nil, 2),
		[]want{ok, {r: e(abi.EMSGSIZE)}}},
}

func TestABI(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, tg target) {
		for _, c := range abiCases {
			t.Run(c.name, func(t *testing.T) {
				r := newRig(t, tg, c.rules)
				got := r.run(c.prog, len(c.want))
				for i, w := range c.want {
					g := got[i]
					switch {
					case g.step != i:
						t.Fatalf("step %d logged as %d", i, g.step)
					case w.anyHandle && g.r < 0:
						t.Errorf("step %d: %d, want a handle", i, g.r)
					case !w.anyHandle && g.r != w.r:
						t.Errorf("step %d: %d, want %d", i, g.r, w.r)
					case w.data != "" && g.data != w.data:
						t.Errorf("step %d: data %s, want %s", i, g.data, w.data)
					}
				}
			})
		}
	})
}
