package device_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/store"
	"github.com/tinycontainer/tinycontainer/store/boltstore"
	"github.com/tinycontainer/tinycontainer/store/memstore"
)

// bigGuest is testdata/big.wasm (about 13 KB) and a manifest for it.
func bigGuest(b *testing.B, name string) (*meta.Manifest, []byte) {
	b.Helper()
	code, err := os.ReadFile(filepath.Join("testdata", "big.wasm"))
	if err != nil {
		b.Fatal(err)
	}
	m, err := meta.Parse([]byte(`name: ` + name + `
tenant: acme
version: 1
runtime: wasm
schedule: {trigger: periodic, period: 1s, budget: 5ms}
limits: {memory: 64KiB, storage: 1KiB}
endpoints:
  - {name: log, ops: [write]}
  - {name: kv, ops: [get, put]}
`))
	if err != nil {
		b.Fatal(err)
	}
	return m, code
}

// distinctCode makes a copy of big.wasm whose table differs in one entry,
// so that no compilation cache can share its compiled code with another.
func distinctCode(b *testing.B, code []byte, i int) []byte {
	b.Helper()
	// The table's first entry, as clang lays it out in the data segment.
	first := binary.LittleEndian.AppendUint32(nil, bigTableFirst)
	at := bytes.Index(code, first)
	if at < 0 {
		b.Fatal("big.wasm: table not found")
	}
	c := bytes.Clone(code)
	binary.LittleEndian.PutUint32(c[at:], bigTableFirst^uint32(i+1))
	return c
}

// bigTableFirst is table[0] of testdata/big.c.
const bigTableFirst = 0x424e617b

// BenchmarkColdDeploy deploys a signed 13 KB image on a fresh device each
// time and waits for its first activation: decode and verify the image,
// check the metadata against the tenant's ceiling, instrument and compile
// the code, store the record, instantiate and run it once.
func BenchmarkColdDeploy(b *testing.B) {
	m, code := bigGuest(b, "big")
	img := pack(b, m, code, acmeKey)
	b.Logf("image: %d bytes (code %d)", len(img), len(code))
	for _, kind := range []string{"boltstore", "memstore"} {
		b.Run(kind, func(b *testing.B) {
			b.SetBytes(int64(len(img)))
			for range b.N {
				b.StopTimer()
				var st store.Store = memstore.New()
				if kind == "boltstore" {
					bs, err := boltstore.Open(b.TempDir(), boltstore.Options{})
					if err != nil {
						b.Fatal(err)
					}
					st = bs
				}
				first := make(chan struct{})
				var once sync.Once
				ctx, cancel := context.WithCancel(context.Background())
				mg, err := device.Open(ctx, device.Config{Owner: pub(ownerKey), Options: device.Options{Store: st,
					OnLog: func(mgmt.LogLine) { once.Do(func() { close(first) }) }}})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := mg.Exec(ctx, signCmd(b, ownerKey, device.VerbTenantAdd, "", acmeGrant(b))); err != nil {
					b.Fatal(err)
				}
				done := make(chan struct{})
				go func() { mg.Device().Run(ctx); close(done) }()
				b.StartTimer()

				if _, err := mg.Deploy(ctx, img); err != nil {
					b.Fatal(err)
				}
				<-first

				b.StopTimer()
				cancel()
				<-done
				mg.Close(context.Background())
				st.Close()
				b.StartTimer()
			}
		})
	}
}

// BenchmarkRestart100 reopens a state directory holding 100 running
// containers of distinct 13 KB code: open the store, verify and compile
// every image, and schedule each again (open); and until every one of them
// has run its first activation again (first-activation).
func BenchmarkRestart100(b *testing.B) {
	const n = 100
	dir := b.TempDir()
	st, err := boltstore.Open(dir, boltstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	mg, err := device.Open(ctx, device.Config{Owner: pub(ownerKey), Options: device.Options{Store: st}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := mg.Exec(ctx, signCmd(b, ownerKey, device.VerbTenantAdd, "", acmeGrant(b))); err != nil {
		b.Fatal(err)
	}
	m, code := bigGuest(b, "big")
	for i := range n {
		mi := variant(m, func(m *meta.Manifest) { m.Name = fmt.Sprintf("big-%03d", i) })
		if _, err := mg.Deploy(ctx, pack(b, mi, distinctCode(b, code, i), acmeKey)); err != nil {
			b.Fatal(err)
		}
	}
	mg.Close(ctx)
	st.Close()

	for _, wait := range []string{"open", "first-activation"} {
		b.Run(wait, func(b *testing.B) {
			for range b.N {
				var mu sync.Mutex
				seen := map[string]bool{}
				all := make(chan struct{})
				onLog := func(l mgmt.LogLine) {
					mu.Lock()
					defer mu.Unlock()
					if !seen[l.Container] {
						seen[l.Container] = true
						if len(seen) == n {
							close(all)
						}
					}
				}
				rctx, cancel := context.WithCancel(ctx)
				st, err := boltstore.Open(dir, boltstore.Options{})
				if err != nil {
					b.Fatal(err)
				}
				mg, err := device.Open(rctx, device.Config{Owner: pub(ownerKey), Options: device.Options{Store: st, OnLog: onLog}})
				if err != nil {
					b.Fatal(err)
				}
				done := make(chan struct{})
				go func() { mg.Device().Run(rctx); close(done) }()
				if wait == "first-activation" {
					<-all
				}

				b.StopTimer()
				cancel()
				<-done
				for _, c := range mg.Device().List() {
					if c.State != mgmt.StateRunning {
						b.Fatalf("%s restarted %s", c.Name, c.State)
					}
				}
				if got := len(mg.Device().List()); got != n {
					b.Fatalf("%d containers after restart", got)
				}
				mg.Close(ctx)
				st.Close()
				b.StartTimer()
			}
		})
	}
}
