package memstore

import (
	"fmt"
	"testing"
)

func BenchmarkPut(b *testing.B) {
	s := New()
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
	s := New()
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
