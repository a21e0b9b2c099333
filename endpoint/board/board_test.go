package board

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/endpoint"
)

func TestReadingsAreDeterministicPerSeed(t *testing.T) {
	read := func(seed uint64) []int32 {
		b, err := New(Default(seed))
		if err != nil {
			t.Fatal(err)
		}
		var out []int32
		for range 50 {
			v, _ := b.Read("temperature")
			out = append(out, v...)
			v, _ = b.Read("accel")
			out = append(out, v...)
		}
		return out
	}
	a, b, c := read(7), read(7), read(8)
	if !equal(a, b) {
		t.Fatal("same seed, different readings")
	}
	if equal(a, c) {
		t.Fatal("different seeds, same readings")
	}
	for i := 0; i < len(a); i += 4 {
		if a[i] < 19000 || a[i] > 24000 {
			t.Fatalf("temperature %d mC out of the modelled range", a[i])
		}
	}
}

func equal(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReplayAndActuatorRecording(t *testing.T) {
	f := &File{Seed: 1,
		Sensors:   []SensorSpec{{ID: "door", Model: "replay", Values: []int32{0, 1, 1}}},
		Actuators: []ActuatorRef{{ID: "relay"}},
	}
	b, err := New(f)
	if err != nil {
		t.Fatal(err)
	}
	reg := endpoint.NewRegistry()
	b.Register(reg)
	ep, ok := reg.Lookup("sensor/door")
	if !ok {
		t.Fatal("sensor/door not registered")
	}
	out := make([]byte, 4)
	var got []int32
	for range 5 {
		if n := ep.Call(endpoint.NewTestCall(endpoint.CallContext{}), abi.OpRead, nil, out); n != 4 {
			t.Fatalf("read = %d", n)
		}
		got = append(got, int32(binary.LittleEndian.Uint32(out)))
	}
	if !equal(got, []int32{0, 1, 1, 0, 1}) {
		t.Fatalf("replay = %v", got)
	}
	act, _ := reg.Lookup("actuator/relay")
	s := endpoint.NewTestCall(endpoint.CallContext{Container: "c"})
	binary.LittleEndian.PutUint32(out, 5)
	if act.Call(s, abi.OpWrite, out, nil) != 0 || b.Actuator("relay").Value() != 5 {
		t.Fatal("write not applied")
	}
	if act.Call(s, abi.OpWrite, out[:3], nil) != abi.EINVAL.Result() {
		t.Fatal("short write accepted")
	}
	h := b.Actuator("relay").History()
	if len(h) != 1 || h[0].By != "c" || h[0].Value != 5 {
		t.Fatalf("history = %+v", h)
	}
	if act.Call(s, abi.OpRead, nil, out[:2]) != abi.EMSGSIZE.Result() {
		t.Fatal("small read buffer accepted")
	}
}

func wav(samples []int16, rate uint32, channels uint16) []byte {
	var b bytes.Buffer
	data := make([]byte, 2*len(samples))
	for i, s := range samples {
		binary.LittleEndian.PutUint16(data[2*i:], uint16(s))
	}
	b.WriteString("RIFF")
	binary.Write(&b, binary.LittleEndian, uint32(36+len(data)))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), channels, rate, rate * 2, uint16(2), uint16(16)} {
		binary.Write(&b, binary.LittleEndian, v)
	}
	b.WriteString("data")
	binary.Write(&b, binary.LittleEndian, uint32(len(data)))
	b.Write(data)
	return b.Bytes()
}

func TestMicrophoneStreamsWAV(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.wav"), wav([]int16{1, -2, 3}, 16000, 1), 0o644); err != nil {
		t.Fatal(err)
	}
	bf := filepath.Join(dir, "board.json")
	os.WriteFile(bf, []byte(`{"name":"x","seed":3,"sensors":[{"id":"microphone","model":"wav","wav":"a.wav"}]}`), 0o644)
	f, err := Load(bf)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(f)
	if err != nil {
		t.Fatal(err)
	}
	s := b.sensors["microphone"]
	out := make([]byte, 9) // room for 4 whole samples
	if n := s.Call(nil, abi.OpRead, nil, out); n != 8 {
		t.Fatalf("read %d bytes", n)
	}
	want := []int16{1, -2, 3, 1}
	for i, w := range want {
		if got := int16(binary.LittleEndian.Uint16(out[2*i:])); got != w {
			t.Fatalf("sample %d = %d, want %d", i, got, w)
		}
	}
	if n := s.Call(nil, abi.OpRead, nil, out[:1]); n != abi.EMSGSIZE.Result() {
		t.Fatalf("1-byte buffer: %d", n)
	}
}

func TestBadBoardFiles(t *testing.T) {
	cases := map[string]string{
		`{"sensors":[{"id":"Bad","model":"sine"}]}`:                         "sensors[0].id",
		`{"sensors":[{"id":"a","model":"sine"},{"id":"a","model":"sine"}]}`: "sensors[1].id",
		`{"sensors":[{"id":"a","model":"warp"}]}`:                           "sensors[0].model",
		`{"sensors":[{"id":"a","model":"sine","channels":2}]}`:              "sensors[0].channels",
		`{"sensors":[{"id":"a","model":"replay"}]}`:                         "sensors[0].values",
		`{"sensors":[{"id":"a","model":"sine","wav":"x.wav"}]}`:             "sensors[0].wav",
		`{"actuators":[{"id":""}]}`:                                         "actuators[0].id",
		`{"sensorz":[]}`:                                                    "unknown field",
		`{"name":"a"} {"name":"b"}`:                                         "trailing",
		`{"sensors":[{"id":"a","model":"sine","base":[1,2],"channels":1}]}`: "sensors[0].base",
		`{"sensors":[{"id":"a","model":"sine","amplitude":-1,"period":3}]}`: "sensors[0]",
	}
	for in, field := range cases {
		_, err := Parse([]byte(in))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: err = %v, want one naming %q", in, err, field)
		}
	}
}

func TestBadWAV(t *testing.T) {
	good := wav([]int16{1, 2}, 16000, 1)
	for name, b := range map[string][]byte{
		"empty":      nil,
		"not riff":   []byte("RIFX0000WAVE"),
		"8 kHz":      wav([]int16{1}, 8000, 1),
		"stereo":     wav([]int16{1}, 16000, 2),
		"truncated":  good[:len(good)-3],
		"no samples": wav(nil, 16000, 1),
		"huge chunk": append(append([]byte{}, good[:40]...), 0xff, 0xff, 0xff, 0x7f),
	} {
		if _, err := DecodeWAV(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func FuzzDecodeWAV(f *testing.F) {
	f.Add(wav([]int16{1, 2, 3}, 16000, 1))
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVEdata\x04\x00\x00\x00abcd"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pcm, err := DecodeWAV(b)
		if err == nil && len(pcm)*2 > len(b) {
			t.Fatalf("%d samples from %d bytes", len(pcm), len(b))
		}
	})
}

func FuzzParseBoard(f *testing.F) {
	f.Add([]byte(`{"name":"x","seed":3,"sensors":[{"id":"t","model":"sine","base":[1],"period":4}],"actuators":[{"id":"l"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		bf, err := Parse(b)
		if err != nil {
			return
		}
		for i := range bf.Sensors {
			bf.Sensors[i].WAV = "" // no file access from fuzzed input
			if bf.Sensors[i].Model == "wav" {
				continue
			}
		}
		brd, err := New(bf)
		if err != nil {
			return
		}
		for id := range brd.sensors {
			brd.Read(id)
		}
	})
}
