package cli

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// indented is what writeJSON must write: json.MarshalIndent's bytes.
func indented(t testing.TB, v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func checkSame(t testing.TB, v any) {
	t.Helper()
	var got bytes.Buffer
	if err := writeJSON(&got, v); err != nil {
		t.Fatal(err)
	}
	if want := indented(t, v); !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("writeJSON differs from json.MarshalIndent:\n got %q\nwant %q", got.Bytes(), want)
	}
}

var oddStrings = []string{"", "thermo", "a-b_c.d", "<script>&", "quote\"back\\slash", "tab\tnew\nline\x00", "naïve ☃",
	"bad utf-8 \xff\xfe", "\u2028\u2029", "\x7f", "0123456789012345678901234567890123456789"}

// fill sets every field of the struct v points to from r.
func fill(r *rand.Rand, v reflect.Value) {
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(oddStrings[r.IntN(len(oddStrings))])
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f.SetUint(r.Uint64() >> r.UintN(64))
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			n := int64(r.Uint64()>>r.UintN(64)) - int64(r.Uint64()>>r.UintN(64))
			if !f.OverflowInt(n) {
				f.SetInt(n)
			}
		}
	}
}

// TestWriteJSONSameBytes: the direct writer of container lists writes
// what encoding/json wrote before it, for every field of the container
// object (a field added to mgmt.ContainerStatus is covered by reflection).
func TestWriteJSONSameBytes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	if _, ok := flatFields(reflect.TypeFor[mgmt.ContainerStatus]()); !ok {
		t.Fatal("mgmt.ContainerStatus is not written directly: ps --json lost its fast path")
	}
	for n := range 40 {
		cs := make([]mgmt.ContainerStatus, n)
		for i := range cs {
			fill(r, reflect.ValueOf(&cs[i]).Elem())
		}
		checkSame(t, cs)
	}
	checkSame(t, []mgmt.ContainerStatus{})
	checkSame(t, []mgmt.ContainerStatus(nil))
	// Not flat: through encoding/json.
	checkSame(t, []mgmt.DeviceInfo{{UptimeS: 1.5}})
	checkSame(t, []struct {
		A string `json:"a,omitempty"`
	}{{}})
	checkSame(t, []struct{ A string }{{"x"}})
	checkSame(t, map[string]int{"a": 1})
}

func FuzzWriteJSON(f *testing.F) {
	for _, s := range oddStrings {
		f.Add(s, uint64(len(s)), int64(-len(s)))
	}
	f.Fuzz(func(t *testing.T, s string, u uint64, i int64) {
		cs := []mgmt.ContainerStatus{{Name: s, Tenant: s, LastFault: s, Activations: u, ExitCode: int32(i), Priority: int(i)}, {State: s}}
		checkSame(t, cs)
	})
}
