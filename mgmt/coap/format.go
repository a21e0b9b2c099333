package coap

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// Representations of a resource (RFC 7252 section 5.10.4, Accept): JSON
// (50) unless the request asks for CBOR (60), CBOR compressed (65060,
// below) or plain text (0); a request for anything else gets 4.06 Not
// Acceptable. /.well-known/core is link-format (40) only.

// cborDeflate is content-format 65060, from the range RFC 7252 section
// 12.3 leaves for experimental use: the CBOR representation compressed
// with DEFLATE (RFC 1951, raw, no zlib header). A table of containers is
// rows of the same few names and states and counters of similar widths:
// 1,000 of them compress from ~96 KB to a few KB, and every block saved
// is a round trip saved (ps of 1,000 containers: ~95 blocks in CBOR).
const cborDeflate message.MediaType = 65060

// errNotAcceptable is the class of 4.06.
var errNotAcceptable = errors.New("not acceptable")

// negotiate returns the format a request accepts for resource res.
func negotiate(opts message.Options, res resource) (message.MediaType, error) {
	v, err := opts.GetUint32(message.Accept)
	if err != nil { // no Accept option (or an unreadable one): the default
		if res == resCore {
			return message.AppLinkFormat, nil
		}
		return message.AppJSON, nil
	}
	mt := message.MediaType(v)
	if res == resCore {
		if mt == message.AppLinkFormat {
			return mt, nil
		}
		return 0, fmt.Errorf("%w: /.well-known/core is link-format (40), not content-format %d", errNotAcceptable, v)
	}
	switch mt {
	case message.AppJSON, message.AppCBOR, cborDeflate, message.TextPlain:
		return mt, nil
	}
	return 0, fmt.Errorf("%w: content-format %d; this resource is JSON (50), CBOR (60), CBOR compressed (65060) or text (0)", errNotAcceptable, v)
}

// encode renders v in format mt.
func encode(v any, mt message.MediaType) ([]byte, error) {
	if t, ok := v.(table); ok && (mt == message.AppCBOR || mt == cborDeflate) {
		b := t.cbor()
		if mt == cborDeflate {
			return deflate(b), nil
		}
		return b, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return convert(b, v, mt)
}

// convert renders the JSON encoding b of v in format mt.
func convert(b []byte, v any, mt message.MediaType) ([]byte, error) {
	switch mt {
	case message.AppCBOR:
		return jsonToCBOR(b)
	case cborDeflate:
		c, err := jsonToCBOR(b)
		if err != nil {
			return nil, err
		}
		return deflate(c), nil
	case message.TextPlain:
		return textOf(b, v), nil
	}
	return b, nil
}

// deflate compresses b (RFC 1951) at the fastest level: on a device the
// CPU counts more than the last few percent of bytes.
func deflate(b []byte) []byte {
	var out bytes.Buffer
	w, err := flate.NewWriter(&out, flate.BestSpeed)
	if err != nil {
		panic(err) // only for an invalid level
	}
	_, _ = w.Write(b) // a bytes.Buffer does not fail
	_ = w.Close()
	return out.Bytes()
}

// inflate decompresses a DEFLATE body of at most max bytes once inflated.
func inflate(b []byte, max int64) ([]byte, error) {
	r := flate.NewReader(bytes.NewReader(b))
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("%w: compressed body: %w", errBadResponse, err)
	}
	if int64(len(out)) > max {
		return nil, fmt.Errorf("%w: compressed body inflates beyond %d bytes", mgmt.ErrTooLarge, max)
	}
	return out, nil
}

// table is the compact form of a container list (`?form=table`): the
// field names once, then one array of values per container, in the order
// of the names. It is what `ps` asks for: about a tenth of the bytes of
// the list of objects, so a thousand containers take a few dozen blocks
// (a few in the compressed form). The rows are made only for JSON; CBOR
// and text read the containers directly.
type table struct {
	cs []mgmt.ContainerStatus
}

// statusFields are the JSON names of mgmt.ContainerStatus's fields, by
// field index.
var statusFields = func() []string {
	t := reflect.TypeFor[mgmt.ContainerStatus]()
	out := make([]string, t.NumField())
	for i := range out {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		out[i] = name
	}
	return out
}()

func newTable(cs []mgmt.ContainerStatus) table { return table{cs: cs} }

// MarshalJSON is {"columns": [...], "rows": [[...], ...]}.
func (t table) MarshalJSON() ([]byte, error) {
	rows := make([][]any, len(t.cs))
	for i := range t.cs {
		v := reflect.ValueOf(&t.cs[i]).Elem()
		row := make([]any, v.NumField())
		for j := range row {
			row[j] = v.Field(j).Interface()
		}
		rows[i] = row
	}
	return json.Marshal(struct {
		Columns []string `json:"columns"`
		Rows    [][]any  `json:"rows"`
	}{statusFields, rows})
}

// cbor encodes the table directly (no JSON on the way).
func (t table) cbor() []byte {
	b := cborHead(make([]byte, 0, 64+len(t.cs)*96), cborMap, 2)
	b = append(cborHead(b, cborText, 7), "columns"...)
	b = cborHead(b, cborArray, uint64(len(statusFields)))
	for _, c := range statusFields {
		b = append(cborHead(b, cborText, uint64(len(c))), c...)
	}
	b = append(cborHead(b, cborText, 4), "rows"...)
	b = cborHead(b, cborArray, uint64(len(t.cs)))
	for i := range t.cs {
		v := reflect.ValueOf(&t.cs[i]).Elem()
		b = cborHead(b, cborArray, uint64(v.NumField()))
		for j := range v.NumField() {
			f := v.Field(j)
			switch f.Kind() {
			case reflect.String:
				b = append(cborHead(b, cborText, uint64(f.Len())), f.String()...)
			case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
				b = cborHead(b, cborUint, f.Uint())
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
				b = appendCBOR(b, f.Int())
			case reflect.Bool:
				b = appendCBOR(b, f.Bool())
			case reflect.Float32, reflect.Float64:
				b = appendCBOR(b, f.Float())
			default:
				b = append(b, cborNull)
			}
		}
	}
	return b
}

// statusesFromTable rebuilds container objects from a decoded table:
// columns it does not know are skipped, fields it does not get stay zero.
func statusesFromTable(doc any) ([]mgmt.ContainerStatus, error) {
	m, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: table is not a map", errBadResponse)
	}
	cols, ok1 := m["columns"].([]any)
	rows, ok2 := m["rows"].([]any)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("%w: table without columns and rows", errBadResponse)
	}
	index := make(map[string]int, len(statusFields))
	for i, f := range statusFields {
		index[f] = i
	}
	field := make([]int, len(cols))
	for i, c := range cols {
		name, _ := c.(string)
		f, known := index[name]
		if !known {
			f = -1
		}
		field[i] = f
	}
	out := make([]mgmt.ContainerStatus, len(rows))
	for i, r := range rows {
		row, ok := r.([]any)
		if !ok || len(row) != len(cols) {
			return nil, fmt.Errorf("%w: table row %d", errBadResponse, i)
		}
		v := reflect.ValueOf(&out[i]).Elem()
		for j, x := range row {
			if field[j] < 0 {
				continue
			}
			if err := setField(v.Field(field[j]), x); err != nil {
				return nil, fmt.Errorf("%w: row %d, %s: %w", errBadResponse, i, statusFields[field[j]], err)
			}
		}
	}
	return out, nil
}

func setField(f reflect.Value, x any) error {
	switch f.Kind() {
	case reflect.String:
		s, ok := x.(string)
		if !ok {
			return fmt.Errorf("want text, got %T", x)
		}
		f.SetString(s)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u, ok := x.(uint64)
		if !ok || f.OverflowUint(u) {
			return fmt.Errorf("want an unsigned integer, got %v", x)
		}
		f.SetUint(u)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var i int64
		switch n := x.(type) {
		case uint64:
			if n > 1<<62 {
				return fmt.Errorf("integer %d out of range", n)
			}
			i = int64(n)
		case int64:
			i = n
		default:
			return fmt.Errorf("want an integer, got %T", x)
		}
		if f.OverflowInt(i) {
			return fmt.Errorf("integer %d out of range", i)
		}
		f.SetInt(i)
	case reflect.Bool:
		b, ok := x.(bool)
		if !ok {
			return fmt.Errorf("want a boolean, got %T", x)
		}
		f.SetBool(b)
	case reflect.Float32, reflect.Float64:
		switch n := x.(type) {
		case float64:
			f.SetFloat(n)
		case uint64:
			f.SetFloat(float64(n))
		case int64:
			f.SetFloat(float64(n))
		default:
			return fmt.Errorf("want a number, got %T", x)
		}
	}
	return nil
}

// textOf renders a response as plain text for people: log lines as
// "TIME CONTAINER: TEXT", other lists one element per line, objects one
// "key: value" per line.
func textOf(b []byte, v any) []byte {
	var out bytes.Buffer
	switch v := v.(type) {
	case []mgmt.LogLine:
		for _, l := range v {
			fmt.Fprintf(&out, "%s %s: %s\n", l.Time.UTC().Format(time.RFC3339Nano), l.Container, l.Text)
		}
		return out.Bytes()
	case table:
		b, _ = json.Marshal(v.cs)
	}
	var doc any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if d.Decode(&doc) != nil {
		return b
	}
	switch doc := doc.(type) {
	case []any:
		for _, e := range doc {
			if m, ok := e.(map[string]any); ok {
				out.WriteString(textPairs(m, " ", "="))
			} else {
				out.WriteString(textScalar(e))
			}
			out.WriteByte('\n')
		}
	case map[string]any:
		out.WriteString(textPairs(doc, "\n", ": "))
		out.WriteByte('\n')
	default:
		out.WriteString(textScalar(doc))
		out.WriteByte('\n')
	}
	return out.Bytes()
}

// textPairs renders an object's members, "name" first, the rest by key.
func textPairs(m map[string]any, sep, eq string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		if k != "name" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if _, ok := m["name"]; ok {
		keys = append([]string{"name"}, keys...)
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + eq + textScalar(m[k])
	}
	return strings.Join(parts, sep)
}

func textScalar(v any) string {
	switch v := v.(type) {
	case string:
		if v == "" || strings.ContainsAny(v, " \t\n=") {
			return strconv.Quote(v)
		}
		return v
	case json.Number:
		return v.String()
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(v)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
