package device

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// logDisk keeps the log book in a directory, one file per container, so
// that retained lines survive a restart. Every interval the lines written
// since are appended to their container's file (no fsync: a crash loses at
// most the last interval, and a torn record is dropped on load); a file
// grown past twice its ring (plus some slack) is rewritten from the ring,
// through a temporary file, synced and renamed, so a file never exceeds
// about twice what the ring holds.
type logDisk struct {
	dir      string
	book     *logBook
	interval time.Duration
	errs     func(error)

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// logFileSlack is what a file may exceed twice its ring by before it is
// rewritten.
const logFileSlack = 64 << 10

const logSuffix = ".log"

// openLogDisk loads every container file of dir into book and starts
// flushing book into dir.
func openLogDisk(dir string, book *logBook, interval time.Duration, errs func(error)) (*logDisk, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("log directory: %w", err)
	}
	ld := &logDisk{dir: dir, book: book, interval: interval, errs: errs, stop: make(chan struct{}), done: make(chan struct{})}
	if err := ld.load(); err != nil {
		return nil, err
	}
	book.mu.Lock()
	book.persist = true
	book.mu.Unlock()
	go ld.run()
	return ld, nil
}

func (ld *logDisk) path(container string) string {
	return filepath.Join(ld.dir, container+logSuffix)
}

// load reads every file, oldest lines first across files so that the
// book's bounds keep the newest.
func (ld *logDisk) load() error {
	ents, err := os.ReadDir(ld.dir)
	if err != nil {
		return fmt.Errorf("log directory: %w", err)
	}
	type loaded struct {
		name, tenant string
		lines        []fileLine
		size         int64
	}
	var all []loaded
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), logSuffix)
		if !ok || !e.Type().IsRegular() || !validContainerName(name) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(ld.dir, e.Name()))
		if err != nil {
			ld.errs(fmt.Errorf("log file %s: %w", e.Name(), err))
			continue
		}
		tenant, lines, good, err := decodeLogFile(b)
		if err != nil {
			ld.errs(fmt.Errorf("log file %s: %w (ignored)", e.Name(), err))
			continue
		}
		if good < len(b) {
			// A torn tail: cut it so appends continue after good records.
			_ = os.Truncate(filepath.Join(ld.dir, e.Name()), int64(good))
		}
		all = append(all, loaded{name, tenant, lines, int64(good)})
	}
	b := ld.book
	b.mu.Lock()
	defer b.mu.Unlock()
	type ref struct {
		c *clog
		l fileLine
	}
	var refs []ref
	for _, f := range all {
		c := b.containerLocked(f.name)
		delete(c.tenant.cs, c)
		c.tenant = b.tenant(f.tenant)
		c.tenant.cs[c] = struct{}{}
		c.fileSize = f.size
		for _, l := range f.lines {
			refs = append(refs, ref{c, l})
			c.flushed = max(c.flushed, l.seq)
		}
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].l.seq < refs[j].l.seq })
	for _, r := range refs {
		b.appendLocked(r.c, mgmt.LogLine{Seq: r.l.seq, Time: r.l.time, Text: r.l.text})
		b.seq = max(b.seq, r.l.seq)
	}
	for _, c := range b.cs { // lines loaded are not dropped lines
		c.dropped = 0
	}
	return nil
}

func (ld *logDisk) run() {
	defer close(ld.done)
	t := time.NewTicker(ld.interval)
	defer t.Stop()
	for {
		select {
		case <-ld.stop:
			ld.flush()
			return
		case <-t.C:
			ld.flush()
		}
	}
}

// close writes what is left and stops flushing.
func (ld *logDisk) close() {
	ld.once.Do(func() { close(ld.stop) })
	<-ld.done
}

// work is one container's share of a flush.
type logWork struct {
	c       *clog
	tenant  string
	lines   []mgmt.LogLine
	rewrite bool
}

func (ld *logDisk) flush() {
	b := ld.book
	var work []logWork
	b.mu.Lock()
	gone := b.gone
	b.gone = nil
	for _, c := range b.cs {
		if c.newest() <= c.flushed || !validContainerName(c.name) {
			continue
		}
		w := logWork{c: c, tenant: c.tenant.name}
		if c.fileSize > 2*int64(c.bytes)+logFileSlack {
			w.rewrite = true
			w.lines = c.after(0, 0)
		} else {
			w.lines = c.after(c.flushed, 0)
		}
		work = append(work, w)
	}
	b.mu.Unlock()
	for _, name := range gone {
		if err := os.Remove(ld.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			ld.errs(fmt.Errorf("log file of %s: %w", name, err))
		}
	}
	var buf []byte
	for _, w := range work {
		var err error
		if buf, err = ld.write(w, buf[:0]); err != nil {
			ld.errs(fmt.Errorf("log file of %s: %w", w.c.name, err))
		}
	}
}

// write appends w's lines to its file, or rewrites the file with them.
// Only the flushing goroutine touches c.flushed and c.fileSize.
func (ld *logDisk) write(w logWork, buf []byte) ([]byte, error) {
	c := w.c
	if w.rewrite || c.fileSize == 0 {
		buf = appendLogHeader(buf, w.tenant)
	}
	for _, l := range w.lines {
		buf = appendLogRecord(buf, l.Seq, l.Time, l.Text)
	}
	last := w.lines[len(w.lines)-1].Seq
	path := ld.path(c.name)
	if w.rewrite || c.fileSize == 0 {
		tmp := path + ".tmp"
		if err := writeSynced(tmp, buf); err != nil {
			return buf, err
		}
		if err := os.Rename(tmp, path); err != nil {
			return buf, err
		}
		c.fileSize, c.flushed = int64(len(buf)), last
		return buf, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if errors.Is(err, fs.ErrNotExist) { // removed under us: start over
		c.fileSize = 0
		return ld.write(logWork{c: c, tenant: w.tenant, lines: w.lines}, buf[:0])
	}
	if err != nil {
		return buf, err
	}
	_, err = f.Write(buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return buf, err
	}
	c.fileSize += int64(len(buf))
	c.flushed = last
	return buf, nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// validContainerName is SPEC section 5's [a-z0-9][a-z0-9-]{0,31}: such a
// name is safe as a file name.
func validContainerName(s string) bool {
	if len(s) == 0 || len(s) > 32 || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}
