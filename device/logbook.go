package device

import (
	"context"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// Log retention (docs/notes/device.md, "Logs"). Every container has its
// own ring; a tenant's rings share a memory bound. A line that takes a
// tenant past its bound evicts the oldest line of the container that wrote
// it, down to that container's floor; beyond that the tenant's container
// holding the most lines above its floor gives one up. Another tenant's
// lines are never touched, and no container ever falls below its newest
// MinLogLines lines (so a tenant may hold more than its bound when it has
// many containers: at most containers × MinLogLines lines).
const (
	// MinLogLines is the number of newest lines every container keeps,
	// whatever its neighbours do.
	MinLogLines = 1000
	// MaxLogLines caps one container's ring.
	MaxLogLines = 10000
	// DefaultTenantLogBytes is the memory bound of one tenant's lines.
	DefaultTenantLogBytes = 4 << 20
	// lineOverhead is what a retained line is counted to cost besides its
	// text: its 32-byte slot, the rounding of its text's allocation and
	// the ring's free slots (at most as many as it holds).
	lineOverhead = 64
)

// logLimits configure a logBook; zero fields take the defaults above.
type logLimits struct {
	minLines, maxLines int
	tenantBytes        int
}

func (l logLimits) withDefaults() logLimits {
	if l.minLines <= 0 {
		l.minLines = MinLogLines
	}
	if l.maxLines < l.minLines {
		l.maxLines = max(MaxLogLines, l.minLines)
	}
	if l.tenantBytes <= 0 {
		l.tenantBytes = DefaultTenantLogBytes
	}
	return l
}

// logBook keeps the newest log lines of every container and feeds
// watchers. Seq numbers are device-wide, so a gap tells a reader that lines
// were dropped (or belong to other containers).
type logBook struct {
	mu       sync.Mutex
	lim      logLimits
	seq      uint64
	cs       map[string]*clog
	tenants  map[string]*tenantLog
	watchers map[*watcher]struct{}
	// persist says a logDisk keeps the book; gone are the containers
	// forgotten since its last flush, whose files it removes.
	persist bool
	gone    []string
}

// clog is one container's ring of lines, oldest first from head. A line
// costs 32 bytes in the ring plus its text (the container's name and the
// time's location are not repeated in every line); the ring doubles when
// full and halves when a quarter full, so it holds at most twice the lines
// retained.
type clog struct {
	name    string
	tenant  *tenantLog
	ring    []logEntry
	head, n int
	bytes   int
	dropped uint64
	// disk bookkeeping (logdisk.go): the highest Seq written to the file,
	// the file's size.
	flushed  uint64
	fileSize int64
}

// logEntry is one retained line.
type logEntry struct {
	seq  uint64
	unix int64 // ns
	text string
}

type tenantLog struct {
	name  string
	bytes int
	cs    map[*clog]struct{}
}

type watcher struct {
	name string
	ch   chan mgmt.LogLine
}

func newLogBook(lim logLimits) *logBook {
	return &logBook{lim: lim.withDefaults(), cs: map[string]*clog{}, tenants: map[string]*tenantLog{},
		watchers: map[*watcher]struct{}{}}
}

func (c *clog) len() int { return c.n }

// at is c's i-th oldest line.
func (c *clog) at(i int) *logEntry { return &c.ring[(c.head+i)%len(c.ring)] }

// newest is the Seq of c's newest line (0: none).
func (c *clog) newest() uint64 {
	if c.n == 0 {
		return 0
	}
	return c.at(c.n - 1).seq
}

func lineCost(text string) int { return len(text) + lineOverhead }

// minRing is the smallest ring a container with lines keeps.
const minRing = 16

// push appends e, growing the ring when full.
func (c *clog) push(e logEntry) {
	if c.n == len(c.ring) {
		c.resize(max(minRing, 2*len(c.ring)))
	}
	c.ring[(c.head+c.n)%len(c.ring)] = e
	c.n++
}

// resize moves the lines to a ring of size slots (>= c.n), oldest first.
func (c *clog) resize(size int) {
	r := make([]logEntry, size)
	for i := range c.n {
		r[i] = *c.at(i)
	}
	c.ring, c.head = r, 0
}

// evictOldest drops c's oldest line; b.mu held.
func (c *clog) evictOldest() {
	e := c.at(0)
	cost := lineCost(e.text)
	c.bytes -= cost
	c.tenant.bytes -= cost
	*e = logEntry{}
	c.head = (c.head + 1) % len(c.ring)
	c.n--
	c.dropped++
	if len(c.ring) > minRing && c.n < len(c.ring)/4 {
		c.resize(len(c.ring) / 2)
	}
}

func (b *logBook) tenant(name string) *tenantLog {
	t, ok := b.tenants[name]
	if !ok {
		t = &tenantLog{name: name, cs: map[*clog]struct{}{}}
		b.tenants[name] = t
	}
	return t
}

// containerLocked returns container's ring, made if needed; b.mu held.
func (b *logBook) containerLocked(name string) *clog {
	c, ok := b.cs[name]
	if !ok {
		c = &clog{name: name, tenant: b.tenant("")}
		c.tenant.cs[c] = struct{}{}
		b.cs[name] = c
	}
	return c
}

// setTenant says which tenant container belongs to (its lines count
// against that tenant's bound from now on).
func (b *logBook) setTenant(container, tenant string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.containerLocked(container)
	if c.tenant.name == tenant {
		return
	}
	delete(c.tenant.cs, c)
	c.tenant.bytes -= c.bytes
	c.tenant = b.tenant(tenant)
	c.tenant.cs[c] = struct{}{}
	c.tenant.bytes += c.bytes
	b.trimLocked(c)
}

// forget drops a container's lines (it was removed).
func (b *logBook) forget(container string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.cs[container]
	if !ok {
		return
	}
	c.tenant.bytes -= c.bytes
	delete(c.tenant.cs, c)
	delete(b.cs, container)
	if b.persist {
		b.gone = append(b.gone, container)
	}
}

// prune forgets every container keep refuses (say, logs loaded from disk
// of containers no longer installed).
func (b *logBook) prune(keep func(container string) bool) {
	b.mu.Lock()
	names := make([]string, 0, len(b.cs))
	for name := range b.cs {
		names = append(names, name)
	}
	b.mu.Unlock()
	for _, name := range names { // keep may take other locks: not under b.mu
		if !keep(name) {
			b.forget(name)
		}
	}
}

func (b *logBook) add(container, text string) mgmt.LogLine {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	l := mgmt.LogLine{Seq: b.seq, Time: time.Now(), Container: container, Text: text}
	b.appendLocked(b.containerLocked(container), l)
	for w := range b.watchers {
		if w.name == "" || w.name == container {
			select {
			case w.ch <- l:
			default: // a slow watcher loses lines; it sees the Seq gap
			}
		}
	}
	return l
}

// appendLocked adds l to c and applies the bounds; b.mu held.
func (b *logBook) appendLocked(c *clog, l mgmt.LogLine) {
	c.push(logEntry{seq: l.Seq, unix: l.Time.UnixNano(), text: l.Text})
	cost := lineCost(l.Text)
	c.bytes += cost
	c.tenant.bytes += cost
	b.trimLocked(c)
}

// trimLocked enforces the container cap and the tenant bound after c grew.
func (b *logBook) trimLocked(c *clog) {
	for c.len() > b.lim.maxLines {
		c.evictOldest()
	}
	t := c.tenant
	for t.bytes > b.lim.tenantBytes && c.len() > b.lim.minLines {
		c.evictOldest()
	}
	for t.bytes > b.lim.tenantBytes {
		var big *clog
		for o := range t.cs {
			if o.len() > b.lim.minLines && (big == nil || o.len() > big.len()) {
				big = o
			}
		}
		if big == nil {
			return // every container at its floor: the floor wins
		}
		big.evictOldest()
	}
}

// dropped is the number of container's lines evicted so far.
func (b *logBook) dropped(container string) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c, ok := b.cs[container]; ok {
		return c.dropped
	}
	return 0
}

// lines returns up to max lines (0: all) of container ("" for every
// container) with Seq > after, oldest first.
func (b *logBook) lines(container string, after uint64, max int) []mgmt.LogLine {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.linesLocked(container, after, max)
	if max > 0 && len(out) > max {
		out = out[:max]
	}
	return out
}

// lastSeq is the sequence number of the newest line.
func (b *logBook) lastSeq() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seq
}

// watch streams lines of container written after seq until ctx ends.
func (b *logBook) watch(ctx context.Context, container string, after uint64) <-chan mgmt.LogLine {
	w := &watcher{name: container, ch: make(chan mgmt.LogLine, 256)}
	b.mu.Lock()
	backlog := b.linesLocked(container, after, cap(w.ch))
	for _, l := range backlog {
		select {
		case w.ch <- l:
		default:
		}
	}
	b.watchers[w] = struct{}{}
	b.mu.Unlock()
	out := make(chan mgmt.LogLine)
	go func() {
		defer close(out)
		defer func() {
			b.mu.Lock()
			delete(b.watchers, w)
			b.mu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case l := <-w.ch:
				select {
				case out <- l:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// linesLocked returns the lines after seq after, oldest first: at least
// the first max of them (all when max <= 0).
func (b *logBook) linesLocked(container string, after uint64, max int) []mgmt.LogLine {
	if container != "" {
		c, ok := b.cs[container]
		if !ok {
			return nil
		}
		return c.after(after, max)
	}
	var out []mgmt.LogLine
	for _, c := range b.cs {
		out = append(out, c.after(after, max)...)
	}
	slices.SortFunc(out, func(x, y mgmt.LogLine) int {
		switch {
		case x.Seq < y.Seq:
			return -1
		case x.Seq > y.Seq:
			return 1
		}
		return 0
	})
	return out
}

// after returns up to max (all when max <= 0) lines with Seq > seq,
// oldest first.
func (c *clog) after(seq uint64, max int) []mgmt.LogLine {
	if seq == math.MaxUint64 {
		return nil
	}
	i := sort.Search(c.n, func(i int) bool { return c.at(i).seq > seq })
	n := c.n - i
	if max > 0 && n > max {
		n = max
	}
	out := make([]mgmt.LogLine, n)
	for j := range out {
		e := c.at(i + j)
		out[j] = mgmt.LogLine{Seq: e.seq, Time: time.Unix(0, e.unix), Container: c.name, Text: e.text}
	}
	return out
}
