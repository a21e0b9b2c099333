package device_test

import (
	"context"
	"os"
	"path/filepath"
	goruntime "runtime"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/internal/testbroker"
	"github.com/tinycontainer/tinycontainer/internal/testwait"
)

// settledGoroutines polls until the goroutine count is at most want (the
// ones a failed call may leave take a moment to exit), and returns it.
func settledGoroutines(want int) int {
	deadline := time.Now().Add(testwait.Guard())
	for {
		n := goruntime.NumGoroutine()
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestNewFailsCleanly is the regression test of device.New leaking
// goroutines when it failed: the audit goroutine (and the MQTT bridge)
// started before the WebAssembly runtime could fail, so each failed call
// left them running.
func TestNewFailsCleanly(t *testing.T) {
	checkNewFails(t, device.Options{CacheDir: notADir(t)})
}

func TestNewFailsCleanlyWithMQTT(t *testing.T) {
	br := testbroker.Start(t)
	checkNewFails(t, device.Options{MQTT: br.URL(), CacheDir: notADir(t)})
}

// notADir is a cache directory path that cannot be made (under a file).
func notADir(t *testing.T) string {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(f, "cache")
}

func checkNewFails(t *testing.T, opts device.Options) {
	before := goruntime.NumGoroutine()
	for range 5 {
		if d, err := device.New(context.Background(), opts); err == nil {
			d.Close(context.Background())
			t.Fatal("device.New succeeded")
		}
	}
	if after := settledGoroutines(before); after > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("5 failed device.New calls left %d goroutines (%d before):\n%s", after, before, buf[:goruntime.Stack(buf, true)])
	}
}
