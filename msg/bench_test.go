package msg

import (
	"encoding/binary"
	"slices"
	"testing"
	"time"
)

// BenchmarkPublish measures one publish fanned out to one matching
// subscription that is drained inline; allocs/op is the payload copy.
func BenchmarkPublish(b *testing.B) {
	bus := NewBus(Options{})
	s := mustSub(b, bus, "s", []string{"acme/+/temp"}, 0, nil)
	for i := range 8 { // non-matching neighbours, as on a shared device
		mustSub(b, bus, "n", []string{"other" + string(rune('a'+i)) + "/#"}, 0, nil)
	}
	payload := make([]byte, 32)
	b.ReportAllocs()
	for b.Loop() {
		if err := bus.Publish("c", "acme/dev1/temp", payload); err != nil {
			b.Fatal(err)
		}
		s.Next()
	}
}

// BenchmarkLatency measures the time from Publish to the consumer goroutine
// holding the message via notify + Next, one message in flight at a time.
func BenchmarkLatency(b *testing.B) {
	bus := NewBus(Options{})
	wake := make(chan struct{}, 1)
	s := mustSub(b, bus, "s", []string{"lat"}, 0, func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	base := time.Now()
	lat := make([]time.Duration, 0, 1<<16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range wake {
			m, ok := s.Next()
			if !ok {
				continue
			}
			if len(m.Payload) == 0 { // the stop marker
				return
			}
			sent := time.Duration(binary.LittleEndian.Uint64(m.Payload))
			lat = append(lat, time.Since(base)-sent)
			done <- struct{}{}
		}
	}()
	var buf [8]byte
	for b.Loop() {
		binary.LittleEndian.PutUint64(buf[:], uint64(time.Since(base)))
		if err := bus.Publish("c", "lat", buf[:]); err != nil {
			b.Fatal(err)
		}
		<-done
	}
	_ = bus.Publish("c", "lat", nil)
	<-done
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}
