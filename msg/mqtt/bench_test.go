package mqtt

import (
	"github.com/tinycontainer/tinycontainer/internal/testbroker"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/msg"
)

// BenchmarkRoundTrip measures messages per second from Bus.Publish through
// the bridge to mosquitto and back (the broker's echo) into a subscription,
// keeping at most window messages in flight so neither mosquitto's per-client
// queue nor ours drops any.
func BenchmarkRoundTrip(b *testing.B) {
	br := testbroker.Start(b)
	const window = 64
	bus := msg.NewBus(msg.Options{MaxQueueLen: 4 * window})
	wake := make(chan struct{}, 1)
	sub, err := bus.Subscribe("bench", []string{"bench/#"}, 4*window, func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	bridge := dial(b, br, bus, Options{QueueLen: 4 * window})
	syncSubs(b, bridge)
	payload := make([]byte, 32)

	received, inFlight := 0, 0
	wait := func() {
		select {
		case <-wake:
		case <-time.After(10 * time.Second):
			b.Fatalf("round trip stalled: %d in flight, bridge %+v", inFlight, bridge.Stats())
		}
	}
	start := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		for inFlight >= window {
			wait()
			for {
				if _, ok := sub.Next(); !ok {
					break
				}
				received++
				inFlight--
			}
		}
		if err := bus.Publish("bench", "bench/x", payload); err != nil {
			b.Fatal(err)
		}
		inFlight++
	}
	for inFlight > 0 {
		wait()
		for {
			if _, ok := sub.Next(); !ok {
				break
			}
			received++
			inFlight--
		}
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(received)/elapsed.Seconds(), "msgs/s")
	if st := sub.Stats(); st.Dropped != 0 || bridge.Stats().OutDropped != 0 {
		b.Fatalf("messages dropped: sub %+v, bridge %+v", st, bridge.Stats())
	}
}
