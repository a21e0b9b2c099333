package device

import (
	"context"
	"sync"
	"time"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// logBook keeps the newest log lines of the device in a ring and feeds
// watchers. Seq numbers are device-wide, so a gap tells a reader that lines
// were dropped.
type logBook struct {
	mu       sync.Mutex
	ring     []mgmt.LogLine
	next     int
	seq      uint64
	watchers map[*watcher]struct{}
}

type watcher struct {
	name string
	ch   chan mgmt.LogLine
}

const logRing = 4096

func newLogBook() *logBook {
	return &logBook{ring: make([]mgmt.LogLine, 0, 256), watchers: map[*watcher]struct{}{}}
}

func (b *logBook) add(container, text string) mgmt.LogLine {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	l := mgmt.LogLine{Seq: b.seq, Time: time.Now(), Container: container, Text: text}
	if len(b.ring) < logRing {
		b.ring = append(b.ring, l)
	} else {
		b.ring[b.next] = l
		b.next = (b.next + 1) % logRing
	}
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

// lines returns up to max lines (0: all) of container ("" for every
// container) with Seq > after, oldest first.
func (b *logBook) lines(container string, after uint64, max int) []mgmt.LogLine {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.linesLocked(container, after)
	if max > 0 && len(out) > max {
		out = out[:max]
	}
	return out
}

// watch streams lines of container written after seq until ctx ends.
func (b *logBook) watch(ctx context.Context, container string, after uint64) <-chan mgmt.LogLine {
	w := &watcher{name: container, ch: make(chan mgmt.LogLine, 256)}
	b.mu.Lock()
	backlog := b.linesLocked(container, after)
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

func (b *logBook) linesLocked(container string, after uint64) []mgmt.LogLine {
	var out []mgmt.LogLine
	n := len(b.ring)
	for i := range n {
		l := b.ring[(b.next+i)%n]
		if l.Seq > after && (container == "" || l.Container == container) {
			out = append(out, l)
		}
	}
	return out
}
