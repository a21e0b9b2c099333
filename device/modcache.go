package device

import (
	"context"
	"crypto/sha256"
	"sync"
	"sync/atomic"

	"github.com/tinycontainer/tinycontainer/runtime"
)

// modCache shares compiled code between containers that run the same code
// under the same limits (many instances of one app are the common case on
// a multi-tenant device): one compile, one copy of the compiled module,
// each container still with its own instance and memory.
//
// No lock is held while code compiles: a costly compile (up to the
// install-time bounds) holds up only the installs of the same code, which
// wait for its result, never another tenant's.
type modCache struct {
	mu   sync.Mutex
	mods map[modKey]*sharedMod
	// hook, when set, is called before each compile starts (tests hold
	// an install there to show what it does not block).
	hook atomic.Pointer[func(runtime.Kind, []byte)]
}

type modKey struct {
	kind  runtime.Kind
	sum   [sha256.Size]byte
	limit uint64
}

type sharedMod struct {
	runtime.Module // set before done is closed, nil if the compile failed
	c              *modCache
	key            modKey
	refs           int
	done           chan struct{} // closed when the compile has ended
	err            error         // the compile's error, set before done
}

// ref is one container's reference to a shared module; Close drops it.
type ref struct {
	*sharedMod
	once sync.Once
}

func newModCache() *modCache { return &modCache{mods: map[modKey]*sharedMod{}} }

// compile returns a reference to the module for code, compiling it only
// when no container holds it yet (or waiting for the compile under way).
func (c *modCache) compile(ctx context.Context, rt runtime.Runtime, code []byte, cfg runtime.Config) (runtime.Module, error) {
	// Before the cache: code another tenant may install is not
	// necessarily within this one's max code.
	if err := cfg.CheckCode(code); err != nil {
		return nil, err
	}
	k := modKey{kind: rt.Kind(), sum: sha256.Sum256(code), limit: cfg.MemoryLimit}
	c.mu.Lock()
	if m, ok := c.mods[k]; ok {
		m.refs++
		c.mu.Unlock()
		<-m.done
		if m.err != nil {
			return nil, m.err // the entry is gone from the cache
		}
		return &ref{sharedMod: m}, nil
	}
	m := &sharedMod{c: c, key: k, refs: 1, done: make(chan struct{})}
	c.mods[k] = m
	c.mu.Unlock()
	if h := c.hook.Load(); h != nil {
		(*h)(rt.Kind(), code)
	}
	var mod runtime.Module
	var err error
	withSpareProc(func() { mod, err = rt.Compile(ctx, code, cfg) })
	c.mu.Lock()
	m.Module, m.err = mod, err
	if err != nil {
		delete(c.mods, k)
	}
	c.mu.Unlock()
	close(m.done)
	if err != nil {
		return nil, err
	}
	return &ref{sharedMod: m}, nil
}

// Close drops this reference; the last one closes the compiled module.
func (r *ref) Close(ctx context.Context) error {
	var err error
	r.once.Do(func() {
		c := r.c
		c.mu.Lock()
		defer c.mu.Unlock()
		r.refs--
		if r.refs == 0 {
			if c.mods[r.key] == r.sharedMod {
				delete(c.mods, r.key)
			}
			err = r.Module.Close(ctx)
		}
	})
	return err
}
