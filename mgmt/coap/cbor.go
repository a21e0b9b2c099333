package coap

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"unicode/utf8"
)

// A small CBOR codec (RFC 8949) for the data model of JSON: maps with text
// keys, arrays, text, integers, floats, booleans and null. The server
// answers Accept: 60 with it and the client reads the compact container
// list with it; the only CBOR library of the project belongs to trust, and
// this subset is all management needs. Encoding is deterministic
// (definite lengths, shortest heads; map keys in the order given).

const (
	cborUint   = 0 << 5
	cborNegint = 1 << 5
	cborBytes  = 2 << 5
	cborText   = 3 << 5
	cborArray  = 4 << 5
	cborMap    = 5 << 5
	cborTag    = 6 << 5
	cborSimple = 7 << 5

	cborFalse   = cborSimple | 20
	cborTrue    = cborSimple | 21
	cborNull    = cborSimple | 22
	cborFloat64 = cborSimple | 27
)

// maxCBORDepth bounds nesting when decoding.
const maxCBORDepth = 32

var errCBOR = errors.New("malformed CBOR")

func cborHead(b []byte, major byte, n uint64) []byte {
	switch {
	case n < 24:
		return append(b, major|byte(n))
	case n <= math.MaxUint8:
		return append(b, major|24, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, major|25), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, major|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, major|27), n)
}

// jsonToCBOR re-encodes a JSON document as CBOR, keeping the order of
// object members.
func jsonToCBOR(doc []byte) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	out, err := cborFromTokens(nil, d, 0)
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); err == nil {
		return nil, fmt.Errorf("%w: trailing data", errCBOR)
	}
	return out, nil
}

func cborFromTokens(b []byte, d *json.Decoder, depth int) ([]byte, error) {
	if depth > maxCBORDepth {
		return nil, fmt.Errorf("%w: nested too deep", errCBOR)
	}
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch v := tok.(type) {
	case json.Delim:
		var items []byte
		n := uint64(0)
		for d.More() {
			if v == '{' {
				k, err := d.Token()
				if err != nil {
					return nil, err
				}
				ks, _ := k.(string)
				items = cborHead(items, cborText, uint64(len(ks)))
				items = append(items, ks...)
			}
			if items, err = cborFromTokens(items, d, depth+1); err != nil {
				return nil, err
			}
			n++
		}
		if _, err := d.Token(); err != nil { // the closing delimiter
			return nil, err
		}
		major := byte(cborArray)
		if v == '{' {
			major = cborMap
		}
		return append(cborHead(b, major, n), items...), nil
	case string:
		return append(cborHead(b, cborText, uint64(len(v))), v...), nil
	case json.Number:
		return cborNumber(b, v)
	case bool:
		if v {
			return append(b, cborTrue), nil
		}
		return append(b, cborFalse), nil
	case nil:
		return append(b, cborNull), nil
	}
	return nil, fmt.Errorf("%w: JSON token %T", errCBOR, tok)
}

func cborNumber(b []byte, n json.Number) ([]byte, error) {
	s := string(n)
	if u, err := strconv.ParseUint(s, 10, 64); err == nil {
		return cborHead(b, cborUint, u), nil
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil && i < 0 {
		return cborHead(b, cborNegint, uint64(-(i + 1))), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: number %q", errCBOR, s)
	}
	return binary.BigEndian.AppendUint64(append(b, cborFloat64), math.Float64bits(f)), nil
}

// decodeCBOR decodes one CBOR item of the JSON data model: map[string]any,
// []any, string, uint64, int64, float64, bool or nil. Byte strings, tags,
// indefinite lengths and other simple values are refused.
func decodeCBOR(b []byte) (any, error) {
	v, rest, err := cborItem(b, 0)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the item", errCBOR, len(rest))
	}
	return v, nil
}

func cborArg(b []byte) (major byte, arg uint64, rest []byte, err error) {
	if len(b) == 0 {
		return 0, 0, nil, fmt.Errorf("%w: truncated", errCBOR)
	}
	major, info := b[0]&0xe0, b[0]&0x1f
	b = b[1:]
	var n int
	switch {
	case info < 24:
		return major, uint64(info), b, nil
	case info == 24:
		n = 1
	case info == 25:
		n = 2
	case info == 26:
		n = 4
	case info == 27:
		n = 8
	default:
		return 0, 0, nil, fmt.Errorf("%w: additional information %d", errCBOR, info)
	}
	if len(b) < n {
		return 0, 0, nil, fmt.Errorf("%w: truncated", errCBOR)
	}
	for _, c := range b[:n] {
		arg = arg<<8 | uint64(c)
	}
	return major, arg, b[n:], nil
}

func cborItem(b []byte, depth int) (any, []byte, error) {
	if depth > maxCBORDepth {
		return nil, nil, fmt.Errorf("%w: nested too deep", errCBOR)
	}
	if len(b) > 0 && b[0]&0xe0 == cborSimple {
		switch b[0] {
		case cborFalse:
			return false, b[1:], nil
		case cborTrue:
			return true, b[1:], nil
		case cborNull:
			return nil, b[1:], nil
		case cborFloat64:
			if len(b) < 9 {
				return nil, nil, fmt.Errorf("%w: truncated", errCBOR)
			}
			return math.Float64frombits(binary.BigEndian.Uint64(b[1:])), b[9:], nil
		}
		return nil, nil, fmt.Errorf("%w: simple value 0x%02x", errCBOR, b[0])
	}
	major, arg, b, err := cborArg(b)
	if err != nil {
		return nil, nil, err
	}
	switch major {
	case cborUint:
		return arg, b, nil
	case cborNegint:
		if arg > math.MaxInt64 {
			return nil, nil, fmt.Errorf("%w: integer out of range", errCBOR)
		}
		return -1 - int64(arg), b, nil
	case cborText:
		if arg > uint64(len(b)) || !utf8.Valid(b[:arg]) {
			return nil, nil, fmt.Errorf("%w: text string", errCBOR)
		}
		return string(b[:arg]), b[arg:], nil
	case cborArray:
		if arg > uint64(len(b)) { // every item takes a byte at least
			return nil, nil, fmt.Errorf("%w: array of %d items", errCBOR, arg)
		}
		out := make([]any, 0, arg)
		for range arg {
			var v any
			if v, b, err = cborItem(b, depth+1); err != nil {
				return nil, nil, err
			}
			out = append(out, v)
		}
		return out, b, nil
	case cborMap:
		if arg > uint64(len(b))/2 {
			return nil, nil, fmt.Errorf("%w: map of %d pairs", errCBOR, arg)
		}
		out := make(map[string]any, arg)
		for range arg {
			var k, v any
			if k, b, err = cborItem(b, depth+1); err != nil {
				return nil, nil, err
			}
			ks, ok := k.(string)
			if !ok {
				return nil, nil, fmt.Errorf("%w: map key is not text", errCBOR)
			}
			if v, b, err = cborItem(b, depth+1); err != nil {
				return nil, nil, err
			}
			out[ks] = v
		}
		return out, b, nil
	case cborBytes, cborTag:
		return nil, nil, fmt.Errorf("%w: major type %d not used here", errCBOR, major>>5)
	}
	return nil, nil, fmt.Errorf("%w: major type %d", errCBOR, major>>5)
}

// appendCBOR encodes a value of decodeCBOR's data model (map keys sorted).
func appendCBOR(b []byte, v any) []byte {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = cborHead(b, cborMap, uint64(len(v)))
		for _, k := range keys {
			b = append(cborHead(b, cborText, uint64(len(k))), k...)
			b = appendCBOR(b, v[k])
		}
		return b
	case []any:
		b = cborHead(b, cborArray, uint64(len(v)))
		for _, x := range v {
			b = appendCBOR(b, x)
		}
		return b
	case string:
		return append(cborHead(b, cborText, uint64(len(v))), v...)
	case uint64:
		return cborHead(b, cborUint, v)
	case int64:
		if v >= 0 {
			return cborHead(b, cborUint, uint64(v))
		}
		return cborHead(b, cborNegint, uint64(-(v + 1)))
	case float64:
		return binary.BigEndian.AppendUint64(append(b, cborFloat64), math.Float64bits(v))
	case bool:
		if v {
			return append(b, cborTrue)
		}
		return append(b, cborFalse)
	}
	return append(b, cborNull)
}
