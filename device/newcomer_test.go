package device_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/runtime"
)

// TestFullDiskDuringDeployIsNotInvalidCode: a compilation cache that
// cannot be written made a deploy fail as "invalid guest code" (issue
// 13); it is the device's failure (unavailable), not the image's.
func TestFullDiskDuringDeployIsNotInvalidCode(t *testing.T) {
	cache := filepath.Join(t.TempDir(), "compiled")
	td := openDevice(t, t.TempDir(), device.Config{Owner: pub(ownerKey), Options: device.Options{CacheDir: cache}})
	if e, ok := td.mg.Device().Runtime(runtime.Wasm).(interface{ Engine() string }); !ok || e.Engine() != "compiler" {
		t.Skip("no compiled WebAssembly on this platform: nothing is written to the cache")
	}
	// The cache directory becomes a file: every write into it fails, as
	// on a full or broken disk.
	if err := os.RemoveAll(cache); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cache, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	m, code := example(t, "thermo")
	_, err := td.deploy(pack(t, m, code, ownerKey))
	if err == nil {
		t.Fatal("deploy succeeded with an unwritable compilation cache")
	}
	if errors.Is(err, mgmt.ErrInvalid) || errors.Is(err, runtime.ErrInvalidCode) || strings.Contains(err.Error(), "invalid guest code") {
		t.Fatalf("a host failure reads as bad code: %v", err)
	}
	wantErr(t, "deploy onto an unwritable cache", err, mgmt.ErrUnavailable)
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestFaultsShowInLogsAuditAndDeviceOutput: faults showed only in ps
// (issue 13); each one is now a line in the container's log, an audit
// entry and a warning in the device's own output.
func TestFaultsShowInLogsAuditAndDeviceOutput(t *testing.T) {
	var out syncBuffer
	td := openDevice(t, t.TempDir(), device.Config{Insecure: true,
		Options: device.Options{Logger: slog.New(slog.NewTextHandler(&out, nil))}})
	m, code := example(t, "runaway")
	if _, err := td.deploy(pack(t, m, code, globexKey)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	waitFor(t, "a fault in the log, the audit and the device's output", func() bool {
		lines, _ := td.mg.Logs(ctx, "runaway", 0, 0)
		inLog := false
		for _, l := range lines {
			inLog = inLog || strings.HasPrefix(l.Text, "[fault] budget fault")
		}
		es, _ := td.mg.Audit(ctx, 100)
		inAudit := false
		for _, e := range es {
			inAudit = inAudit || (e.Container == "runaway" && e.Tenant == "globex" && e.Op == "fault" && strings.Contains(e.Reason, "budget"))
		}
		return inLog && inAudit && strings.Contains(out.String(), `msg="container fault" container=runaway tenant=globex`)
	})
}
