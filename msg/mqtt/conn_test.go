package mqtt

import (
	"bufio"
	"context"
	"errors"
	"github.com/tinycontainer/tinycontainer/internal/testbroker"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/msg"
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

// fakeBroker accepts one connection at a time, answers CONNECT with a
// successful CONNACK and then runs script on the connection.
func fakeBroker(t *testing.T, script func(c net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				if err := skipPacket(r); err != nil {
					return
				}
				if _, err := c.Write([]byte{0x20, 0x03, 0x00, 0x00, 0x00}); err != nil {
					return
				}
				script(c)
			}()
		}
	}()
	return "mqtt://" + l.Addr().String()
}

func skipPacket(r *bufio.Reader) error {
	if _, err := r.ReadByte(); err != nil {
		return err
	}
	n, mult := 0, 1
	for {
		c, err := r.ReadByte()
		if err != nil {
			return err
		}
		n += int(c&0x7f) * mult
		mult *= 128
		if c&0x80 == 0 {
			break
		}
	}
	_, err := io.CopyN(io.Discard, r, int64(n))
	return err
}

// A broker announcing a 200 MB packet must not make the device allocate it:
// the connection is dropped as a protocol violation.
func TestHostileBrokerHugePacket(t *testing.T) {
	url := fakeBroker(t, func(c net.Conn) {
		_, _ = c.Write([]byte{0x30, 0x80, 0x80, 0x80, 0x64}) // PUBLISH, remaining length 200 MiB
		_, _ = io.Copy(io.Discard, c)
	})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bus := msg.NewBus(msg.Options{})
	b, err := Dial(ctx, url, bus, Options{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	testbroker.WaitFor(t, "the protocol violation to be reported", func() bool {
		st := b.Stats()
		return st.Connects >= 2 && strings.Contains(st.LastError, "protocol violation")
	})
	runtime.ReadMemStats(&after)
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 50<<20 {
		t.Errorf("allocated %d MiB while refusing the packet", grown>>20)
	}
}

// A broker that stops reading must not hang Close: once CloseTimeout passes
// the socket is cut and the unsent messages are counted as dropped.
func TestCloseWithStuckBroker(t *testing.T) {
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	url := fakeBroker(t, func(net.Conn) { <-hold }) // connected, never reading again
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bus := msg.NewBus(msg.Options{MaxPayload: 60000})
	b, err := Dial(ctx, url, bus, Options{QueueLen: 4, CloseTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 60000)
	// Far more than the loopback socket buffers hold, so the writer blocks.
	for range 400 {
		if err := bus.Publish("p", "big", payload); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	st := b.Stats()
	if st.Connected || st.Sent+st.OutDropped+uint64(st.Queued) != 400 {
		t.Errorf("after Close: %+v (sent+dropped+queued should be 400)", st)
	}
	if st.OutDropped == 0 {
		t.Errorf("a stuck broker should have cost messages: %+v", st)
	}
}
