package trust

import (
	"bytes"
	"strings"
	"sync"
	"testing"
)

func testCommand() Command {
	return Command{Verb: "meta-apply", Target: "thermo", Body: []byte(testManifest), Counter: 1700000000000000000, Device: "dev-1"}
}

func TestCommandRoundTrip(t *testing.T) {
	pub, priv := testKey(1)
	for name, c := range map[string]Command{
		"full":    testCommand(),
		"minimal": {Verb: "ps", Counter: 1},
		"max":     {Verb: strings.Repeat("a", maxVerbLen), Target: strings.Repeat("t", maxTargetLen), Device: strings.Repeat("d", maxDeviceLen), Counter: ^uint64(0)},
		"utf8":    {Verb: "stop", Target: "température", Counter: 2},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := SignCommand(c, priv)
			if err != nil {
				t.Fatal(err)
			}
			s, err := OpenCommand(b)
			if err != nil {
				t.Fatal(err)
			}
			got := s.Command
			if got.Verb != c.Verb || got.Target != c.Target || !bytes.Equal(got.Body, c.Body) ||
				got.Counter != c.Counter || got.Device != c.Device {
				t.Fatalf("round trip: got %+v, want %+v", got, c)
			}
			if s.KeyID != KeyID(pub) {
				t.Fatalf("KeyID %s, want %s", s.KeyID, KeyID(pub))
			}
			if err := s.Verify(pub); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCommandGolden(t *testing.T) {
	_, priv := testKey(1)
	b, err := SignCommand(testCommand(), priv)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, golden(t, "command.cose", b)) {
		t.Fatal("SignCommand output differs from testdata/command.cose (rerun with -update if intended)")
	}
}

func TestCommandCheckDevice(t *testing.T) {
	_, priv := testKey(1)
	b, _ := SignCommand(testCommand(), priv)
	s, err := OpenCommand(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckDevice("dev-1"); err != nil {
		t.Fatal(err)
	}
	wantClass(t, s.CheckDevice("dev-2"), ErrSignature)
	c := testCommand()
	c.Device = ""
	b, _ = SignCommand(c, priv)
	if s, err = OpenCommand(b); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckDevice("anything"); err != nil {
		t.Fatalf("unbound command refused: %v", err)
	}
}

func TestSignCommandRefusesBadInput(t *testing.T) {
	_, priv := testKey(1)
	for name, mutate := range map[string]func(*Command){
		"empty verb":     func(c *Command) { c.Verb = "" },
		"long verb":      func(c *Command) { c.Verb = strings.Repeat("a", maxVerbLen+1) },
		"upper verb":     func(c *Command) { c.Verb = "Deploy" },
		"verb space":     func(c *Command) { c.Verb = "rm x" },
		"verb leading -": func(c *Command) { c.Verb = "-rm" },
		"zero counter":   func(c *Command) { c.Counter = 0 },
		"long target":    func(c *Command) { c.Target = strings.Repeat("t", maxTargetLen+1) },
		"control target": func(c *Command) { c.Target = "a\nb" },
		"invalid utf8":   func(c *Command) { c.Target = "\xff" },
		"escape device":  func(c *Command) { c.Device = "\x1b[2J" },
		"long device":    func(c *Command) { c.Device = strings.Repeat("d", maxDeviceLen+1) },
		"oversized body": func(c *Command) { c.Body = make([]byte, MaxCommandSize) },
	} {
		t.Run(name, func(t *testing.T) {
			c := testCommand()
			mutate(&c)
			_, err := SignCommand(c, priv)
			wantClass(t, err, ErrMalformed)
		})
	}
	_, err := SignCommand(testCommand(), nil)
	wantClass(t, err, ErrKey)
}

func TestCommandTampered(t *testing.T) {
	pub, priv := testKey(1)
	b, err := SignCommand(testCommand(), priv)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x10
		s, err := OpenCommand(c)
		if err == nil {
			err = s.Verify(pub)
			if err == nil {
				t.Fatalf("byte %d: tampered command verified: %+v", i, s.Command)
			}
			wantClass(t, err, ErrSignature)
			continue
		}
		wantClass(t, err, ErrMalformed)
	}
	other, _ := testKey(2)
	s, err := OpenCommand(b)
	if err != nil {
		t.Fatal(err)
	}
	wantClass(t, s.Verify(other), ErrSignature)
	wantClass(t, (&SignedCommand{}).Verify(pub), ErrMalformed)

	hdr := headerFor(kindCommand, pub)
	for name, payload := range map[string]map[int]any{
		"zero counter":   {1: 1, 2: "stop", 5: 0},
		"no counter":     {1: 1, 2: "stop"},
		"negative count": {1: 1, 2: "stop", 5: -1},
		"no verb":        {1: 1, 5: 9},
		"verb as bytes":  {1: 1, 2: []byte("stop"), 5: 9},
		"body as text":   {1: 1, 2: "stop", 4: "text", 5: 9},
		"control target": {1: 1, 2: "stop", 3: "a\x00b", 5: 9},
		"unknown field":  {1: 1, 2: "stop", 5: 9, 7: true},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := OpenCommand(rawSign1(t, hdr, emptyMap, mustCBOR(t, payload), priv))
			wantClass(t, err, ErrMalformed)
		})
	}
	// Invalid UTF-8 in a text string is refused by the decoder itself.
	badUTF8 := []byte{0xa3, 0x01, 0x01, 0x02, 0x62, 0xc3, 0x28, 0x05, 0x09}
	_, err = OpenCommand(rawSign1Bytes(t, mustCBOR(t, hdr), emptyMap, badUTF8, priv))
	wantClass(t, err, ErrMalformed)

	// Kind confusion both ways.
	grant, err := SignGrant([]byte(testCeiling), pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenCommand(grant)
	wantClass(t, err, ErrMalformed)
	_, err = OpenImage(b)
	wantClass(t, err, ErrMalformed)
	_, err = OpenCommand(make([]byte, MaxCommandSize+1))
	wantClass(t, err, ErrMalformed)
}

// A deploy command carries a whole image in its body.
func TestCommandCarriesMaxImage(t *testing.T) {
	pub, priv := testKey(1)
	img, err := Pack([]byte(testManifest), make([]byte, MaxImageSize-1024), priv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := SignCommand(Command{Verb: "deploy", Body: img, Counter: NewCounter()}, priv)
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenCommand(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(pub); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenImage(s.Command.Body); err != nil {
		t.Fatal(err)
	}
}

func TestNewCounterStrictlyIncreases(t *testing.T) {
	const workers, each = 4, 2000
	var mu sync.Mutex
	seen := make(map[uint64]bool, workers*each)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prev := uint64(0)
			local := make([]uint64, 0, each)
			for range each {
				c := NewCounter()
				if c <= prev {
					t.Errorf("counter went from %d to %d", prev, c)
					return
				}
				prev = c
				local = append(local, c)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, c := range local {
				if seen[c] {
					t.Errorf("counter %d handed out twice", c)
				}
				seen[c] = true
			}
		}()
	}
	wg.Wait()
	// Counters are wall-clock based so that separate CLI processes keep
	// increasing: it must be at least the current time.
	if c := NewCounter(); c < 1_600_000_000_000_000_000 {
		t.Fatalf("counter %d is not Unix nanoseconds", c)
	}
}
