package cli

import (
	"bufio"
	"encoding/json"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// writeJSON writes v as indented JSON and a newline: the bytes of
// json.MarshalIndent(v, "", "  "). A slice of flat structs (string and
// integer fields, plain json tags: every container list) is written
// directly, without encoding/json's reflection per value, second indenting
// pass and copies: for `ps --json` of 1,000 containers that was a third of
// the process's CPU (BENCHMARKS.md).
func writeJSON(w io.Writer, v any) error {
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice {
		if fields, ok := flatFields(rv.Type().Elem()); ok {
			bw := bufio.NewWriterSize(w, 64<<10)
			writeFlatSlice(bw, rv, fields)
			return bw.Flush()
		}
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// flatField is one field of a flat struct: its index, its key as written
// (quoted, with the colon and space) and its kind.
type flatField struct {
	index int
	key   string
	kind  reflect.Kind
}

var flatCache sync.Map // reflect.Type -> []flatField, or nil when not flat

// flatFields lists t's fields when t is a flat struct: exported string or
// integer fields only, each with a json tag that is a plain name (no
// options, no "-") made of characters JSON needs no escape for.
func flatFields(t reflect.Type) ([]flatField, bool) {
	if f, ok := flatCache.Load(t); ok {
		fs := f.([]flatField)
		return fs, fs != nil
	}
	var fs []flatField
	ok := t.Kind() == reflect.Struct
	for i := 0; ok && i < t.NumField(); i++ {
		sf := t.Field(i)
		name := sf.Tag.Get("json")
		switch sf.Type.Kind() {
		case reflect.String, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		default:
			ok = false
		}
		if !sf.IsExported() || sf.Anonymous || name == "" || name == "-" || strings.ContainsRune(name, ',') || !plain(name) ||
			sf.Type.PkgPath() != "" { // a named type may have its own MarshalJSON or MarshalText
			ok = false
		}
		fs = append(fs, flatField{i, strconv.Quote(name) + ": ", sf.Type.Kind()})
	}
	if !ok || len(fs) == 0 {
		fs = nil
	}
	flatCache.Store(t, fs)
	return fs, fs != nil
}

// plain reports whether s needs no escaping in JSON (printable ASCII but
// the quote, backslash and the characters encoding/json escapes for HTML).
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

func writeFlatSlice(w *bufio.Writer, rv reflect.Value, fields []flatField) {
	if rv.Len() == 0 {
		if rv.IsNil() {
			w.WriteString("null\n")
		} else {
			w.WriteString("[]\n")
		}
		return
	}
	var num []byte
	w.WriteString("[\n")
	for i := range rv.Len() {
		e := rv.Index(i)
		w.WriteString("  {\n")
		for j, f := range fields {
			w.WriteString("    ")
			w.WriteString(f.key)
			fv := e.Field(f.index)
			switch f.kind {
			case reflect.String:
				writeString(w, fv.String())
			case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
				num = strconv.AppendUint(num[:0], fv.Uint(), 10)
				w.Write(num)
			default:
				num = strconv.AppendInt(num[:0], fv.Int(), 10)
				w.Write(num)
			}
			if j < len(fields)-1 {
				w.WriteString(",\n")
			} else {
				w.WriteString("\n")
			}
		}
		if i < rv.Len()-1 {
			w.WriteString("  },\n")
		} else {
			w.WriteString("  }\n")
		}
	}
	w.WriteString("]\n")
}

// writeString writes s quoted as encoding/json does: directly when it is
// plain, else through encoding/json itself.
func writeString(w *bufio.Writer, s string) {
	if plain(s) && utf8.ValidString(s) {
		w.WriteByte('"')
		w.WriteString(s)
		w.WriteByte('"')
		return
	}
	b, _ := json.Marshal(s)
	w.Write(b)
}
