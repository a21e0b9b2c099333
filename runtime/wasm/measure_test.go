package wasm

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/bench/kernels"
)

// The embedded host loop is the build of testdata/hostloop.wat.
func TestHostLoopIsBuilt(t *testing.T) {
	if !bytes.Equal(hostLoop, guest(t, "hostloop.wasm")) {
		t.Fatal("hostLoop differs from testdata/hostloop.wasm: rebuild it and copy the bytes")
	}
}

// trapMain is (module (func (export "tc_main") (result i32) unreachable)).
var trapMain = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, 0x03,
	0x02, 0x01, 0x00, 0x07, 0x0b, 0x01, 0x07, 't', 'c', '_', 'm', 'a', 'i', 'n', 0x00, 0x00, 0x0a,
	0x05, 0x01, 0x03, 0x00, 0x00, 0x0b,
}

func TestRunBare(t *testing.T) {
	ctx := context.Background()
	for _, k := range kernels.List() {
		code, err := kernels.Wasm(k)
		if err != nil {
			t.Fatal(err)
		}
		d, err := RunBare(ctx, code, 1)
		if err != nil || d <= 0 {
			t.Errorf("%s: %v, %v", k, d, err)
		}
	}
	for _, c := range []struct {
		name string
		code []byte
		runs int
		want string
	}{
		{"no runs", guest(t, "counter.wasm"), 0, "runs >= 1"},
		{"garbage", []byte("\x00asm\x01\x00\x00\x00garbage"), 1, "bare wazero"},
		{"no tc_main", hostLoop, 1, "needs an export tc_main"},
		{"tc_main of the wrong type", guest(t, "bad_maintype.wasm"), 1, "needs an export tc_main"},
		{"trap", trapMain, 1, "unreachable"},
	} {
		if _, err := RunBare(ctx, c.code, c.runs); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one that says %q", c.name, err, c.want)
		}
	}
}

func TestBareHostCall(t *testing.T) {
	ctx := context.Background()
	d1, err := BareHostCall(ctx, 10)
	if err != nil || d1 <= 0 {
		t.Fatal(d1, err)
	}
	big := int64(1) << 31 // past the limit where int has 64 bits, negative where it has 32
	for _, n := range []int{0, -1, int(big)} {
		if _, err := BareHostCall(ctx, n); err == nil {
			t.Errorf("n=%d: no error", n)
		}
	}
}

func TestMeasure(t *testing.T) {
	// CPU time: a busy loop of a millisecond of wall time uses about as
	// much CPU, a sleep almost none.
	busy, err := Measure(func() error {
		for end := time.Now().Add(2 * time.Millisecond); time.Now().Before(end); {
		}
		return nil
	})
	if err != nil || busy <= 0 {
		t.Fatal(busy, err)
	}
	wantErr := context.Canceled
	if _, err := Measure(func() error { return wantErr }); err != wantErr {
		t.Errorf("error %v, want %v", err, wantErr)
	}
}
