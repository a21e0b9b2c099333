package mqttc

import (
	"fmt"
	"net"
	"sync"
)

// framer follows MQTT fixed-header framing (type byte, 1-4 byte variable
// length, body) across arbitrary chunks of a byte stream.
type framer struct {
	limit     int // largest remaining length accepted
	state     int // 0: at a packet boundary, 1: in the length, 2: in the body
	length    int
	mult      int
	lenBytes  int
	remaining int
}

// feed advances over p and reports an error as soon as a length field is
// malformed or announces more than limit bytes, before the packet's last
// length byte can reach the decoder (which would allocate that much).
func (f *framer) feed(p []byte) error {
	for len(p) > 0 {
		switch f.state {
		case 0:
			f.state, f.length, f.mult, f.lenBytes = 1, 0, 1, 0
			p = p[1:]
		case 1:
			c := p[0]
			p = p[1:]
			f.length += int(c&0x7f) * f.mult
			f.mult *= 128
			f.lenBytes++
			if f.length > f.limit {
				return fmt.Errorf("%w: packet of at least %d bytes, limit %d", ErrProtocol, f.length, f.limit)
			}
			if c&0x80 == 0 {
				f.remaining = f.length
				f.state = 2
				if f.remaining == 0 {
					f.state = 0
				}
			} else if f.lenBytes == 4 {
				return fmt.Errorf("%w: malformed packet length", ErrProtocol)
			}
		case 2:
			n := min(len(p), f.remaining)
			p = p[n:]
			f.remaining -= n
			if f.remaining == 0 {
				f.state = 0
			}
		}
	}
	return nil
}

// conn wraps the broker connection for paho. Reads are checked against the
// packet size limit; writes are gathered into one syscall per packet (paho
// writes a packet as several buffers); the embedded mutex makes paho
// serialise whole packets between its goroutines (it locks a sync.Locker
// conn around each packet).
type conn struct {
	net.Conn
	sync.Mutex

	rd      framer
	rdErr   error
	wr      framer
	pending []byte
}

const maxRetainedWriteBuf = 64 << 10

func newConn(c net.Conn, readLimit int) *conn {
	return &conn{
		Conn: c,
		rd:   framer{limit: readLimit},
		wr:   framer{limit: 1<<28 - 1}, // MQTT's own maximum
	}
}

// Read is called only by paho's single reader goroutine. The first error is
// kept (the connection is finished after it) so the bridge can report why
// the connection ended once paho's client is done.
func (c *conn) Read(p []byte) (int, error) {
	if c.rdErr != nil {
		return 0, c.rdErr
	}
	n, err := c.Conn.Read(p)
	if ferr := c.rd.feed(p[:n]); ferr != nil {
		c.rdErr = ferr
		_ = c.Conn.Close()
		return 0, ferr
	}
	if err != nil {
		c.rdErr = err
	}
	return n, err
}

// Write is called with the mutex held (paho locks around each packet).
func (c *conn) Write(p []byte) (int, error) {
	if err := c.wr.feed(p); err != nil {
		return 0, err
	}
	c.pending = append(c.pending, p...)
	if c.wr.state != 0 {
		return len(p), nil
	}
	_, err := c.Conn.Write(c.pending)
	if cap(c.pending) > maxRetainedWriteBuf {
		c.pending = nil
	} else {
		c.pending = c.pending[:0]
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}
