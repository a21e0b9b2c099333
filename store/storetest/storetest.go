// Package storetest is the conformance suite every store.Store
// implementation must pass, plus a concurrency hammer for -race runs.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/internal/testpar"
	"github.com/tinycontainer/tinycontainer/store"
)

// Opener returns a fresh, empty store; the suite closes it.
type Opener func(t *testing.T) store.Store

type testCase struct {
	name string
	fn   func(t *testing.T, s store.Store)
}

var cases = []testCase{
	{"KVRoundTrip", testKVRoundTrip},
	{"KVNotFound", testKVNotFound},
	{"KVLimits", testKVLimits},
	{"KVCopies", testKVCopies},
	{"Quota", testQuota},
	{"QuotaReplace", testQuotaReplace},
	{"DeleteAll", testDeleteAll},
	{"Containers", testContainers},
	{"ContainerInvalid", testContainerInvalid},
	{"DeleteContainerRemovesKV", testDeleteContainerRemovesKV},
	{"Tenants", testTenants},
	{"Audit", testAudit},
	{"AuditBound", testAuditBound},
	{"AuditInvalid", testAuditInvalid},
	{"Counters", testCounters},
	{"Closed", testClosed},
}

// Run runs the conformance suite, each case on a fresh store.
func Run(t *testing.T, open Opener) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := open(t)
			if c.name != "Closed" {
				defer func() {
					if err := s.Close(); err != nil {
						t.Errorf("Close: %v", err)
					}
				}()
			}
			c.fn(t, s)
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, class error, what string) {
	t.Helper()
	if !errors.Is(err, class) {
		t.Fatalf("%s: got error %v, want %v", what, err, class)
	}
}

func wantUsage(t *testing.T, s store.Store, container string, want uint64) {
	t.Helper()
	got, err := s.Usage(container)
	must(t, err)
	if got != want {
		t.Fatalf("Usage(%q) = %d, want %d", container, got, want)
	}
}

func wantValue(t *testing.T, s store.Store, container, key string, want []byte) {
	t.Helper()
	got, err := s.Get(container, key)
	must(t, err)
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q, %q) = %q, want %q", container, key, got, want)
	}
}

const bigQuota = 1 << 30

func testKVRoundTrip(t *testing.T, s store.Store) {
	must(t, s.Put("a", "k1", []byte("v1"), bigQuota))
	must(t, s.Put("a", "k2", []byte{}, bigQuota))
	must(t, s.Put("b", "k1", []byte("other"), bigQuota))
	wantValue(t, s, "a", "k1", []byte("v1"))
	wantValue(t, s, "a", "k2", nil)
	wantValue(t, s, "b", "k1", []byte("other"))
	wantUsage(t, s, "a", 2+2+2)
	wantUsage(t, s, "b", 2+5)

	must(t, s.Put("a", "k1", []byte("longer value"), bigQuota))
	wantValue(t, s, "a", "k1", []byte("longer value"))
	wantUsage(t, s, "a", 2+12+2)

	must(t, s.Delete("a", "k1"))
	_, err := s.Get("a", "k1")
	wantErr(t, err, store.ErrNotFound, "Get after Delete")
	wantUsage(t, s, "a", 2)
	must(t, s.Delete("a", "k2"))
	wantUsage(t, s, "a", 0)
	wantValue(t, s, "b", "k1", []byte("other"))

	// Binary keys and values survive unchanged.
	key := string([]byte{0, 0xff, '/', 0})
	val := []byte{0, 1, 2, 0xfe, 0xff}
	must(t, s.Put("a", key, val, bigQuota))
	wantValue(t, s, "a", key, val)
}

func testKVNotFound(t *testing.T, s store.Store) {
	_, err := s.Get("nobody", "k")
	wantErr(t, err, store.ErrNotFound, "Get of unknown container")
	must(t, s.Put("a", "k", []byte("v"), bigQuota))
	_, err = s.Get("a", "missing")
	wantErr(t, err, store.ErrNotFound, "Get of missing key")
	wantErr(t, s.Delete("a", "missing"), store.ErrNotFound, "Delete of missing key")
	wantErr(t, s.Delete("nobody", "k"), store.ErrNotFound, "Delete in unknown container")
	wantUsage(t, s, "nobody", 0)
	wantUsage(t, s, "a", 2)
}

func testKVLimits(t *testing.T, s store.Store) {
	maxKey := strings.Repeat("k", store.MaxKeyLen)
	must(t, s.Put("a", maxKey, []byte("v"), bigQuota))
	wantValue(t, s, "a", maxKey, []byte("v"))
	maxVal := bytes.Repeat([]byte{7}, store.MaxValueLen)
	must(t, s.Put("a", "big", maxVal, bigQuota))
	wantValue(t, s, "a", "big", maxVal)
	before, err := s.Usage("a")
	must(t, err)

	for _, tc := range []struct {
		what, container, key string
		value                []byte
	}{
		{"empty key", "a", "", []byte("v")},
		{"key too long", "a", maxKey + "k", []byte("v")},
		{"value too long", "a", "k", make([]byte, store.MaxValueLen+1)},
		{"empty container", "", "k", []byte("v")},
		{"container name too long", strings.Repeat("c", store.MaxNameLen+1), "k", []byte("v")},
	} {
		wantErr(t, s.Put(tc.container, tc.key, tc.value, bigQuota), store.ErrInvalid, tc.what)
	}
	wantUsage(t, s, "a", before)
	wantErr(t, s.DeleteAll(""), store.ErrInvalid, "DeleteAll of empty name")
}

func testKVCopies(t *testing.T, s store.Store) {
	in := []byte("value")
	must(t, s.Put("a", "k", in, bigQuota))
	in[0] = 'X' // the store must have copied the input
	got, err := s.Get("a", "k")
	must(t, err)
	if string(got) != "value" {
		t.Fatalf("store kept the caller's slice: %q", got)
	}
	got[0] = 'Y' // and hand out its own copy
	wantValue(t, s, "a", "k", []byte("value"))
}

func testQuota(t *testing.T, s store.Store) {
	// Fill exactly to the quota: 10 + 10 bytes.
	must(t, s.Put("a", "k1", []byte("12345678"), 20))
	must(t, s.Put("a", "k2", []byte("12345678"), 20))
	wantUsage(t, s, "a", 20)
	wantErr(t, s.Put("a", "k3", nil, 20), store.ErrQuota, "Put beyond quota")
	_, err := s.Get("a", "k3")
	wantErr(t, err, store.ErrNotFound, "Get of refused key")
	wantUsage(t, s, "a", 20)
	// A refused first put leaves no trace either.
	wantErr(t, s.Put("b", "key", []byte("v"), 3), store.ErrQuota, "first Put beyond quota")
	wantUsage(t, s, "b", 0)
	_, err = s.Get("b", "key")
	wantErr(t, err, store.ErrNotFound, "Get after refused first Put")
	// Quota 0 refuses everything.
	wantErr(t, s.Put("c", "k", nil, 0), store.ErrQuota, "Put with quota 0")
	// Freed space can be reused.
	must(t, s.Delete("a", "k1"))
	must(t, s.Put("a", "k3", []byte("1234567"), 20))
	wantUsage(t, s, "a", 19)
}

func testQuotaReplace(t *testing.T, s store.Store) {
	must(t, s.Put("a", "k", []byte("123456789"), 10)) // usage 10 = quota
	// Same size and smaller replacements fit although the quota is full.
	must(t, s.Put("a", "k", []byte("abcdefghi"), 10))
	must(t, s.Put("a", "k", []byte("abc"), 10))
	wantUsage(t, s, "a", 4)
	must(t, s.Put("a", "k", []byte("123456789"), 10))
	wantErr(t, s.Put("a", "k", []byte("1234567890"), 10), store.ErrQuota, "growing replacement beyond quota")
	wantValue(t, s, "a", "k", []byte("123456789"))
	wantUsage(t, s, "a", 10)
}

func testDeleteAll(t *testing.T, s store.Store) {
	must(t, s.Put("a", "k1", []byte("v"), bigQuota))
	must(t, s.Put("a", "k2", []byte("v"), bigQuota))
	must(t, s.Put("b", "k1", []byte("v"), bigQuota))
	must(t, s.DeleteAll("a"))
	must(t, s.DeleteAll("never-existed"))
	wantUsage(t, s, "a", 0)
	_, err := s.Get("a", "k1")
	wantErr(t, err, store.ErrNotFound, "Get after DeleteAll")
	wantValue(t, s, "b", "k1", []byte("v"))
	must(t, s.Put("a", "k1", []byte("again"), 7))
	wantUsage(t, s, "a", 7)
}

func sampleContainer(name string, version uint64) store.Container {
	return store.Container{
		Name:     name,
		Tenant:   "acme",
		Version:  version,
		Image:    bytes.Repeat([]byte{byte(version)}, 100),
		Manifest: fmt.Appendf(nil, `{"name":%q,"version":%d}`, name, version),
		State:    store.StateRunning,
	}
}

func equalContainer(a, b store.Container) bool {
	return a.Name == b.Name && a.Tenant == b.Tenant && a.Version == b.Version && a.State == b.State &&
		bytes.Equal(a.Image, b.Image) && bytes.Equal(a.Manifest, b.Manifest) && bytes.Equal(a.Compiled, b.Compiled)
}

func testContainers(t *testing.T, s store.Store) {
	list, err := s.ListContainers()
	must(t, err)
	if len(list) != 0 {
		t.Fatalf("fresh store lists %d containers", len(list))
	}
	_, err = s.GetContainer("thermo")
	wantErr(t, err, store.ErrNotFound, "GetContainer of missing")
	wantErr(t, s.DeleteContainer("thermo"), store.ErrNotFound, "DeleteContainer of missing")

	c := sampleContainer("thermo", 1)
	c.Compiled = []byte("native code")
	must(t, s.PutContainer(c))
	must(t, s.PutContainer(sampleContainer("alpha", 1)))
	must(t, s.PutContainer(sampleContainer("zeta", 1)))
	got, err := s.GetContainer("thermo")
	must(t, err)
	if !equalContainer(got, c) {
		t.Fatalf("GetContainer = %+v, want %+v", got, c)
	}
	got.Image[0] ^= 0xff // the caller owns the returned copy
	c.Manifest[0] = '!'  // and the store owns what it was given
	again, err := s.GetContainer("thermo")
	must(t, err)
	if !equalContainer(again, sampleContainerCompiled()) {
		t.Fatalf("store shares memory with its callers: %+v", again)
	}

	// Replacement: a live metadata update and a state change.
	upd := sampleContainer("thermo", 2)
	upd.State = store.StateFaulted
	must(t, s.PutContainer(upd))
	got, err = s.GetContainer("thermo")
	must(t, err)
	if !equalContainer(got, upd) {
		t.Fatalf("after replace: %+v, want %+v", got, upd)
	}

	list, err = s.ListContainers()
	must(t, err)
	var names []string
	for _, c := range list {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "alpha,thermo,zeta" {
		t.Fatalf("ListContainers order: %v", names)
	}
	if !equalContainer(list[1], upd) {
		t.Fatalf("ListContainers record: %+v", list[1])
	}

	must(t, s.DeleteContainer("alpha"))
	_, err = s.GetContainer("alpha")
	wantErr(t, err, store.ErrNotFound, "GetContainer after delete")
	list, err = s.ListContainers()
	must(t, err)
	if len(list) != 2 {
		t.Fatalf("%d containers after delete, want 2", len(list))
	}
}

func sampleContainerCompiled() store.Container {
	c := sampleContainer("thermo", 1)
	c.Compiled = []byte("native code")
	return c
}

func testContainerInvalid(t *testing.T, s store.Store) {
	for _, tc := range []struct {
		what string
		mod  func(c *store.Container)
	}{
		{"empty name", func(c *store.Container) { c.Name = "" }},
		{"long name", func(c *store.Container) { c.Name = strings.Repeat("n", store.MaxNameLen+1) }},
		{"empty tenant", func(c *store.Container) { c.Tenant = "" }},
		{"empty state", func(c *store.Container) { c.State = "" }},
		{"unknown state", func(c *store.Container) { c.State = "sleeping" }},
		{"huge image", func(c *store.Container) { c.Image = make([]byte, store.MaxBlobLen+1) }},
	} {
		c := sampleContainer("x", 1)
		tc.mod(&c)
		wantErr(t, s.PutContainer(c), store.ErrInvalid, tc.what)
	}
	list, err := s.ListContainers()
	must(t, err)
	if len(list) != 0 {
		t.Fatalf("invalid containers were stored: %d", len(list))
	}
}

func testDeleteContainerRemovesKV(t *testing.T, s store.Store) {
	must(t, s.PutContainer(sampleContainer("a", 1)))
	must(t, s.PutContainer(sampleContainer("b", 1)))
	must(t, s.Put("a", "k", []byte("v"), bigQuota))
	must(t, s.Put("b", "k", []byte("v"), bigQuota))
	must(t, s.DeleteContainer("a"))
	_, err := s.Get("a", "k")
	wantErr(t, err, store.ErrNotFound, "kv of deleted container")
	wantUsage(t, s, "a", 0)
	wantValue(t, s, "b", "k", []byte("v"))
	// A reinstalled container starts with empty storage.
	must(t, s.PutContainer(sampleContainer("a", 2)))
	wantUsage(t, s, "a", 0)
	// A refused delete changes nothing.
	must(t, s.Put("orphan", "k", []byte("v"), bigQuota))
	wantErr(t, s.DeleteContainer("orphan"), store.ErrNotFound, "DeleteContainer without record")
	wantValue(t, s, "orphan", "k", []byte("v"))
}

func testTenants(t *testing.T, s store.Store) {
	_, err := s.GetTenant("acme")
	wantErr(t, err, store.ErrNotFound, "GetTenant of missing")
	must(t, s.PutTenant(store.Tenant{Name: "zeta", Grant: []byte("g-zeta")}))
	grant := []byte("g1")
	must(t, s.PutTenant(store.Tenant{Name: "acme", Grant: grant}))
	grant[0] = 'X'
	must(t, s.PutTenant(store.Tenant{Name: "beta", Grant: []byte("g-beta")}))
	got, err := s.GetTenant("acme")
	must(t, err)
	if got.Name != "acme" || string(got.Grant) != "g1" {
		t.Fatalf("GetTenant = %+v", got)
	}
	must(t, s.PutTenant(store.Tenant{Name: "acme", Grant: []byte("g2")}))
	list, err := s.ListTenants()
	must(t, err)
	var parts []string
	for _, tn := range list {
		parts = append(parts, tn.Name+"="+string(tn.Grant))
	}
	if strings.Join(parts, ",") != "acme=g2,beta=g-beta,zeta=g-zeta" {
		t.Fatalf("ListTenants = %v", parts)
	}
	wantErr(t, s.PutTenant(store.Tenant{Name: "", Grant: []byte("g")}), store.ErrInvalid, "PutTenant with empty name")
	must(t, s.DeleteTenant("beta"))
	wantErr(t, s.DeleteTenant("beta"), store.ErrNotFound, "DeleteTenant of a deleted tenant")
	_, err = s.GetTenant("beta")
	wantErr(t, err, store.ErrNotFound, "GetTenant of a deleted tenant")
	if list, err = s.ListTenants(); err != nil || len(list) != 2 {
		t.Fatalf("ListTenants after delete = %v, %v", list, err)
	}
}

func auditRecord(i int) store.Audit {
	return store.Audit{
		Time:      time.Date(2026, 1, 2, 3, 4, 5, i, time.UTC),
		Container: fmt.Sprintf("c%d", i%7),
		Tenant:    "acme",
		Endpoint:  "sensor/temperature",
		Op:        "read",
		Reason:    fmt.Sprintf("denied #%d", i),
	}
}

func equalAudit(a, b store.Audit) bool {
	return a.Time.Equal(b.Time) && a.Container == b.Container && a.Tenant == b.Tenant &&
		a.Endpoint == b.Endpoint && a.Op == b.Op && a.Reason == b.Reason
}

func testAudit(t *testing.T, s store.Store) {
	list, err := s.ListAudit(0)
	must(t, err)
	if len(list) != 0 {
		t.Fatalf("fresh store has %d audit records", len(list))
	}
	for i := range 5 {
		must(t, s.AppendAudit(auditRecord(i)))
	}
	// A time with a monotonic reading and a zone survives as the same instant.
	now := time.Now().In(time.FixedZone("X", 3600))
	must(t, s.AppendAudit(store.Audit{Time: now, Reason: "now"}))
	list, err = s.ListAudit(0)
	must(t, err)
	if len(list) != 6 || !list[5].Time.Equal(now) || list[5].Reason != "now" {
		t.Fatalf("ListAudit(0) = %+v", list)
	}
	for i := range 5 {
		if !equalAudit(list[i], auditRecord(i)) {
			t.Fatalf("record %d = %+v, want %+v", i, list[i], auditRecord(i))
		}
	}
	list, err = s.ListAudit(2)
	must(t, err)
	if len(list) != 2 || !equalAudit(list[0], auditRecord(4)) || list[1].Reason != "now" {
		t.Fatalf("ListAudit(2) = %+v", list)
	}
	list, err = s.ListAudit(100)
	must(t, err)
	if len(list) != 6 {
		t.Fatalf("ListAudit(100) returned %d", len(list))
	}
}

// testAuditBound appends 25 records more than the bound. The first 9,900
// come from 8 writers at once (one transaction each, one after the other,
// was 46 s of the suite under -race; concurrent appends share group
// commits), so their order is known per writer only; the last 125 come
// from one writer, in an order known exactly. The newest 10,000 must be
// kept, oldest first: the last 125 as appended, and of each writer's, its
// newest, in its order.
func testAuditBound(t *testing.T, s store.Store) {
	const extra, writers = 25, 8
	total := store.MaxAuditRecords + extra
	concurrent := store.MaxAuditRecords - 100
	testpar.Spread(t, concurrent, writers, func(i int) error { return s.AppendAudit(auditRecord(i)) })
	for i := concurrent; i < total; i++ {
		must(t, s.AppendAudit(auditRecord(i)))
	}
	list, err := s.ListAudit(0)
	must(t, err)
	if len(list) != store.MaxAuditRecords {
		t.Fatalf("kept %d records, want %d", len(list), store.MaxAuditRecords)
	}
	tail := list[len(list)-(total-concurrent):]
	for i, a := range tail {
		if want := auditRecord(concurrent + i); !equalAudit(a, want) {
			t.Fatalf("record %d = %+v, want %+v", len(list)-len(tail)+i, a, want)
		}
	}
	// Per writer: the kept records are its newest, in order.
	kept := make([][]int, writers)
	for _, a := range list[:len(list)-len(tail)] {
		var i int
		if _, err := fmt.Sscanf(a.Reason, "denied #%d", &i); err != nil || i < 0 || i >= concurrent || !equalAudit(a, auditRecord(i)) {
			t.Fatalf("unexpected record %+v", a)
		}
		kept[i%writers] = append(kept[i%writers], i)
	}
	dropped := 0
	for w, ks := range kept {
		n := (concurrent - w + writers - 1) / writers // records writer w appended
		first := w + (n-len(ks))*writers              // its oldest kept one
		for j, i := range ks {
			if i != first+j*writers {
				t.Fatalf("writer %d: kept %v..., want its newest %d from #%d on, in order", w, ks[:min(len(ks), 5)], len(ks), first)
			}
		}
		dropped += n - len(ks)
	}
	if dropped != extra {
		t.Fatalf("dropped %d records, want %d", dropped, extra)
	}
	list, err = s.ListAudit(3)
	must(t, err)
	if len(list) != 3 || !equalAudit(list[2], auditRecord(total-1)) || !equalAudit(list[0], auditRecord(total-3)) {
		t.Fatalf("ListAudit(3) = %+v", list)
	}
}

func testAuditInvalid(t *testing.T, s store.Store) {
	a := auditRecord(1)
	a.Reason = strings.Repeat("r", store.MaxAuditField+1)
	wantErr(t, s.AppendAudit(a), store.ErrInvalid, "oversized audit field")
	a = auditRecord(1)
	a.Time = time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("odd", 40000*60)) // zone offset beyond what time can encode
	wantErr(t, s.AppendAudit(a), store.ErrInvalid, "unstorable audit time")
	list, err := s.ListAudit(0)
	must(t, err)
	if len(list) != 0 {
		t.Fatalf("invalid audit records were stored: %d", len(list))
	}
}

func testCounters(t *testing.T, s store.Store) {
	must(t, s.UseCounter("owner", 0)) // the first counter is always fresh
	wantErr(t, s.UseCounter("owner", 0), store.ErrReplay, "replayed counter")
	must(t, s.UseCounter("owner", 5))
	wantErr(t, s.UseCounter("owner", 5), store.ErrReplay, "replayed counter 5")
	wantErr(t, s.UseCounter("owner", 3), store.ErrReplay, "stale counter 3")
	must(t, s.UseCounter("tenant:acme", 1)) // signers are independent
	must(t, s.UseCounter("owner", 6))
	must(t, s.UseCounter("owner", ^uint64(0)))
	wantErr(t, s.UseCounter("owner", ^uint64(0)), store.ErrReplay, "counter at max")
	wantErr(t, s.UseCounter("", 1), store.ErrInvalid, "empty signer")
}

func testClosed(t *testing.T, s store.Store) {
	must(t, s.Put("a", "k", []byte("v"), bigQuota))
	must(t, s.Close())
	wantErr(t, s.Close(), store.ErrClosed, "second Close")
	_, err := s.Get("a", "k")
	wantErr(t, err, store.ErrClosed, "Get after Close")
	wantErr(t, s.Put("a", "k", []byte("v"), bigQuota), store.ErrClosed, "Put after Close")
	_, err = s.ListContainers()
	wantErr(t, err, store.ErrClosed, "ListContainers after Close")
	wantErr(t, s.AppendAudit(auditRecord(0)), store.ErrClosed, "AppendAudit after Close")
	wantErr(t, s.UseCounter("x", 1), store.ErrClosed, "UseCounter after Close")
}

// Hammer runs concurrent writers and readers against one store and checks
// that quotas hold and usage matches the data afterwards. Meant for -race.
func Hammer(t *testing.T, s store.Store, writers, opsPerWriter int) {
	const shared, sharedQuota = "shared", 400
	var wg sync.WaitGroup
	errc := make(chan error, writers*2+2)
	stop := make(chan struct{})
	keysOf := make([][]string, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := fmt.Sprintf("own%d", w)
			model := map[string]int{}
			for i := range opsPerWriter {
				key := fmt.Sprintf("k%d", i%13)
				switch i % 5 {
				case 0, 1, 2:
					v := bytes.Repeat([]byte{byte(w)}, i%50)
					if err := s.Put(own, key, v, bigQuota); err != nil {
						errc <- err
						return
					}
					model[key] = len(v)
				case 3:
					err := s.Delete(own, key)
					if _, ok := model[key]; ok != (err == nil) {
						errc <- fmt.Errorf("Delete(%s,%s) = %v, model has it: %v", own, key, err, ok)
						return
					}
					delete(model, key)
				case 4:
					if err := s.AppendAudit(auditRecord(i)); err != nil {
						errc <- err
						return
					}
				}
				// Everyone competes for the shared container's quota.
				sk := fmt.Sprintf("w%d-%d", w, i%7)
				err := s.Put(shared, sk, bytes.Repeat([]byte{1}, i%30), sharedQuota)
				if err != nil && !errors.Is(err, store.ErrQuota) {
					errc <- err
					return
				}
				if i < 7 {
					keysOf[w] = append(keysOf[w], sk)
				}
			}
			var want uint64
			for k, n := range model {
				want += uint64(len(k) + n)
			}
			if got, err := s.Usage(own); err != nil || got != want {
				errc <- fmt.Errorf("Usage(%s) = %d, %v; want %d", own, got, err, want)
			}
		}()
	}
	var readers sync.WaitGroup
	for r := range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if u, err := s.Usage(shared); err != nil || u > sharedQuota {
					errc <- fmt.Errorf("shared usage %d (quota %d), %v", u, sharedQuota, err)
					return
				}
				if _, err := s.Get(fmt.Sprintf("own%d", (n+r)%writers), "k1"); err != nil && !errors.Is(err, store.ErrNotFound) {
					errc <- err
					return
				}
				if _, err := s.ListAudit(10); err != nil {
					errc <- err
					return
				}
				if _, err := s.ListContainers(); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	// The shared usage equals what its keys hold.
	var sum uint64
	for _, keys := range keysOf {
		for _, k := range keys {
			v, err := s.Get(shared, k)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			must(t, err)
			sum += uint64(len(k) + len(v))
		}
	}
	wantUsage(t, s, shared, sum)
	if sum > sharedQuota {
		t.Fatalf("shared usage %d above quota %d", sum, sharedQuota)
	}
}
