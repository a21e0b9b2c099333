package boltstore

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/tinycontainer/tinycontainer/store"
)

// BenchmarkPut is one fsynced bbolt commit per kv put.
func BenchmarkPut(b *testing.B) {
	s, _ := openTemp(b)
	defer s.Close()
	val := make([]byte, 64)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := s.Put("bench", fmt.Sprintf("key%05d", i%1000), val, 1<<30); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkGet(b *testing.B) {
	s, _ := openTemp(b)
	defer s.Close()
	val := make([]byte, 64)
	for i := range 1000 {
		if err := s.Put("bench", fmt.Sprintf("key%05d", i), val, 1<<30); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Get("bench", "key00500"); err != nil {
			b.Fatal(err)
		}
	}
}

func benchContainer(i int, version uint64) store.Container {
	return store.Container{Name: fmt.Sprintf("c%03d", i), Tenant: "acme", Version: version,
		Image: bytes.Repeat([]byte{byte(version)}, 13<<10), Manifest: []byte(`{"name":"c","version":1}`),
		State: store.StateRunning}
}

// BenchmarkPutContainer13KB installs a 13 KB image: the cost of an fsynced
// commit that spans overflow pages.
func BenchmarkPutContainer13KB(b *testing.B) {
	s, _ := openTemp(b)
	defer s.Close()
	b.ReportAllocs()
	var v uint64
	for b.Loop() {
		v++
		if err := s.PutContainer(benchContainer(int(v%10), v)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReopen100 is Open (lock, page verification, record check) plus
// Close of a state with 100 containers of 13 KB and 10 kv pairs each.
func BenchmarkReopen100(b *testing.B) {
	s, dir := openTemp(b)
	for i := range 100 {
		if err := s.PutContainer(benchContainer(i, 1)); err != nil {
			b.Fatal(err)
		}
		for k := range 10 {
			if err := s.Put(fmt.Sprintf("c%03d", i), fmt.Sprintf("k%d", k), make([]byte, 32), 1<<20); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
