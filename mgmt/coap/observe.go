package coap

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

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

// has reports whether the client address remote has observations.
func (o *observations) has(remote string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for k := range o.m {
		if k.remote == remote {
			return true
		}
	}
	return false
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

// observe registers a log observation: it answers with the lines after the
// requested sequence number, then notifies each batch of new lines.
func (s *Server) observe(w *responsewriter.ResponseWriter[*client.Conn], r *pool.Message, req request, mt message.MediaType) {
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
	first, rest := packLines(lines, notifyBudget)
	seq := uint32(2)
	if err := w.SetResponse(codes.Content, mt, bytes.NewReader(convertLines(first, mt)),
		message.Option{ID: message.Observe, Value: encodeUint(seq)}); err != nil {
		s.opts.Errors(fmt.Errorf("coap: respond: %w", err))
	}
	token := append(message.Token(nil), r.Token()...)
	// If the connection goes before the response is written, start never
	// runs; this still frees the slot and ends the device's watch.
	stop := context.AfterFunc(cc.Context(), func() { s.obs.remove(key, o) })
	start := func() {
		if !s.goNotify(func() {
			defer s.obs.remove(key, o)
			defer stop()
			s.notify(ctx, cc, o, token, req.name, mt, ch, rest, last, seq)
		}) {
			stop()
			s.obs.remove(key, o)
		}
	}
	// Notifications must not overtake the registration response, whose
	// lines they follow.
	if !responsewriter.AfterWrite(r.Context(), start) {
		start()
	}
}

// convertLines renders a notification's JSON lines in format mt (CBOR and
// text are never longer than the JSON).
func convertLines(body []byte, mt message.MediaType) []byte {
	if mt == jsonFormat {
		return body
	}
	var lines []mgmt.LogLine
	if err := json.Unmarshal(body, &lines); err != nil {
		return body // cannot happen: packLines wrote it
	}
	out, err := convert(body, lines, mt)
	if err != nil {
		return body
	}
	return out
}

// encodeUint is the minimal big-endian encoding of a uint option value.
func encodeUint(v uint32) []byte {
	buf := make([]byte, 4)
	n, _ := message.EncodeUint32(buf, v)
	return buf[:n]
}

// notify sends log lines to one observer until the observation ends:
// ctx cancelled (deregistration, reset, server closing), the peer's
// connection gone, a notification not acknowledged, or the log stream
// closed by the device, which ends the observation with a final 4.04.
// However it ends while the server is closing, the observer is told so
// (goodbye). pending holds backlog lines that did not fit the registration
// response.
func (s *Server) notify(ctx context.Context, cc *client.Conn, o *observation, token message.Token, name string, mt message.MediaType, ch <-chan mgmt.LogLine, pending []mgmt.LogLine, last uint64, seq uint32) {
	final := false // a final response (4.04) went out
	defer func() {
		if !final {
			s.goodbye(cc, o, token)
		}
	}()
	closed := false
	take := func(l mgmt.LogLine) {
		if l.Seq > last { // the device may repeat lines the backlog had
			pending = append(pending, l)
			last = l.Seq
		}
	}
	for {
		if len(pending) == 0 && !closed {
			select {
			case <-ctx.Done():
				return
			case <-cc.Done():
				return
			case l, ok := <-ch:
				if !ok {
					closed = true
				} else {
					take(l)
				}
			}
		}
	drain:
		for !closed && len(pending) < maxPending {
			select {
			case l, ok := <-ch:
				if !ok {
					closed = true
					break drain
				}
				take(l)
			default:
				break drain
			}
		}
		if len(pending) > 0 {
			var body []byte
			body, pending = packLines(pending, notifyBudget)
			seq = (seq + 1) & 0xffffff // Observe values are 24 bits
			if err := s.sendNotification(ctx, cc, o, token, codes.Content, mt, convertLines(body, mt), &seq); err != nil {
				if ctx.Err() == nil {
					s.opts.Errors(fmt.Errorf("coap: notify %v: %w", cc.RemoteAddr(), err))
				}
				return
			}
			continue
		}
		if closed {
			if ctx.Err() != nil {
				// The device's stream ended with the observation
				// (its watch shares ctx): not the device's doing.
				return
			}
			final = true
			msg := fmt.Sprintf("%v: log stream of %s ended", mgmt.ErrNotFound, name)
			if err := s.sendNotification(ctx, cc, o, token, codes.NotFound, message.TextPlain, []byte(msg), nil); err != nil {
				s.opts.Errors(fmt.Errorf("coap: notify %v: %w", cc.RemoteAddr(), err))
			}
			return
		}
	}
}

// packLines encodes as many leading lines as fit in budget bytes of JSON
// and returns the encoding and the lines left over. A line too long to fit
// alone has its text shortened, ending in "…", so that every notification
// is a single block: go-coap can mix up the blocks of successive
// block-wise notifications on one token (seen in TestObserveLarge).
// GET /c/{name}/logs returns lines whole.
func packLines(lines []mgmt.LogLine, budget int) ([]byte, []mgmt.LogLine) {
	var buf bytes.Buffer
	buf.WriteByte('[')
	n := 0
	for ; n < len(lines); n++ {
		b, err := json.Marshal(lines[n])
		if err != nil {
			break // cannot happen: LogLine has only plain fields
		}
		if buf.Len()+len(b)+2 > budget {
			if n > 0 {
				break
			}
			b = shortened(lines[0], budget-2)
		}
		if n > 0 {
			buf.WriteByte(',')
		}
		buf.Write(b)
	}
	n = max(n, min(1, len(lines)))
	buf.WriteByte(']')
	return buf.Bytes(), lines[n:]
}

// shortened encodes l with its text cut, at a UTF-8 boundary, so that the
// encoding fits in budget bytes.
func shortened(l mgmt.LogLine, budget int) []byte {
	text := l.Text
	lo, hi := 0, len(text) // the longest prefix that fits is in [lo, hi)
	var best []byte
	for lo <= hi {
		mid := (lo + hi) / 2
		cut := mid
		// Back up to the start of a rune; invalid UTF-8 has none nearby.
		for cut < len(text) && cut > 0 && mid-cut < utf8.UTFMax-1 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		l.Text = text[:cut] + "…"
		b, _ := json.Marshal(l)
		if len(b) <= budget {
			best, lo = b, mid+1
		} else {
			hi = mid - 1
		}
	}
	if best == nil { // even an empty text does not fit: only if budget is tiny
		l.Text = "…"
		best, _ = json.Marshal(l)
	}
	return best
}

// goodbyeTimeout bounds the wait for an observer's acknowledgement of the
// last notification of a device shutting down. The observers are told at
// once, each by its own notification loop, so a device stops within it
// however many there are. The notice has left when the wait starts: an
// observer that acknowledges late still reads it (the wait only gives
// go-coap no chance to send it again).
const goodbyeTimeout = 2 * time.Second

// errShuttingDown is what observers and late requests hear from a closing
// server.
var errShuttingDown = fmt.Errorf("%w: the device is shutting down", mgmt.ErrUnavailable)

// goodbye ends an observation of a server that is closing with a final
// 5.03 response (RFC 7641 section 3.2: a response without Observe ends it),
// so that the observer (`logs -f`) learns at once that the device is going
// away instead of waiting for its keep-alive to fail. It runs whatever the
// observation was doing when the server began closing (waiting for lines,
// for the acknowledgement of a notification, or watching the device's
// stream end with it). Observations ended for other reasons
// (deregistration, reset, a peer gone) end silently.
func (s *Server) goodbye(cc *client.Conn, o *observation, token message.Token) {
	if s.ctx.Err() == nil || cc.Context().Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), goodbyeTimeout)
	defer cancel()
	msg := errShuttingDown.Error()
	if err := s.sendNotification(ctx, cc, o, token, codes.ServiceUnavailable, message.TextPlain, []byte(msg), nil); err != nil {
		s.opts.Errors(fmt.Errorf("coap: goodbye %v: %w", cc.RemoteAddr(), err))
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
