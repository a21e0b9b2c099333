package tflite

import (
	"container/list"
	"sync"
)

// Cache keeps parsed models and their interpreters for the ml endpoint,
// per owner, least recently used first out. An entry is reused only when
// the model bytes handed in match its structure byte for byte (every byte
// the parser read: tables, shapes, quantization, operator options); the
// rest of the model is weight data, which the kernels read in place on
// every call and from which nothing is cached. So a container that edits
// any byte of its model gets either a fresh parse or results computed
// from the new weights, never stale ones. Entries are never shared across
// owners. Safe for concurrent use.
type Cache struct {
	mu       sync.Mutex
	max      int
	perOwner int
	lru      *list.List // of *cacheEntry, most recent at the front
	owners   map[string]int
}

type cacheEntry struct {
	owner string
	mu    sync.Mutex // serializes use of it (one arena)
	it    *Interpreter
}

// NewCache returns a cache of at most maxEntries interpreters (at least 1);
// one owner may hold at most a quarter of them (at least 1), so a tenant
// cycling through models cannot evict everyone else's.
func NewCache(maxEntries int) *Cache {
	maxEntries = max(1, maxEntries)
	return &Cache{max: maxEntries, perOwner: max(1, maxEntries/4), lru: list.New(), owners: map[string]int{}}
}

// Invoke runs model on input for owner, writing the output tensor into
// output and returning its length (see Interpreter.Invoke for errors).
func (c *Cache) Invoke(owner string, model, input, output []byte) (int, error) {
	return c.InvokePaced(owner, model, input, output, nil)
}

// InvokePaced is Invoke with the inference paced by pace (see
// Interpreter.InvokePaced). The model's entry is held meanwhile, also
// while pace blocks: only its owner (one container, never run twice at
// once) uses it.
func (c *Cache) InvokePaced(owner string, model, input, output []byte, pace Pace) (int, error) {
	e := c.lookup(owner, model)
	if e == nil {
		// Parsing and planning are paced too (a hostile model's can take
		// milliseconds, and each structural edit makes them run again).
		var p pacer
		p.reset(pace)
		m, err := parse(model, &p)
		if p.stopped {
			return 0, ErrStopped
		}
		if err != nil {
			return 0, err
		}
		it, err := newInterpreter(m, &p)
		if p.stopped {
			return 0, ErrStopped
		}
		if err != nil {
			return 0, err
		}
		e = &cacheEntry{owner: owner, it: it}
		c.insert(e)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.it.run(model, input, output, pace)
}

func (c *Cache) lookup(owner string, model []byte) *cacheEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	for el := c.lru.Front(); el != nil; el = el.Next() {
		e := el.Value.(*cacheEntry)
		if e.owner == owner && e.it.m.Matches(model) {
			c.lru.MoveToFront(el)
			return e
		}
	}
	return nil
}

func (c *Cache) insert(e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.PushFront(e)
	c.owners[e.owner]++
	// Evict the owner's oldest beyond its share, then the oldest overall.
	for el := c.lru.Back(); el != nil && c.owners[e.owner] > c.perOwner; {
		prev := el.Prev()
		if el.Value.(*cacheEntry).owner == e.owner {
			c.remove(el)
		}
		el = prev
	}
	for c.lru.Len() > c.max {
		c.remove(c.lru.Back())
	}
}

func (c *Cache) remove(el *list.Element) {
	o := c.lru.Remove(el).(*cacheEntry).owner
	if c.owners[o]--; c.owners[o] == 0 {
		delete(c.owners, o)
	}
}

// Drop forgets every entry of owner (e.g. when its container is removed).
func (c *Cache) Drop(owner string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for el := c.lru.Front(); el != nil; {
		next := el.Next()
		if el.Value.(*cacheEntry).owner == owner {
			c.remove(el)
		}
		el = next
	}
}

// Len is the number of cached interpreters.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
