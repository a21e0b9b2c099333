package mqtt

import (
	"bufio"
	"context"
	"github.com/tinycontainer/tinycontainer/internal/testbroker"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/internal/testwait"
	"github.com/tinycontainer/tinycontainer/msg"
)

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
	ctx, cancel := context.WithTimeout(context.Background(), testwait.Guard())
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
	ctx, cancel := context.WithTimeout(context.Background(), testwait.Guard())
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
