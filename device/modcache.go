package device

import (
	"context"
	"crypto/sha256"
	"sync"

	"github.com/tinycontainer/tinycontainer/runtime"
)

// modCache shares compiled code between containers that run the same code
// under the same limits (many instances of one app are the common case on
// a multi-tenant device): one compile, one copy of the compiled module,
// each container still with its own instance and memory.
type modCache struct {
	mu   sync.Mutex
	mods map[modKey]*sharedMod
}

type modKey struct {
	kind  runtime.Kind
	sum   [sha256.Size]byte
	limit uint64
}

type sharedMod struct {
	runtime.Module
	c    *modCache
	key  modKey
	refs int
}

// ref is one container's reference to a shared module; Close drops it.
type ref struct {
	*sharedMod
	once sync.Once
}

func newModCache() *modCache { return &modCache{mods: map[modKey]*sharedMod{}} }

// compile returns a reference to the module for code, compiling it only
// when no container holds it yet.
func (c *modCache) compile(ctx context.Context, rt runtime.Runtime, code []byte, cfg runtime.Config) (runtime.Module, error) {
	// Before the cache: code another tenant may install is not
	// necessarily within this one's max code.
	if err := cfg.CheckCode(code); err != nil {
		return nil, err
	}
	k := modKey{kind: rt.Kind(), sum: sha256.Sum256(code), limit: cfg.MemoryLimit}
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.mods[k]; ok {
		m.refs++
		return &ref{sharedMod: m}, nil
	}
	mod, err := rt.Compile(ctx, code, cfg)
	if err != nil {
		return nil, err
	}
	m := &sharedMod{Module: mod, c: c, key: k, refs: 1}
	c.mods[k] = m
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
			delete(c.mods, r.key)
			err = r.Module.Close(ctx)
		}
	})
	return err
}
