package mqttc

import (
	"errors"
	"testing"
)

func TestFramer(t *testing.T) {
	cases := []struct {
		name  string
		in    []byte
		state int
		err   bool
	}{
		{"pingresp", []byte{0xd0, 0x00}, 0, false},
		{"two packets", []byte{0xd0, 0x00, 0x30, 0x02, 'a', 'b'}, 0, false},
		{"mid body", []byte{0x30, 0x05, 'a'}, 2, false},
		{"mid length", []byte{0x30, 0x80}, 1, false},
		{"two-byte length at limit", []byte{0x30, 0x80, 0x01}, 2, false}, // 128
		{"over limit", []byte{0x30, 0x81, 0x01}, 0, true},                // 129
		{"five length bytes", []byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01}, 0, true},
	}
	for _, c := range cases {
		f := framer{limit: 128}
		if c.name == "five length bytes" {
			f.limit = 1 << 30
		}
		err := f.feed(c.in)
		if (err != nil) != c.err || (err == nil && f.state != c.state) {
			t.Errorf("%s: err %v state %d, want err %v state %d", c.name, err, f.state, c.err, c.state)
		}
		if err != nil && !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v does not wrap ErrProtocol", c.name, err)
		}
	}
}

// FuzzFramer checks that framing does not depend on how the stream is cut
// into reads, and that a limit violation is found no later than the length.
func FuzzFramer(f *testing.F) {
	f.Add([]byte{0x30, 0x02, 'a', 'b', 0xd0, 0x00}, uint8(1), uint16(16))
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0x7f}, uint8(3), uint16(65535))
	f.Add([]byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01}, uint8(2), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, step uint8, limit uint16) {
		whole := framer{limit: int(limit)}
		werr := whole.feed(data)
		cut := framer{limit: int(limit)}
		var cerr error
		k := int(step)%7 + 1
		for i := 0; i < len(data) && cerr == nil; i += k {
			cerr = cut.feed(data[i:min(i+k, len(data))])
		}
		if (werr == nil) != (cerr == nil) {
			t.Fatalf("whole: %v, in chunks of %d: %v", werr, k, cerr)
		}
		if werr == nil && (whole.state != cut.state || whole.remaining != cut.remaining) {
			t.Fatalf("state differs: whole %+v, chunks %+v", whole, cut)
		}
		if werr == nil && whole.state == 1 && whole.length > whole.limit {
			t.Fatalf("length %d over limit %d not reported", whole.length, whole.limit)
		}
	})
}
