package coap

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	"github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/tinycontainer/tinycontainer/internal/testwait"
	"github.com/tinycontainer/tinycontainer/mgmt"
)

func startServer(t testing.TB, opts ServerOptions) (*Server, *fakeDevice) {
	t.Helper()
	dev := newFakeDevice()
	if opts.Errors == nil {
		opts.Errors = func(err error) { t.Logf("server: %v", err) }
	}
	s, err := Serve(context.Background(), "127.0.0.1:0", dev, opts)
	if err != nil {
		t.Fatalf("Serve: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, dev
}

func dialServer(t testing.TB, s *Server) *Client {
	t.Helper()
	c, err := Dial(context.Background(), s.Addr().String(), ClientOptions{Timeout: testwait.Guard()})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// rawConn is a go-coap client without block-wise, to send exactly the
// messages a test wants.
func rawConn(t testing.TB, s *Server) *client.Conn {
	t.Helper()
	cc, err := udp.Dial(s.Addr().String(), options.WithBlockwise(false, blockwise.SZX1024, time.Second))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testwait.Guard())
	t.Cleanup(cancel)
	return ctx
}

// poll waits for cond (testwait.For).
func poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, what, cond)
}

func TestResources(t *testing.T) {
	s, dev := startServer(t, ServerOptions{})
	c := dialServer(t, s)
	ctx := ctxT(t)
	want, _ := dev.List(ctx)

	list, err := c.List(ctx)
	if err != nil || !reflect.DeepEqual(list, want) {
		t.Fatalf("List = %+v, %v; want %+v", list, err, want)
	}
	stats, err := c.Stats(ctx)
	if err != nil || !reflect.DeepEqual(stats, want) {
		t.Fatalf("Stats = %+v, %v", stats, err)
	}
	info, err := c.Info(ctx)
	wantInfo, _ := dev.Info(ctx)
	if err != nil || !reflect.DeepEqual(info, wantInfo) || info.Containers["running"] == 0 {
		t.Fatalf("Info = %+v, %v; want %+v", info, err, wantInfo)
	}
	st, err := c.Status(ctx, "thermo")
	if err != nil || st != want[1] {
		t.Fatalf("Status = %+v, %v; want %+v", st, err, want[1])
	}
	cst, err := c.ContainerStats(ctx, "blinky")
	if err != nil || cst != want[0] {
		t.Fatalf("ContainerStats = %+v, %v", cst, err)
	}
	m, err := c.Meta(ctx, "thermo")
	wantMeta, _ := dev.Meta(ctx, "thermo")
	if err != nil || string(m) != string(wantMeta) {
		t.Fatalf("Meta = %s, %v", m, err)
	}
	l1 := dev.addLog("thermo", "hello")
	dev.addLog("blinky", "other")
	l3 := dev.addLog("thermo", "world")
	logs, err := c.Logs(ctx, "thermo", 0, 10)
	if err != nil || !reflect.DeepEqual(logs, []mgmt.LogLine{l1, l3}) {
		t.Fatalf("Logs = %+v, %v", logs, err)
	}
	logs, err = c.Logs(ctx, "thermo", l1.Seq, 10)
	if err != nil || !reflect.DeepEqual(logs, []mgmt.LogLine{l3}) {
		t.Fatalf("Logs after %d = %+v, %v", l1.Seq, logs, err)
	}
	logs, err = c.Logs(ctx, "blinky", 99, 10)
	if err != nil || logs == nil || len(logs) != 0 {
		t.Fatalf("Logs with none = %#v, %v; want an empty list", logs, err)
	}
	audit, err := c.Audit(ctx, 10)
	wantAudit, _ := dev.Audit(ctx, 10)
	if err != nil || !reflect.DeepEqual(audit, wantAudit) {
		t.Fatalf("Audit = %+v, %v", audit, err)
	}
	got, err := c.Deploy(ctx, []byte("sensor\nsome code"))
	if err != nil || got.Name != "sensor" || got.Version != 1 {
		t.Fatalf("Deploy = %+v, %v", got, err)
	}
	res, err := c.Exec(ctx, []byte(`{"op":"stop","name":"thermo"}`))
	if err != nil || !json.Valid(res) || !strings.Contains(string(res), `"state":"stopped"`) {
		t.Fatalf("Exec = %s, %v", res, err)
	}

	links, err := c.Discover(ctx, "")
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	byTarget := map[string]Link{}
	for _, l := range links {
		byTarget[l.Target] = l
	}
	for _, p := range []string{"/d", "/c", "/stats", "/audit", "/deploy", "/exec", "/c/thermo", "/c/thermo/meta", "/c/thermo/logs", "/c/thermo/stats", "/c/sensor/logs"} {
		l, ok := byTarget[p]
		if !ok || l.Attrs["ct"] != "50" || !strings.HasPrefix(l.Attrs["rt"], "tc.") {
			t.Errorf("discovery lacks %s with rt and ct=50: %+v", p, l)
		}
	}
	if _, ok := byTarget["/c/thermo/logs"].Attrs["obs"]; !ok {
		t.Errorf("logs are not marked observable: %+v", byTarget["/c/thermo/logs"])
	}
	logLinks, err := c.Discover(ctx, "rt=tc.logs")
	if err != nil || len(logLinks) != 3 {
		t.Fatalf("Discover rt=tc.logs = %+v, %v; want the 3 containers' logs", logLinks, err)
	}
	thermo, err := c.Discover(ctx, "href=/c/thermo*")
	if err != nil || len(thermo) != 4 {
		t.Fatalf("Discover href=/c/thermo* = %+v, %v", thermo, err)
	}
}

func TestErrorMapping(t *testing.T) {
	s, dev := startServer(t, ServerOptions{})
	c := dialServer(t, s)
	ctx := ctxT(t)
	dev.locked(func() {
		dev.failStatus["thermo"] = errors.New("sensor bus wedged")
		dev.failStatus["blinky"] = fmt.Errorf("scheduler: %w", mgmt.ErrUnavailable)
	})
	for _, tc := range []struct {
		name  string
		call  func() error
		class error
		code  codes.Code
		text  string
	}{
		{"not found", func() error { _, err := c.Status(ctx, "nope"); return err }, mgmt.ErrNotFound, codes.NotFound, `container "nope": not found`},
		{"denied", func() error { _, err := c.Deploy(ctx, []byte("deny\nx")); return err }, mgmt.ErrDenied, codes.Forbidden, "image signature: denied"},
		{"conflict", func() error { _, err := c.Deploy(ctx, []byte("thermo\nv1")); return err }, mgmt.ErrConflict, codes.Conflict, "version 1 is not newer than 1: conflict"},
		{"invalid", func() error { _, err := c.Exec(ctx, []byte(`{"op":"dance"}`)); return err }, mgmt.ErrInvalid, codes.BadRequest, `op "dance": invalid request`},
		{"unavailable", func() error { _, err := c.Status(ctx, "blinky"); return err }, mgmt.ErrUnavailable, codes.ServiceUnavailable, "scheduler: unavailable"},
		{"internal", func() error { _, err := c.Status(ctx, "thermo"); return err }, nil, codes.InternalServerError, "sensor bus wedged"},
	} {
		err := tc.call()
		var re *RemoteError
		if !errors.As(err, &re) {
			t.Errorf("%s: error %v is not a RemoteError", tc.name, err)
			continue
		}
		if re.Code != tc.code || err.Error() != tc.text || (tc.class != nil && !errors.Is(err, tc.class)) || (tc.class == nil && re.Class != nil) {
			t.Errorf("%s: got %v %q (class %v); want %v %q (class %v)", tc.name, re.Code, err.Error(), re.Class, tc.code, tc.text, tc.class)
		}
	}
	// Every class survives the round trip of the table.
	for _, class := range []error{mgmt.ErrNotFound, mgmt.ErrInvalid, mgmt.ErrDenied, mgmt.ErrConflict, mgmt.ErrTooLarge, mgmt.ErrUnavailable} {
		back := errorFrom(codeFor(fmt.Errorf("x: %w", class)), "x")
		if !errors.Is(back, class) {
			t.Errorf("class %v comes back as %v", class, back)
		}
	}
	// Bad arguments are refused before any round trip.
	if _, err := c.Status(ctx, "Bad/Name"); !errors.Is(err, mgmt.ErrInvalid) {
		t.Errorf("Status(bad name) = %v", err)
	}
	if _, err := c.Logs(ctx, "thermo", 0, 0); !errors.Is(err, mgmt.ErrInvalid) {
		t.Errorf("Logs(max 0) = %v", err)
	}
}

func TestDeployBlockwise200KB(t *testing.T) {
	s, dev := startServer(t, ServerOptions{})
	c := dialServer(t, s)
	img := append([]byte("big\n"), make([]byte, 200<<10)...)
	if _, err := rand.Read(img[4:]); err != nil {
		t.Fatal(err)
	}
	st, err := c.Deploy(ctxT(t), img)
	if err != nil || st.Name != "big" {
		t.Fatalf("Deploy = %+v, %v", st, err)
	}
	dev.locked(func() {
		if len(dev.images) != 1 || dev.images[0] != sha256.Sum256(img) {
			t.Error("the device did not receive the image intact")
		}
	})
}

func TestUploadCapThroughClient(t *testing.T) {
	s, dev := startServer(t, ServerOptions{MaxImage: 64 << 10})
	c := dialServer(t, s)
	img := append([]byte("big\n"), bytes.Repeat([]byte{7}, 256<<10)...)
	_, err := c.Deploy(ctxT(t), img)
	var re *RemoteError
	if !errors.Is(err, mgmt.ErrTooLarge) || !errors.As(err, &re) || re.Code != codes.RequestEntityTooLarge {
		t.Fatalf("Deploy above the cap = %v; want 4.13", err)
	}
	dev.locked(func() {
		if dev.deploys != 0 {
			t.Error("the device saw an image above the cap")
		}
	})
	// The server still serves, and one slot was not leaked by the refusal
	// that came with the first block.
	if _, err := c.Deploy(ctxT(t), append([]byte("small\n"), make([]byte, 10<<10)...)); err != nil {
		t.Fatalf("Deploy below the cap after a refusal: %v", err)
	}
}

// postBlock sends one Block1 block of a POST /deploy with the given token.
func postBlock(t *testing.T, cc *client.Conn, token message.Token, num int64, more bool, payload []byte, size1 int64) *pool.Message {
	t.Helper()
	req, err := cc.NewPostRequest(ctxT(t), "/deploy", message.AppOctets, bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	req.SetToken(token)
	v, err := blockwise.EncodeBlockOption(blockwise.SZX1024, num, more)
	if err != nil {
		t.Fatal(err)
	}
	req.SetOptionUint32(message.Block1, v)
	if size1 >= 0 {
		req.SetOptionUint32(message.Size1, uint32(size1))
	}
	resp, err := cc.Do(req)
	cc.ReleaseMessage(req)
	if err != nil {
		t.Fatalf("block %d: %v", num, err)
	}
	t.Cleanup(func() { cc.ReleaseMessage(resp) })
	return resp
}

// TestUploadCapBlocks shows the bound on memory: the server acknowledges
// (2.31 Continue, so buffers) only blocks within the cap and refuses the
// first block that crosses it, before go-coap stores it.
func TestUploadCapBlocks(t *testing.T) {
	const limit = 8 << 10
	s, dev := startServer(t, ServerOptions{MaxImage: limit, MaxUploads: 2})
	cc := rawConn(t, s)
	block := bytes.Repeat([]byte{1}, 1024)
	tok := message.Token("upload-1")
	for num := int64(0); num < limit/1024; num++ {
		resp := postBlock(t, cc, tok, num, true, block, -1)
		if resp.Code() != codes.Continue {
			t.Fatalf("block %d within the cap: %v, want 2.31", num, resp.Code())
		}
	}
	resp := postBlock(t, cc, tok, limit/1024, true, block, -1)
	size1, err := resp.GetOptionUint32(message.Size1)
	if resp.Code() != codes.RequestEntityTooLarge || err != nil || size1 != limit {
		t.Fatalf("block past the cap: %v Size1 %d (%v); want 4.13 with Size1 %d", resp.Code(), size1, err, limit)
	}
	// An announced size above the cap is refused at the first block.
	resp = postBlock(t, cc, message.Token("upload-2"), 0, true, block, 2*limit)
	if resp.Code() != codes.RequestEntityTooLarge {
		t.Fatalf("Size1 above the cap: %v, want 4.13", resp.Code())
	}
	// The refused transfer keeps its slot (go-coap still holds its first
	// 8 KiB); with MaxUploads 2 one more upload may start, then none.
	if resp := postBlock(t, cc, message.Token("upload-3"), 0, true, block, -1); resp.Code() != codes.Continue {
		t.Fatalf("second upload: %v, want 2.31", resp.Code())
	}
	resp = postBlock(t, cc, message.Token("upload-4"), 0, true, block, -1)
	if resp.Code() != codes.ServiceUnavailable {
		t.Fatalf("upload beyond MaxUploads: %v, want 5.03", resp.Code())
	}
	if _, err := resp.GetOptionUint32(message.MaxAge); err != nil {
		t.Errorf("5.03 without Max-Age: %v", err)
	}
	// Finishing an upload frees its slot.
	if resp := postBlock(t, cc, message.Token("upload-3"), 1, false, []byte("x"), -1); resp.Code() != codes.BadRequest {
		t.Fatalf("last block: %v, want the device's 4.00 for a headerless image", resp.Code())
	}
	if resp := postBlock(t, cc, message.Token("upload-5"), 0, true, block, -1); resp.Code() != codes.Continue {
		t.Fatalf("upload after one finished: %v, want 2.31", resp.Code())
	}
	dev.locked(func() {
		if dev.deploys != 1 {
			t.Errorf("device saw %d deploys, want 1", dev.deploys)
		}
	})
}

func TestObserveLogs(t *testing.T) {
	s, dev := startServer(t, ServerOptions{})
	c := dialServer(t, s)
	old := dev.addLog("thermo", "before")
	ctx, cancel := context.WithCancel(ctxT(t))
	ch, err := c.WatchLogs(ctx, "thermo", 0)
	if err != nil {
		t.Fatalf("WatchLogs: %v", err)
	}
	next := func() mgmt.LogLine {
		t.Helper()
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatal("channel closed early")
			}
			return l
		case <-time.After(testwait.Guard()):
			t.Fatal("no log line (a hang guard)")
		}
		return mgmt.LogLine{}
	}
	if l := next(); l != old {
		t.Fatalf("first line %+v, want the backlog %+v", l, old)
	}
	for i := range 5 {
		dev.addLog("blinky", "not mine")
		want := dev.addLog("thermo", fmt.Sprintf("line %d", i))
		if l := next(); l != want {
			t.Fatalf("notification %d = %+v, want %+v", i, l, want)
		}
	}
	cancel()
	for range ch {
	}
	poll(t, "the server to forget the observation", func() bool { return s.obs.len() == 0 && dev.watching("thermo") == 0 })

	// A stream the device ends closes the channel.
	ch, err = c.WatchLogs(ctxT(t), "blinky", 1<<40)
	if err != nil {
		t.Fatalf("WatchLogs: %v", err)
	}
	poll(t, "the watch to register", func() bool { return dev.watching("blinky") == 1 })
	dev.remove("blinky")
	for range ch {
	}
	poll(t, "the server to forget the observation", func() bool { return s.obs.len() == 0 })

	if _, err := c.WatchLogs(ctxT(t), "nope", 0); !errors.Is(err, mgmt.ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("WatchLogs(unknown) = %v, want the device's not found", err)
	}
}

func TestObserveLimitAndClose(t *testing.T) {
	s, _ := startServer(t, ServerOptions{MaxObservers: 1})
	c := dialServer(t, s)
	ch, err := c.WatchLogs(context.Background(), "thermo", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WatchLogs(ctxT(t), "thermo", 0); !errors.Is(err, mgmt.ErrUnavailable) {
		t.Fatalf("observation beyond MaxObservers: %v, want unavailable", err)
	}
	// Closing the server ends the observation; the client learns when its
	// connection goes.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.obs.len() != 0 {
		t.Fatal("observations survive Close")
	}
	_ = c.Close()
	for range ch {
	}
}

func TestBadRequests(t *testing.T) {
	s, _ := startServer(t, ServerOptions{})
	cc := rawConn(t, s)
	ctx := ctxT(t)
	get := func(path string, q ...string) (codes.Code, string) {
		t.Helper()
		var opts message.Options
		for _, v := range q {
			opts = append(opts, message.Option{ID: message.URIQuery, Value: []byte(v)})
		}
		resp, err := cc.Get(ctx, path, opts...)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer cc.ReleaseMessage(resp)
		b, _ := resp.ReadBody()
		return resp.Code(), string(b)
	}
	for _, tc := range []struct {
		path  string
		query []string
		code  codes.Code
	}{
		{"/nope", nil, codes.NotFound},
		{"/c/thermo/nope", nil, codes.NotFound},
		{"/c/thermo/logs/x", nil, codes.NotFound},
		{"/c/Thermo", nil, codes.BadRequest},
		{"/c/" + strings.Repeat("a", 33), nil, codes.BadRequest},
		{"/c/thermo/logs", []string{"after=x"}, codes.BadRequest},
		{"/c/thermo/logs", []string{"max=0"}, codes.BadRequest},
		{"/c/thermo/logs", []string{"max=5", "max=6"}, codes.BadRequest},
		{"/c/thermo/logs", []string{"what=1"}, codes.BadRequest},
		{"/audit", []string{"limit=100000"}, codes.BadRequest},
		{"/c", []string{"after=1"}, codes.BadRequest},
		{"/deploy", nil, codes.MethodNotAllowed},
	} {
		if code, msg := get(tc.path, tc.query...); code != tc.code || msg == "" {
			t.Errorf("GET %s %v = %v %q, want %v with a message", tc.path, tc.query, code, msg, tc.code)
		}
	}
	resp, err := cc.Post(ctx, "/c", message.AppJSON, bytes.NewReader([]byte("{}")))
	if err != nil || resp.Code() != codes.MethodNotAllowed {
		t.Fatalf("POST /c = %v, %v; want 4.05", resp, err)
	}
	cc.ReleaseMessage(resp)
	resp, err = cc.Post(ctx, "/exec", message.AppOctets, nil)
	if err != nil || resp.Code() != codes.BadRequest {
		t.Fatalf("POST /exec without body = %v, %v; want 4.00", resp, err)
	}
	cc.ReleaseMessage(resp)
	if code, _ := get("/c/thermo"); code != codes.Content {
		t.Fatalf("server stopped answering: %v", code)
	}
}

// TestGarbage throws undecodable and hostile datagrams at the server and
// checks that it keeps serving.
func TestGarbage(t *testing.T) {
	s, _ := startServer(t, ServerOptions{})
	raw, err := net.DialUDP("udp", nil, s.Addr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	junk := [][]byte{
		{},
		{0x00},
		{0xff, 0xff, 0xff, 0xff},
		{0x40, 0x01},                   // truncated header
		{0x48, 0x01, 0x00, 0x01, 0x01}, // token length 8, 1 byte present
		{0x4f, 0x01, 0x00, 0x01},       // token length 15 (reserved)
		{0x40, 0x01, 0x00, 0x02, 0xbf}, // option delta 11, length 15 (reserved)
		{0x40, 0x01, 0x00, 0x03, 0xff}, // payload marker without payload
		{0x40, 0x01, 0x00, 0x04, 0xd1, 0x0e, 0x01},            // unknown critical option 27
		{0x80, 0x01, 0x00, 0x05},                              // version 2
		{0x70, 0x00, 0x00, 0x06},                              // RST with nothing to reset
		{0x40, 0x02, 0x00, 0x07, 0xd1, 0x2f, 0x0e, 0xff, 'x'}, // POST, Block1 NUM 0 M SZX 7 (BERT on UDP)
		bytes.Repeat([]byte{0x41}, 2000),
		make([]byte, 65000),
	}
	for i := range 200 {
		b := make([]byte, 1+i%97)
		_, _ = rand.Read(b)
		junk = append(junk, b)
	}
	for _, j := range junk {
		if _, err := raw.Write(j); err != nil {
			t.Logf("write %d bytes: %v", len(j), err)
		}
	}
	c := dialServer(t, s)
	if _, err := c.Status(ctxT(t), "thermo"); err != nil {
		t.Fatalf("server stopped serving after garbage: %v", err)
	}
}

func TestListenAddress(t *testing.T) {
	dev := newFakeDevice()
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		if s, err := Serve(context.Background(), addr, dev, ServerOptions{}); !errors.Is(err, mgmt.ErrDenied) {
			if s != nil {
				_ = s.Close()
			}
			t.Errorf("Serve(%s) = %v; want refused without AllowRemote", addr, err)
		}
	}
	if _, err := Serve(context.Background(), "not an address", dev, ServerOptions{}); !errors.Is(err, mgmt.ErrInvalid) {
		t.Errorf("Serve(garbage) = %v", err)
	}
	for _, addr := range []string{"localhost:0", "[::1]:0"} {
		s, err := Serve(context.Background(), addr, dev, ServerOptions{})
		if err != nil {
			t.Logf("Serve(%s): %v (no such loopback here?)", addr, err)
			continue
		}
		_ = s.Close()
	}
	s, err := Serve(context.Background(), "0.0.0.0:0", dev, ServerOptions{AllowRemote: true})
	if err != nil {
		t.Fatalf("Serve with AllowRemote: %v", err)
	}
	_ = s.Close()

	// A cancelled context stops the server too.
	ctx, cancel := context.WithCancel(context.Background())
	s, err = Serve(ctx, "127.0.0.1:0", dev, ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-s.done:
	case <-time.After(testwait.Guard()):
		t.Fatal("server survives its context (a hang guard)")
	}
}

func TestDialUnreachable(t *testing.T) {
	// A bound socket that never answers.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	_, err = Dial(context.Background(), pc.LocalAddr().String(), ClientOptions{Timeout: 300 * time.Millisecond})
	if !errors.Is(err, mgmt.ErrUnavailable) {
		t.Fatalf("Dial(silent peer) = %v, want unavailable", err)
	}
}

// TestResponseCap checks the client against a device that answers with
// more than MaxResponse.
func TestResponseCap(t *testing.T) {
	s, dev := startServer(t, ServerOptions{})
	dev.locked(func() {
		for i := range 200 {
			n := fmt.Sprintf("c%03d", i)
			dev.containers[n] = mgmt.ContainerStatus{Name: n, Tenant: strings.Repeat("t", 200)}
		}
	})
	c, err := Dial(context.Background(), s.Addr().String(), ClientOptions{MaxResponse: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.List(ctxT(t)); !errors.Is(err, mgmt.ErrTooLarge) {
		t.Fatalf("List beyond MaxResponse = %v, want too large", err)
	}
}

// TestObserveLarge observes with a backlog and a burst that each exceed
// one block, so the registration response and notifications go block-wise.
func TestObserveLarge(t *testing.T) {
	s, dev := startServer(t, ServerOptions{})
	c := dialServer(t, s)
	var want []mgmt.LogLine
	for i := range 40 {
		want = append(want, dev.addLog("thermo", fmt.Sprintf("backlog %02d %s", i, strings.Repeat("b", 60))))
	}
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	ch, err := c.WatchLogs(ctx, "thermo", 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 { // the fake's watch channel holds 16
		want = append(want, dev.addLog("thermo", fmt.Sprintf("burst %02d %s", i, strings.Repeat("n", 200))))
	}
	for i, w := range want {
		select {
		case l := <-ch:
			if l != w {
				t.Fatalf("line %d = %+v, want %+v", i, l, w)
			}
		case <-time.After(testwait.Guard()):
			t.Fatalf("line %d never came (a hang guard)", i)
		}
	}
}

// TestObserveLongLine: a line longer than a block arrives shortened in the
// notification and whole through GET.
func TestObserveLongLine(t *testing.T) {
	s, dev := startServer(t, ServerOptions{})
	c := dialServer(t, s)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	ch, err := c.WatchLogs(ctx, "thermo", 0)
	if err != nil {
		t.Fatal(err)
	}
	long := dev.addLog("thermo", strings.Repeat("ü", 3000))
	select {
	case l := <-ch:
		if l.Seq != long.Seq || !strings.HasSuffix(l.Text, "…") || !strings.HasPrefix(long.Text, strings.TrimSuffix(l.Text, "…")) || len(l.Text) > 1024 {
			t.Fatalf("notified %d bytes of text, want a shortened prefix", len(l.Text))
		}
	case <-time.After(testwait.Guard()):
		t.Fatal("no notification (a hang guard)")
	}
	got, err := c.Logs(ctx, "thermo", 0, 1)
	if err != nil || len(got) != 1 || got[0] != long {
		t.Fatalf("GET logs did not return the line whole: %v", err)
	}
}

func TestDTLSPSK(t *testing.T) {
	key := []byte("0123456789abcdef0123")
	s, dev := startServer(t, ServerOptions{PSK: key, PSKIdentity: "owner"})
	c, err := Dial(ctxT(t), s.Addr().String(), ClientOptions{PSK: key, PSKIdentity: "owner", Timeout: testwait.Guard()})
	if err != nil {
		t.Fatalf("Dial over DTLS: %v", err)
	}
	defer c.Close()
	want, _ := dev.Status(ctxT(t), "thermo")
	if st, err := c.Status(ctxT(t), "thermo"); err != nil || st != want {
		t.Fatalf("Status over DTLS = %+v, %v", st, err)
	}
	img := append([]byte("secure\n"), make([]byte, 20<<10)...)
	if st, err := c.Deploy(ctxT(t), img); err != nil || st.Name != "secure" {
		t.Fatalf("block-wise Deploy over DTLS = %+v, %v", st, err)
	}
	for _, bad := range []ClientOptions{
		{PSK: []byte("another key of 16+ bytes"), PSKIdentity: "owner"},
		{PSK: key, PSKIdentity: "intruder"},
		{}, // plain CoAP to a DTLS server
	} {
		bad.Timeout = 500 * time.Millisecond
		if c, err := Dial(ctxT(t), s.Addr().String(), bad); !errors.Is(err, mgmt.ErrUnavailable) {
			if c != nil {
				_ = c.Close()
			}
			t.Errorf("Dial with identity %q = %v, want refused", bad.PSKIdentity, err)
		}
	}
	if _, err := Serve(context.Background(), "127.0.0.1:0", dev, ServerOptions{PSK: []byte("short")}); !errors.Is(err, mgmt.ErrInvalid) {
		t.Errorf("Serve with a short PSK = %v", err)
	}
}

// TestObserverGone: a client that vanishes without deregistering is
// forgotten once its peer is idle for IdleTimeout.
func TestObserverGone(t *testing.T) {
	s, dev := startServer(t, ServerOptions{IdleTimeout: 300 * time.Millisecond})
	c, err := Dial(ctxT(t), s.Addr().String(), ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WatchLogs(context.Background(), "thermo", 0); err != nil {
		t.Fatal(err)
	}
	poll(t, "the observation", func() bool { return s.obs.len() == 1 && dev.watching("thermo") == 1 })
	_ = c.Close()
	poll(t, "the server to forget the vanished observer", func() bool { return s.obs.len() == 0 && dev.watching("thermo") == 0 })
}
