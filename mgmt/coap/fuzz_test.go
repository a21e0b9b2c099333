package coap

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// checkParsed asserts what parseRequest promises about its result.
func checkParsed(t *testing.T, method codes.Code, segments, queries []string, r request, err error) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, mgmt.ErrNotFound) && !errors.Is(err, mgmt.ErrInvalid) && !errors.Is(err, errMethodNotAllowed) {
			t.Fatalf("parseRequest(%v, %q, %q): unclassified error %v", method, segments, queries, err)
		}
		return
	}
	if r.res < resCore || r.res > resExec {
		t.Fatalf("parseRequest(%q): resource %d", segments, r.res)
	}
	if post := r.res == resDeploy || r.res == resExec; post != (method == codes.POST) || (!post && method != codes.GET) {
		t.Fatalf("parseRequest(%v, %q) accepted the wrong method", method, segments)
	}
	if r.name != "" && !validName(r.name) {
		t.Fatalf("parseRequest(%q) accepted name %q", segments, r.name)
	}
	if r.max < 1 || r.max > maxLogMax || r.limit < 1 || r.limit > maxAuditLimit {
		t.Fatalf("parseRequest(%q): max %d limit %d out of range", queries, r.max, r.limit)
	}
	if r.res != resCore && r.filterKey != "" {
		t.Fatalf("parseRequest(%q): filter on %v", queries, segments)
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []struct {
		m    byte
		p, q string
	}{
		{1, "c", ""}, {1, "c/thermo", ""}, {1, "c/thermo/logs", "after=5&max=10"}, {1, "audit", "limit=3"},
		{2, "deploy", ""}, {2, "exec", ""}, {1, ".well-known/core", "rt=tc.*"}, {1, "c/x/logs", "max=+5"},
		{1, "c//logs", ""}, {4, "c", ""}, {1, "c/thermo/stats", "after=1"}, {1, "stats", "x"},
	} {
		f.Add(s.m, s.p, s.q)
	}
	f.Fuzz(func(t *testing.T, m byte, path, query string) {
		method := codes.Code(m)
		segments := strings.Split(path, "/")
		var queries []string
		if query != "" {
			queries = strings.Split(query, "&")
		}
		r, err := parseRequest(method, segments, queries)
		checkParsed(t, method, segments, queries, r, err)
	})
}

// FuzzDatagram decodes arbitrary datagrams as the server does and parses
// the request line they carry.
func FuzzDatagram(f *testing.F) {
	for _, seed := range [][]byte{
		{0x40, 0x01, 0x00, 0x01, 0xb1, 'c'},
		{0x40, 0x01, 0x00, 0x01, 0xb1, 'c', 0x06, 't', 'h', 'e', 'r', 'm', 'o'},
		{0x40, 0x02, 0x00, 0x02, 0xb6, 'd', 'e', 'p', 'l', 'o', 'y', 0xd1, 0x0a, 0x0e, 0xff, 'x'},
		{0x44, 0x01, 0x00, 0x03, 1, 2, 3, 4, 0x60, 0x51, 'c', 0x06, 'b', 'l', 'i', 'n', 'k', 'y', 0x04, 'l', 'o', 'g', 's', 0x47, 'a', 'f', 't', 'e', 'r', '=', '1'},
	} {
		f.Add(seed)
	}
	u := newUploads(2, time.Minute)
	f.Fuzz(func(t *testing.T, datagram []byte) {
		m := pool.NewMessage(context.Background())
		if _, err := m.UnmarshalWithDecoder(coder.DefaultCoder, datagram); err != nil {
			return
		}
		segments, queries := uriOf(m.Options())
		r, err := parseRequest(m.Code(), segments, queries)
		checkParsed(t, m.Code(), segments, queries, r, err)
		block, errB := m.GetOptionUint32(message.Block1)
		n, _ := m.BodySize()
		v := u.check(transfer{key: "k", hasBlock: errB == nil, block: block, size1: -1, n: n, limit: 4096}, time.Now())
		if v.code != 0 && v.msg == "" {
			t.Fatalf("verdict %v without a message", v.code)
		}
	})
}

// FuzzUploadCheck drives the upload accounting with arbitrary block
// sequences and checks its two promises: nothing that would end past the
// limit is let through, and no more than max transfers are counted.
func FuzzUploadCheck(f *testing.F) {
	f.Add([]byte{0x0e, 0x1e, 0x2e, 0x36}, uint16(4096))
	f.Add([]byte{0x0e, 0xff, 0x0e, 0x0e, 0x0e}, uint16(100))
	f.Fuzz(func(t *testing.T, ops []byte, limit uint16) {
		u := newUploads(2, time.Minute)
		now := time.Unix(0, 0)
		for i := 0; i+1 < len(ops); i += 2 {
			// Each op: a token (low 2 bits of the first byte), a Block1
			// option value (the second byte, so NUM 0..15) and a payload
			// size (the first byte's high bits, in units of 64).
			tr := transfer{
				key:      string('a' + rune(ops[i]&3)),
				hasBlock: ops[i]&4 == 0,
				block:    uint32(ops[i+1]),
				size1:    -1,
				n:        int64(ops[i]>>3) * 64,
				limit:    int64(limit),
			}
			v := u.check(tr, now)
			szx, num, _, err := blockwise.DecodeBlockOption(tr.block)
			end := tr.n
			if tr.hasBlock && err == nil {
				end += num * szx.Size()
			}
			if v.code == 0 && end > tr.limit {
				t.Fatalf("op %d: %+v let through past the limit", i, tr)
			}
			if len(u.active) > u.max {
				t.Fatalf("op %d: %d transfers counted, max %d", i, len(u.active), u.max)
			}
			now = now.Add(time.Second)
		}
	})
}

func FuzzParseLinks(f *testing.F) {
	f.Add([]byte(`</c>;ct=50;rt="tc.containers";title="containers",</c/x/logs>;obs;ct=50`))
	f.Add([]byte(`<a>;b="c\"d",<e>`))
	f.Add(formatLinks(coreLinks([]string{"thermo", "a-1"})))
	f.Add([]byte(`<`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		links, err := parseLinks(doc)
		if err != nil {
			if !errors.Is(err, mgmt.ErrInvalid) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		// What parses must survive a round trip through the encoder,
		// except flag attributes other than obs, which it writes quoted.
		for _, l := range links {
			for k, v := range l.Attrs {
				if v == "" && k != "obs" {
					return
				}
			}
		}
		again, err := parseLinks(formatLinks(links))
		if err != nil {
			t.Fatalf("re-parse of %q: %v", formatLinks(links), err)
		}
		if len(again) != len(links) || (len(links) > 0 && !reflect.DeepEqual(again, links)) {
			t.Fatalf("round trip changed %+v into %+v", links, again)
		}
	})
}

func FuzzPackLines(f *testing.F) {
	f.Add("short", uint16(3), uint16(1024))
	f.Add(strings.Repeat("é\x00\"<", 500), uint16(2), uint16(1024))
	f.Add(strings.Repeat("x", 5000), uint16(1), uint16(200))
	f.Fuzz(func(t *testing.T, text string, count, budget uint16) {
		budget = max(budget, 200) // room for one line's fields
		if len(text) > 16<<10 {
			text = text[:16<<10] // longer adds time, not coverage
		}
		lines := make([]mgmt.LogLine, count%8)
		for i := range lines {
			lines[i] = mgmt.LogLine{Seq: uint64(i + 1), Time: time.Unix(int64(i), 0).UTC(), Container: "c", Text: text}
		}
		for len(lines) > 0 {
			body, rest := packLines(lines, int(budget))
			var got []mgmt.LogLine
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("packLines made bad JSON %q: %v", body, err)
			}
			if len(body) > int(budget) || len(got) == 0 || len(got)+len(rest) != len(lines) {
				t.Fatalf("packLines(%d lines, %d) = %d bytes, %d lines, %d left", len(lines), budget, len(body), len(got), len(rest))
			}
			for i, l := range got {
				// encoding/json replaces invalid UTF-8; compare with that.
				var w mgmt.LogLine
				b, _ := json.Marshal(lines[i])
				_ = json.Unmarshal(b, &w)
				if l.Seq != w.Seq || (l.Text != w.Text && (len(got) != 1 || !strings.HasSuffix(l.Text, "…"))) {
					t.Fatalf("line %d = %+v, want %+v", i, l, w)
				}
			}
			lines = rest
		}
	})
}
