package meta

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/tinycontainer/tinycontainer/internal/lazyre"
)

// MaxDocument is the largest manifest or ceiling accepted, in bytes.
const MaxDocument = 64 << 10

// maxDepth bounds nesting; the deepest legitimate value (an op inside
// endpoints[i].ops) sits at depth 4.
const maxDepth = 8

// maxKeys bounds a mapping (the largest legitimate one has 8 keys), which
// keeps the duplicate-key check linear in the document size.
const maxKeys = 32

// maxItems bounds a list: the longest legitimate one is a ceiling's allow
// list, and the bound stops a hostile JSON list before it is read whole.
const maxItems = MaxAllow

type kind uint8

const (
	kMap kind = iota
	kSeq
	kStr
	kInt
	kFloat
	kBool
	kNull
)

var kindNames = [...]string{kMap: "a mapping", kSeq: "a list", kStr: "a string", kInt: "an integer",
	kFloat: "a fractional number", kBool: "a boolean", kNull: "null"}

func (k kind) String() string { return kindNames[k] }

// node is a document value reduced to what JSON can express; YAML and JSON
// input both become nodes, so one strict decoder serves both syntaxes.
type node struct {
	kind  kind
	text  string // kStr: the string; kInt: decimal digits; others: source text
	keys  []string
	vals  []*node // kMap, parallel to keys, in document order
	items []*node // kSeq
}

// docReader turns a document into a tree; class is the error class of the
// kind of document being read.
type docReader struct{ class error }

func (r docReader) errf(field, format string, args ...any) error {
	return &FieldError{Class: r.class, Field: field, Reason: fmt.Sprintf(format, args...)}
}

func fieldPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func indexPath(parent string, i int) string { return parent + "[" + strconv.Itoa(i) + "]" }

// decimalInt is the one integer spelling accepted, so "010" or "0x10"
// cannot mean different numbers to different readers.
var decimalInt = lazyre.New(`^-?(0|[1-9][0-9]*)$`)

// tree parses data as JSON when it starts with '{', as YAML otherwise.
func (r docReader) tree(data []byte) (*node, error) {
	if len(data) > MaxDocument {
		return nil, r.errf("", "document is %d bytes, larger than %d", len(data), MaxDocument)
	}
	if !utf8.Valid(data) {
		return nil, r.errf("", "document is not valid UTF-8")
	}
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	body := bytes.TrimLeft(data, " \t\r\n")
	if len(body) == 0 {
		return nil, r.errf("", "empty document")
	}
	if body[0] != '{' {
		return r.yamlTree(data)
	}
	if json.Valid(data) {
		return r.jsonTree(data)
	}
	// Not JSON, but maybe a YAML flow mapping ({name: a, ...}). When YAML
	// cannot read it either, the author most likely meant JSON: report
	// JSON's syntax error rather than YAML's.
	root, err := r.yamlTree(data)
	var fe *FieldError
	if err == nil || (errors.As(err, &fe) && fe.Field != "") {
		return root, err
	}
	return r.jsonTree(data)
}

func (r docReader) jsonTree(data []byte) (*node, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	root, err := r.jsonValue(dec, data, "", 1)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, r.errf("", "unexpected data after the JSON document")
	}
	return root, nil
}

func (r docReader) jsonErr(data []byte, err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		line := 1 + bytes.Count(data[:min(int(syn.Offset), len(data))], []byte("\n"))
		return r.errf("", "JSON syntax error on line %d: %v", line, syn)
	}
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return r.errf("", "JSON document ends early")
	}
	return r.errf("", "JSON: %v", err)
}

func (r docReader) jsonValue(dec *json.Decoder, data []byte, path string, depth int) (*node, error) {
	if depth > maxDepth {
		return nil, r.errf(path, "nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, r.jsonErr(data, err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n := &node{kind: kMap}
			for dec.More() {
				tok, err := dec.Token()
				if err != nil {
					return nil, r.jsonErr(data, err)
				}
				key, ok := tok.(string)
				if !ok {
					return nil, r.errf(path, "object key is not a string")
				}
				p := fieldPath(path, key)
				if len(n.keys) == maxKeys {
					return nil, r.errf(path, "more than %d keys", maxKeys)
				}
				for _, k := range n.keys {
					if k == key {
						return nil, r.errf(p, "duplicate key")
					}
				}
				v, err := r.jsonValue(dec, data, p, depth+1)
				if err != nil {
					return nil, err
				}
				n.keys, n.vals = append(n.keys, key), append(n.vals, v)
			}
			if _, err := dec.Token(); err != nil { // '}'
				return nil, r.jsonErr(data, err)
			}
			return n, nil
		case '[':
			n := &node{kind: kSeq}
			for dec.More() {
				if len(n.items) == maxItems {
					return nil, r.errf(path, "more than %d items", maxItems)
				}
				v, err := r.jsonValue(dec, data, indexPath(path, len(n.items)), depth+1)
				if err != nil {
					return nil, err
				}
				n.items = append(n.items, v)
			}
			if _, err := dec.Token(); err != nil { // ']'
				return nil, r.jsonErr(data, err)
			}
			return n, nil
		}
	case string:
		return &node{kind: kStr, text: t}, nil
	case json.Number:
		if decimalInt().MatchString(string(t)) {
			return &node{kind: kInt, text: string(t)}, nil
		}
		return &node{kind: kFloat, text: string(t)}, nil
	case bool:
		return &node{kind: kBool, text: strconv.FormatBool(t)}, nil
	case nil:
		return &node{kind: kNull, text: "null"}, nil
	}
	return nil, r.errf(path, "unexpected JSON token %v", tok)
}

func (r docReader) yamlTree(data []byte) (root *node, err error) {
	// The parser has had panics on hostile input in the past; a manifest
	// comes from outside, so one must not take the host down.
	defer func() {
		if p := recover(); p != nil {
			root, err = nil, r.errf("", "YAML parser failed: %v", p)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil, r.errf("", "empty document")
		}
		return nil, r.errf("", "%v", yamlSyntaxError(data, err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return nil, r.errf("", "only one YAML document is allowed")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, r.errf("", "empty document")
	}
	return r.yamlValue(doc.Content[0], "", 1)
}

func (r docReader) yamlValue(y *yaml.Node, path string, depth int) (*node, error) {
	if depth > maxDepth {
		return nil, r.errf(path, "nested too deeply")
	}
	// Anchors and aliases are refused outright: a manifest never needs
	// them, and expanding them is how small documents become huge ones.
	if y.Kind == yaml.AliasNode {
		return nil, r.errf(path, "YAML aliases (*%s) are not allowed", y.Value)
	}
	if y.Anchor != "" {
		return nil, r.errf(path, "YAML anchors (&%s) are not allowed", y.Anchor)
	}
	tag := y.ShortTag()
	switch y.Kind {
	case yaml.MappingNode:
		if tag != "!!map" {
			return nil, r.errf(path, "unsupported YAML tag %q", y.Tag)
		}
		n := &node{kind: kMap}
		for i := 0; i+1 < len(y.Content); i += 2 {
			k := y.Content[i]
			if k.Kind == yaml.AliasNode || k.Anchor != "" {
				return nil, r.errf(path, "YAML anchors and aliases are not allowed")
			}
			if k.Kind != yaml.ScalarNode {
				return nil, r.errf(path, "keys must be plain strings (line %d)", k.Line)
			}
			if k.ShortTag() == "!!merge" {
				return nil, r.errf(path, "YAML merge keys (<<) are not allowed")
			}
			p := fieldPath(path, k.Value)
			if len(n.keys) == maxKeys {
				return nil, r.errf(path, "more than %d keys", maxKeys)
			}
			for _, seen := range n.keys {
				if seen == k.Value {
					return nil, r.errf(p, "duplicate key (line %d)", k.Line)
				}
			}
			v, err := r.yamlValue(y.Content[i+1], p, depth+1)
			if err != nil {
				return nil, err
			}
			n.keys, n.vals = append(n.keys, k.Value), append(n.vals, v)
		}
		return n, nil
	case yaml.SequenceNode:
		if tag != "!!seq" {
			return nil, r.errf(path, "unsupported YAML tag %q", y.Tag)
		}
		if len(y.Content) > maxItems {
			return nil, r.errf(path, "more than %d items", maxItems)
		}
		n := &node{kind: kSeq, items: make([]*node, 0, len(y.Content))}
		for i, c := range y.Content {
			v, err := r.yamlValue(c, indexPath(path, i), depth+1)
			if err != nil {
				return nil, err
			}
			n.items = append(n.items, v)
		}
		return n, nil
	case yaml.ScalarNode:
		switch tag {
		case "!!str", "!!timestamp":
			// YAML 1.2 has no timestamps; an unquoted date is text here.
			return &node{kind: kStr, text: y.Value}, nil
		case "!!int":
			if !decimalInt().MatchString(y.Value) {
				return nil, r.errf(path, "%q: write integers in plain decimal", y.Value)
			}
			return &node{kind: kInt, text: y.Value}, nil
		case "!!float":
			if decimalInt().MatchString(y.Value) {
				// An integer beyond 64 bits; the field reports it out of range.
				return &node{kind: kInt, text: y.Value}, nil
			}
			return &node{kind: kFloat, text: y.Value}, nil
		case "!!bool":
			return &node{kind: kBool, text: y.Value}, nil
		case "!!null":
			return &node{kind: kNull, text: y.Value}, nil
		}
		return nil, r.errf(path, "unsupported YAML tag %q", y.Tag)
	}
	return nil, r.errf(path, "unexpected YAML node (line %d)", y.Line)
}
