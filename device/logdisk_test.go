package device

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testDisk is a book kept in dir whose flushes the test drives.
func testDisk(t *testing.T, dir string, lim logLimits) (*logBook, *logDisk) {
	t.Helper()
	b := newLogBook(lim)
	ld, err := openLogDisk(dir, b, time.Hour, func(err error) { t.Log(err) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ld.close)
	return b, ld
}

func TestLogFileTornTail(t *testing.T) {
	dir := t.TempDir()
	b, ld := testDisk(t, dir, logLimits{})
	b.setTenant("c", "acme")
	for i := range 10 {
		b.add("c", fmt.Sprintf("line %d", i))
	}
	ld.flush()
	b.add("c", "last whole line")
	ld.flush()
	path := filepath.Join(dir, "c.log")
	full, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of the last append: its record is cut short,
	// then the flusher of the restarted device appends after the good part.
	if err := os.WriteFile(path, full[:len(full)-3], 0o600); err != nil {
		t.Fatal(err)
	}
	ld.close()
	b2, ld2 := testDisk(t, dir, logLimits{})
	got := b2.lines("c", 0, 0)
	if len(got) != 10 || got[9].Text != "line 9" || got[0].Container != "c" {
		t.Fatalf("after a torn tail: %+v", got)
	}
	b2.add("c", "after the crash")
	ld2.flush()
	ld2.close()
	b3, _ := testDisk(t, dir, logLimits{})
	got = b3.lines("c", 0, 0)
	if len(got) != 11 || got[10].Text != "after the crash" {
		t.Fatalf("appended after a torn tail: %d lines, last %+v", len(got), got[len(got)-1])
	}
	if b3.tenants["acme"] == nil || b3.cs["c"].tenant.name != "acme" {
		t.Fatal("tenant not kept")
	}
}

// TestLogFileBounded: a flooding container's file stays within about twice
// its ring, and a removed container's file goes.
func TestLogFileBounded(t *testing.T) {
	dir := t.TempDir()
	b, ld := testDisk(t, dir, logLimits{minLines: 100, maxLines: 200, tenantBytes: 1 << 30})
	text := strings.Repeat("z", 500)
	for round := range 50 {
		for i := range 150 {
			b.add("flood", fmt.Sprintf("%d.%d %s", round, i, text))
		}
		ld.flush()
		fi, err := os.Stat(filepath.Join(dir, "flood.log"))
		if err != nil {
			t.Fatal(err)
		}
		b.mu.Lock()
		ring := b.cs["flood"].bytes
		b.mu.Unlock()
		if fi.Size() > 2*int64(ring)+logFileSlack+int64(150*(len(text)+40)) {
			t.Fatalf("round %d: file of %d bytes for a ring of %d", round, fi.Size(), ring)
		}
	}
	b.forget("flood")
	ld.flush()
	if _, err := os.Stat(filepath.Join(dir, "flood.log")); !os.IsNotExist(err) {
		t.Fatalf("file of a removed container: %v", err)
	}
}

func FuzzDecodeLogFile(f *testing.F) {
	good := appendLogHeader(nil, "acme")
	good = appendLogRecord(good, 1, time.Unix(1, 2), "hello")
	good = appendLogRecord(good, 5, time.Unix(3, 4), "")
	f.Add(good)
	f.Add(good[:len(good)-2])
	f.Add([]byte(logMagic))
	f.Add(append(appendLogHeader(nil, ""), 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		tenant, lines, n, err := decodeLogFile(b)
		if err != nil {
			return
		}
		if n > len(b) || n < len(logMagic)+1+len(tenant) {
			t.Fatalf("good prefix %d of %d", n, len(b))
		}
		// Re-encoding what decoded gives a file that decodes the same.
		re := appendLogHeader(nil, tenant)
		for _, l := range lines {
			re = appendLogRecord(re, l.seq, l.time, l.text)
		}
		t2, l2, n2, err := decodeLogFile(re)
		if err != nil || t2 != tenant || len(l2) != len(lines) || n2 != len(re) {
			t.Fatalf("re-encoded: %v %q %d/%d", err, t2, len(l2), len(lines))
		}
		for i := 1; i < len(lines); i++ {
			if lines[i].seq <= lines[i-1].seq {
				t.Fatal("seq not increasing")
			}
		}
	})
}
