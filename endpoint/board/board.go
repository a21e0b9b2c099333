// Package board is the simulated board: deterministic seeded sensors and
// recording actuators, described by a board file (JSON). It registers the
// `sensor/<id>` and `actuator/<id>` endpoints (SPEC section 3).
//
// Readings are a function of the board seed, the sensor and how many
// readings that sensor has given, never of wall-clock time, so a run with
// the same seed and the same calls sees the same values.
package board

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/endpoint"
	"github.com/tinycontainer/tinycontainer/internal/lazyre"
)

// ErrInvalid is the class of board file errors.
var ErrInvalid = errors.New("invalid board file")

// File is the board file.
type File struct {
	Name      string        `json:"name"`
	Seed      uint64        `json:"seed"`
	Sensors   []SensorSpec  `json:"sensors"`
	Actuators []ActuatorRef `json:"actuators"`
}

// SensorSpec describes one simulated sensor.
//
// Models: "sine" gives base + amplitude*sin(2*pi*n/period) + uniform noise
// in [-noise, noise] per channel; "replay" plays Values back in a loop (a
// recording); "wav" streams 16 kHz mono 16-bit PCM from a WAV file, or a
// synthetic tone when WAV is empty.
type SensorSpec struct {
	ID        string  `json:"id"`
	Model     string  `json:"model"`
	Channels  int     `json:"channels,omitempty"` // sine: 1 (default) or 3 (accel)
	Base      []int32 `json:"base,omitempty"`     // per channel
	Amplitude int32   `json:"amplitude,omitempty"`
	Period    int     `json:"period,omitempty"` // readings per sine cycle
	Noise     int32   `json:"noise,omitempty"`
	Values    []int32 `json:"values,omitempty"` // replay
	WAV       string  `json:"wav,omitempty"`    // wav; relative to the board file
}

// ActuatorRef names one actuator.
type ActuatorRef struct {
	ID string `json:"id"`
}

var idRE = lazyre.New(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// Default is the board used when no file is given.
func Default(seed uint64) *File {
	return &File{
		Name: "sim", Seed: seed,
		Sensors: []SensorSpec{
			{ID: "temperature", Model: "sine", Base: []int32{21500}, Amplitude: 1500, Period: 600, Noise: 100},
			{ID: "humidity", Model: "sine", Base: []int32{45000}, Amplitude: 5000, Period: 900, Noise: 300},
			{ID: "light", Model: "sine", Base: []int32{300}, Amplitude: 250, Period: 1200, Noise: 10},
			{ID: "accel", Model: "sine", Channels: 3, Base: []int32{0, 0, 1000}, Amplitude: 40, Period: 50, Noise: 15},
			{ID: "microphone", Model: "wav"},
		},
		Actuators: []ActuatorRef{{ID: "led0"}, {ID: "led1"}},
	}
}

// Load reads and validates a board file.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for i := range f.Sensors {
		if w := f.Sensors[i].WAV; w != "" && !filepath.IsAbs(w) {
			f.Sensors[i].WAV = filepath.Join(filepath.Dir(path), w)
		}
	}
	return f, nil
}

// Parse decodes and validates a board file strictly.
func Parse(data []byte) (*File, error) {
	if len(data) > 1<<20 {
		return nil, fmt.Errorf("%w: larger than 1 MiB", ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the board object", ErrInvalid)
	}
	return &f, f.Validate()
}

// Validate checks every field, naming the one that is wrong.
func (f *File) Validate() error {
	seen := map[string]bool{}
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, field, fmt.Sprintf(format, a...))
	}
	for i, s := range f.Sensors {
		field := fmt.Sprintf("sensors[%d]", i)
		if !idRE().MatchString(s.ID) {
			return bad(field+".id", "%q is not a valid id", s.ID)
		}
		if seen["sensor/"+s.ID] {
			return bad(field+".id", "duplicate %q", s.ID)
		}
		seen["sensor/"+s.ID] = true
		switch s.Model {
		case "sine":
			ch := max(s.Channels, 1)
			if ch != 1 && ch != 3 {
				return bad(field+".channels", "must be 1 or 3")
			}
			if len(s.Base) != 0 && len(s.Base) != ch {
				return bad(field+".base", "needs %d values", ch)
			}
			if s.Period < 0 || s.Amplitude < 0 || s.Noise < 0 {
				return bad(field, "period, amplitude and noise must not be negative")
			}
		case "replay":
			if len(s.Values) == 0 || len(s.Values) > 1<<20 {
				return bad(field+".values", "needs 1..1048576 values")
			}
		case "wav":
		default:
			return bad(field+".model", "%q is not one of sine, replay, wav", s.Model)
		}
		if s.WAV != "" && s.Model != "wav" {
			return bad(field+".wav", "only for model wav")
		}
	}
	for i, a := range f.Actuators {
		field := fmt.Sprintf("actuators[%d].id", i)
		if !idRE().MatchString(a.ID) {
			return bad(field, "%q is not a valid id", a.ID)
		}
		if seen["actuator/"+a.ID] {
			return bad(field, "duplicate %q", a.ID)
		}
		seen["actuator/"+a.ID] = true
	}
	return nil
}

// Board is a running simulated board.
type Board struct {
	seed      uint64
	sensors   map[string]*sensor
	actuators map[string]*Actuator
}

// New builds a board from its file, loading WAV files.
func New(f *File) (*Board, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	b := &Board{seed: f.Seed, sensors: map[string]*sensor{}, actuators: map[string]*Actuator{}}
	for _, s := range f.Sensors {
		sn := &sensor{spec: s, seed: maphash.Comparable(seedHash, fmt.Sprint(f.Seed, "/", s.ID))}
		if s.Model == "wav" {
			if s.WAV == "" {
				sn.pcm = synthTone(f.Seed)
			} else {
				data, err := os.ReadFile(s.WAV)
				if err != nil {
					return nil, fmt.Errorf("%w: sensor %s: %v", ErrInvalid, s.ID, err)
				}
				if sn.pcm, err = DecodeWAV(data); err != nil {
					return nil, fmt.Errorf("sensor %s: %w", s.ID, err)
				}
			}
		}
		b.sensors[s.ID] = sn
	}
	for _, a := range f.Actuators {
		b.actuators[a.ID] = &Actuator{ID: a.ID}
	}
	return b, nil
}

var seedHash = maphash.MakeSeed()

// Register adds the board's endpoints to reg.
func (b *Board) Register(reg *endpoint.Registry) {
	for id, s := range b.sensors {
		reg.Register("sensor/"+id, s)
	}
	for id, a := range b.actuators {
		reg.Register("actuator/"+id, a)
	}
}

// Actuator returns the actuator id, or nil.
func (b *Board) Actuator(id string) *Actuator { return b.actuators[id] }

// Read returns the next reading of a non-audio sensor (for tests and tools).
func (b *Board) Read(id string) ([]int32, bool) {
	s, ok := b.sensors[id]
	if !ok || s.spec.Model == "wav" {
		return nil, false
	}
	return s.next(), true
}

type sensor struct {
	spec SensorSpec
	seed uint64
	n    atomic.Uint64 // readings given
	pcm  []int16
	pos  atomic.Uint64 // next PCM sample
}

func (*sensor) Ops() abi.OpSet { return abi.OpSetOf(abi.OpRead) }

// noise is a deterministic value in [-1, 1] for (seed, n, channel).
func noise(seed, n uint64, ch int) float64 {
	x := seed ^ (n*0x9E3779B97F4A7C15 + uint64(ch)*0xBF58476D1CE4E5B9)
	x ^= x >> 31
	x *= 0x94D049BB133111EB
	x ^= x >> 29
	return float64(x>>11)/float64(1<<52) - 1
}

func (s *sensor) next() []int32 {
	n := s.n.Add(1) - 1
	sp := s.spec
	if sp.Model == "replay" {
		return []int32{sp.Values[n%uint64(len(sp.Values))]}
	}
	ch := max(sp.Channels, 1)
	out := make([]int32, ch)
	for c := range out {
		v := 0.0
		if c < len(sp.Base) {
			v = float64(sp.Base[c])
		}
		if sp.Period > 0 {
			v += float64(sp.Amplitude) * math.Sin(2*math.Pi*float64(n%uint64(sp.Period))/float64(sp.Period)+float64(c))
		}
		v += float64(sp.Noise) * noise(s.seed, n, c)
		out[c] = int32(math.Round(v))
	}
	return out
}

func (s *sensor) Call(_ *endpoint.Call, _ abi.Op, _, out []byte) int32 {
	if s.spec.Model == "wav" {
		return s.readPCM(out)
	}
	ch := max(s.spec.Channels, 1)
	if len(out) < 4*ch {
		return abi.EMSGSIZE.Result()
	}
	for i, v := range s.next() {
		binary.LittleEndian.PutUint32(out[4*i:], uint32(v))
	}
	return int32(4 * ch)
}

// readPCM fills out with whole samples from the stream, looping at the end.
func (s *sensor) readPCM(out []byte) int32 {
	k := uint64(len(out) / 2)
	if k == 0 {
		return abi.EMSGSIZE.Result()
	}
	if len(s.pcm) == 0 {
		return abi.EAGAIN.Result()
	}
	start := s.pos.Add(k) - k
	L := uint64(len(s.pcm))
	for i := uint64(0); i < k; i++ {
		binary.LittleEndian.PutUint16(out[2*i:], uint16(s.pcm[(start+i)%L]))
	}
	return int32(2 * k)
}

// synthTone is one second of a 440 Hz tone with seeded noise.
func synthTone(seed uint64) []int16 {
	pcm := make([]int16, 16000)
	for i := range pcm {
		v := 6000*math.Sin(2*math.Pi*440*float64(i)/16000) + 500*noise(seed, uint64(i), 0)
		pcm[i] = int16(v)
	}
	return pcm
}

// Write is one recorded actuator write.
type Write struct {
	Time  time.Time
	By    string // container
	Value int32
}

// maxHistory bounds the recorded writes per actuator.
const maxHistory = 1024

// Actuator is a simulated actuator that records what it is told.
type Actuator struct {
	ID      string
	value   atomic.Int32
	mu      sync.Mutex
	history []Write
}

func (*Actuator) Ops() abi.OpSet { return abi.OpSetOf(abi.OpRead, abi.OpWrite) }

// Value is the current value.
func (a *Actuator) Value() int32 { return a.value.Load() }

// History returns the recorded writes, oldest first (the newest maxHistory).
func (a *Actuator) History() []Write {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Write(nil), a.history...)
}

func (a *Actuator) Call(c *endpoint.Call, op abi.Op, in, out []byte) int32 {
	if op == abi.OpRead {
		if len(out) < 4 {
			return abi.EMSGSIZE.Result()
		}
		binary.LittleEndian.PutUint32(out, uint32(a.value.Load()))
		return 4
	}
	if len(in) != 4 {
		return abi.EINVAL.Result()
	}
	v := int32(binary.LittleEndian.Uint32(in))
	a.value.Store(v)
	a.mu.Lock()
	if len(a.history) == maxHistory {
		a.history = append(a.history[:0], a.history[1:]...)
	}
	a.history = append(a.history, Write{Time: time.Now(), By: c.Container(), Value: v})
	a.mu.Unlock()
	return 0
}
