package coap

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// obsKey identifies an observation as RFC 7641 does: peer and token.
type obsKey struct {
	remote string
	token  string
}

type observation struct {
	cancel context.CancelFunc
	mu     sync.Mutex
	mid    int32 // message ID of the notification in flight, -1 when none
}

// observations is the table of live log observations.
type observations struct {
	mu  sync.Mutex
	max int
	m   map[obsKey]*observation
}

// add registers an observation, replacing one with the same key (a client
// re-registering, RFC 7641 section 4.1).
func (t *observations) add(k obsKey, o *observation) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.m[k]; ok {
		old.cancel()
	} else if len(t.m) >= t.max {
		return fmt.Errorf("%w: %d log observations in progress", mgmt.ErrUnavailable, len(t.m))
	}
	t.m[k] = o
	return nil
}

// remove ends the observation under k; with o non-nil only if it is still o.
func (t *observations) remove(k obsKey, o *observation) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur, ok := t.m[k]; ok && (o == nil || cur == o) {
		cur.cancel()
		delete(t.m, k)
	}
}

// reset ends the observation whose notification the peer rejected with a
// Reset: the client no longer knows the token (RFC 7641 section 3.6).
func (t *observations) reset(remote string, mid int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, o := range t.m {
		if k.remote != remote {
			continue
		}
		o.mu.Lock()
		hit := o.mid == mid
		o.mu.Unlock()
		if hit {
			o.cancel()
			delete(t.m, k)
			return
		}
	}
}

func (t *observations) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// observe registers a log observation: it answers with the lines after the
// requested sequence number, then notifies each batch of new lines.
func (s *Server) observe(w *responsewriter.ResponseWriter[*client.Conn], r *pool.Message, req request) {
	cc := w.Conn()
	key := obsKey{cc.RemoteAddr().String(), string(r.Token())}
	ctx, cancel := context.WithCancel(s.ctx)
	o := &observation{cancel: cancel, mid: -1}
	if err := s.obs.add(key, o); err != nil {
		cancel()
		s.fail(w, err)
		return
	}
	// Watch before reading the backlog so that no line falls between the
	// two; lines seen twice are dropped by sequence number below.
	ch, err := s.dev.WatchLogs(ctx, req.name, req.after)
	if err != nil {
		s.obs.remove(key, o)
		s.fail(w, err)
		return
	}
	callCtx, callCancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	lines, err := nonNil(s.dev.Logs(callCtx, req.name, req.after, req.max))
	callCancel()
	if err != nil {
		s.obs.remove(key, o)
		s.fail(w, err)
		return
	}
	last := req.after
	for _, l := range lines {
		last = max(last, l.Seq)
	}
	seq := uint32(2)
	s.reply(w, codes.Content, lines, message.Option{ID: message.Observe, Value: encodeUint(seq)})
	token := append(message.Token(nil), r.Token()...)
	start := func() {
		if !s.goNotify(func() {
			defer s.obs.remove(key, o)
			s.notify(ctx, cc, o, token, req.name, ch, last, seq)
		}) {
			s.obs.remove(key, o)
		}
	}
	// Notifications must not overtake the registration response, whose
	// lines they follow.
	if !responsewriter.AfterWrite(r.Context(), start) {
		start()
	}
}

// encodeUint is the minimal big-endian encoding of a uint option value.
func encodeUint(v uint32) []byte {
	buf := make([]byte, 4)
	n, _ := message.EncodeUint32(buf, v)
	return buf[:n]
}

// notify sends new log lines to one observer until the observation ends:
// ctx cancelled (deregistration, reset, server closing), the peer's
// connection gone, a notification not acknowledged, or the log stream
// closed by the device, which ends the observation with a final 4.04.
func (s *Server) notify(ctx context.Context, cc *client.Conn, o *observation, token message.Token, name string, ch <-chan mgmt.LogLine, last uint64, seq uint32) {
	for {
		var batch []mgmt.LogLine
		closed := false
		select {
		case <-ctx.Done():
			return
		case <-cc.Done():
			return
		case l, ok := <-ch:
			if !ok {
				closed = true
				break
			}
			batch = append(batch, l)
		}
	drain:
		for !closed && len(batch) < maxNotifyBatch {
			select {
			case l, ok := <-ch:
				if !ok {
					closed = true
					break drain
				}
				batch = append(batch, l)
			default:
				break drain
			}
		}
		fresh := batch[:0]
		for _, l := range batch {
			if l.Seq > last {
				fresh = append(fresh, l)
				last = l.Seq
			}
		}
		if len(fresh) > 0 {
			seq = (seq + 1) & 0xffffff // Observe values are 24 bits
			b, err := json.Marshal(fresh)
			if err != nil {
				s.opts.Errors(fmt.Errorf("coap: encode notification: %w", err))
				return
			}
			if err := s.sendNotification(ctx, cc, o, token, codes.Content, jsonFormat, b, &seq); err != nil {
				s.opts.Errors(fmt.Errorf("coap: notify %v: %w", cc.RemoteAddr(), err))
				return
			}
		}
		if closed {
			msg := fmt.Sprintf("%v: log stream of %s ended", mgmt.ErrNotFound, name)
			if err := s.sendNotification(ctx, cc, o, token, codes.NotFound, message.TextPlain, []byte(msg), nil); err != nil {
				s.opts.Errors(fmt.Errorf("coap: notify %v: %w", cc.RemoteAddr(), err))
			}
			return
		}
	}
}

// sendNotification sends one confirmable notification and waits for its
// acknowledgement; seq nil sends the final, Observe-less response.
func (s *Server) sendNotification(ctx context.Context, cc *client.Conn, o *observation, token message.Token, code codes.Code, cf message.MediaType, body []byte, seq *uint32) error {
	m := cc.AcquireMessage(ctx)
	defer cc.ReleaseMessage(m)
	m.SetCode(code)
	m.SetToken(token)
	m.SetContentFormat(cf)
	m.SetBody(bytes.NewReader(body))
	if seq != nil {
		m.SetObserve(*seq)
	}
	m.SetType(message.Confirmable)
	mid := cc.GetMessageID()
	m.SetMessageID(mid)
	o.mu.Lock()
	o.mid = mid
	o.mu.Unlock()
	return cc.WriteMessage(m)
}
