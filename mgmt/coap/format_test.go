package coap

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/tinycontainer/tinycontainer/internal/testwait"
	"github.com/tinycontainer/tinycontainer/mgmt"
)

// getAccept is a raw GET of path with Accept mt (or none when mt < 0).
func getAccept(t *testing.T, s *Server, path string, mt int) (codes.Code, message.MediaType, []byte) {
	t.Helper()
	c := dialServer(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), testwait.Guard())
	defer cancel()
	var opts message.Options
	if mt >= 0 {
		opts = append(opts, message.Option{ID: message.Accept, Value: encodeUint(uint32(mt))})
	}
	resp, err := c.cur.cc.Get(ctx, path, opts...)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer c.cur.cc.ReleaseMessage(resp)
	cf, _ := resp.ContentFormat()
	var body []byte
	if resp.Body() != nil {
		body, _ = resp.ReadBody()
	}
	return resp.Code(), cf, body
}

// TestAccept is issue 13's item 10: Accept was ignored (-A 60 and -A 0
// both got JSON). CBOR (60) and text (0) are served, JSON (50) is the
// default, and anything else is 4.06 Not Acceptable.
func TestAccept(t *testing.T) {
	s, dev := startServer(t, ServerOptions{})
	want, _ := dev.Status(context.Background(), "thermo")
	wantJSON, _ := json.Marshal(want)
	var wantDoc any
	_ = json.Unmarshal(wantJSON, &wantDoc)

	code, cf, body := getAccept(t, s, "/c/thermo", -1)
	if code != codes.Content || cf != message.AppJSON || !bytes.Equal(body, wantJSON) {
		t.Fatalf("no Accept: %v %v %s", code, cf, body)
	}
	code, cf, body = getAccept(t, s, "/c/thermo", 50)
	if code != codes.Content || cf != message.AppJSON {
		t.Fatalf("Accept 50: %v %v", code, cf)
	}
	code, cf, body = getAccept(t, s, "/c/thermo", 60)
	doc, err := decodeCBOR(body)
	if code != codes.Content || cf != message.AppCBOR || err != nil {
		t.Fatalf("Accept 60: %v %v %v", code, cf, err)
	}
	if !reflect.DeepEqual(jsonShape(doc), jsonShape(wantDoc)) {
		t.Fatalf("CBOR status %v, JSON %v", doc, wantDoc)
	}
	code, cf, body = getAccept(t, s, "/c/thermo", 0)
	if code != codes.Content || cf != message.TextPlain || !strings.HasPrefix(string(body), "name: thermo\n") ||
		!strings.Contains(string(body), "\nstate: running\n") {
		t.Fatalf("Accept 0: %v %v %q", code, cf, body)
	}
	for _, path := range []string{"/c/thermo", "/c", "/d"} {
		if code, _, body := getAccept(t, s, path, 41); code != codes.NotAcceptable || len(body) == 0 {
			t.Fatalf("Accept 41 (XML) on %s: %v %q", path, code, body)
		}
	}
	if code, _, _ := getAccept(t, s, "/.well-known/core", 50); code != codes.NotAcceptable {
		t.Fatalf("Accept 50 on discovery: %v", code)
	}
	if code, cf, _ := getAccept(t, s, "/.well-known/core", 40); code != codes.Content || cf != message.AppLinkFormat {
		t.Fatalf("Accept 40 on discovery: %v %v", code, cf)
	}
	// The compact list the client reads is the same containers.
	list, err := dialServer(t, s).List(context.Background())
	wantList, _ := dev.List(context.Background())
	if err != nil || !reflect.DeepEqual(list, wantList) {
		t.Fatalf("list through the table form: %+v, %v", list, err)
	}
}

// jsonShape maps numbers of either decoding to float64 for comparison.
func jsonShape(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			out[k] = jsonShape(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = jsonShape(x)
		}
		return out
	case uint64:
		return float64(v)
	case int64:
		return float64(v)
	case float64:
		if math.IsNaN(v) {
			return "NaN"
		}
	}
	return v
}

// TestLibcoapAccept: libcoap's client gets CBOR with -A 60, text with
// -A 0 and 4.06 for what is not offered.
func TestLibcoapAccept(t *testing.T) {
	if _, err := os.Stat(coapClientBin); err != nil {
		if os.Getenv("TC_REQUIRE_COAP_CLIENT") == "1" {
			t.Fatalf("%s is required (TC_REQUIRE_COAP_CLIENT=1): %v", coapClientBin, err)
		}
		t.Skipf("%s not installed: %v", coapClientBin, err)
	}
	s, _ := startServer(t, ServerOptions{})
	base := "coap://" + s.Addr().String()
	out := libcoapGet(t, base+"/c", "-A", "60")
	doc, err := decodeCBOR([]byte(strings.TrimSuffix(out, "\n")))
	if err != nil {
		doc, err = decodeCBOR([]byte(out))
	}
	if l, ok := doc.([]any); err != nil || !ok || len(l) != 2 {
		t.Fatalf("GET /c -A 60 through libcoap: %q (%v)", out, err)
	}
	if out := libcoapGet(t, base+"/c/thermo", "-A", "0"); !strings.Contains(out, "name: thermo") {
		t.Fatalf("GET /c/thermo -A 0 through libcoap: %q", out)
	}
	if out := libcoapGet(t, base+"/c/thermo", "-A", "41"); !strings.Contains(out, "4.06") {
		t.Fatalf("GET /c/thermo -A 41 through libcoap: %q", out)
	}
	_ = mgmt.StateRunning
}

func FuzzDecodeCBOR(f *testing.F) {
	for _, doc := range []string{`{"a":[1,-2,3.5,"x",true,false,null],"b":{}}`, `[]`, `"text"`, `18446744073709551615`, `-9223372036854775808`} {
		b, err := jsonToCBOR([]byte(doc))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x9f, 0xff})             // indefinite array: refused
	f.Add([]byte{0xc1, 0x00})             // a tag: refused
	f.Add([]byte{0x7b, 0xff, 0xff, 0xff}) // a huge text length
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeCBOR(b)
		if err != nil {
			return
		}
		// What decodes re-encodes (keys sorted) and decodes the same.
		re := appendCBOR(nil, v)
		v2, err := decodeCBOR(re)
		if err != nil || !reflect.DeepEqual(jsonShape(v), jsonShape(v2)) {
			t.Fatalf("re-encoded %x: %v, %v", re, v2, err)
		}
		if _, err := statusesFromTable(v); err != nil && !strings.Contains(err.Error(), "malformed") {
			t.Fatalf("table error without class: %v", err)
		}
	})
}

// FuzzInflateTable is the client's reading of the compressed table
// (content-format 65060): arbitrary bytes inflate within the cap or fail
// with a class, never panic, and what inflates is read as a table.
func FuzzInflateTable(f *testing.F) {
	d := newFakeDevice()
	fillContainers(d, 20)
	cs, _ := d.List(context.Background())
	f.Add(deflate(newTable(cs).cbor()))
	f.Add(deflate(make([]byte, 3<<20))) // inflates past the cap
	f.Add([]byte{0x01, 0x00, 0x00, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := inflate(b, 1<<20)
		if err != nil {
			if !errors.Is(err, errBadResponse) && !errors.Is(err, mgmt.ErrTooLarge) {
				t.Fatalf("inflate error without class: %v", err)
			}
			return
		}
		if len(out) > 1<<20 {
			t.Fatalf("inflated %d bytes past the cap", len(out))
		}
		if doc, err := decodeCBOR(out); err == nil {
			_, _ = statusesFromTable(doc)
		}
	})
}

// TestCompressedTable: the table in content-format 65060 inflates to the
// CBOR table, at least 5 times smaller, and a body that inflates past the
// cap is refused.
func TestCompressedTable(t *testing.T) {
	d := newFakeDevice()
	fillContainers(d, 1000)
	cs, _ := d.List(context.Background())
	plain := newTable(cs).cbor()
	z, err := encode(newTable(cs), cborDeflate)
	if err != nil {
		t.Fatal(err)
	}
	if len(z)*5 > len(plain) {
		t.Fatalf("1,000 containers: %d bytes compressed, %d plain", len(z), len(plain))
	}
	back, err := inflate(z, int64(len(plain)))
	if err != nil || !bytes.Equal(back, plain) {
		t.Fatalf("inflated: %v", err)
	}
	if _, err := inflate(z, int64(len(plain)-1)); !errors.Is(err, mgmt.ErrTooLarge) {
		t.Fatalf("past the cap: %v", err)
	}
	// Other resources in 65060: their CBOR, compressed.
	b, err := encode(map[string]any{"a": 1}, cborDeflate)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := inflate(b, 100); err != nil || !bytes.Equal(back, []byte{0xa1, 0x61, 'a', 0x01}) {
		t.Fatalf("object: % x %v", back, err)
	}
}
