package board

import (
	"encoding/binary"
	"fmt"
)

// DecodeWAV reads a RIFF/WAVE file of 16 kHz mono 16-bit PCM (what
// sensor/microphone serves) and returns its samples.
func DecodeWAV(b []byte) ([]int16, error) {
	bad := func(format string, a ...any) ([]int16, error) {
		return nil, fmt.Errorf("%w: wav: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return bad("not a RIFF/WAVE file")
	}
	var fmtOK bool
	for p := 12; p+8 <= len(b); {
		id := string(b[p : p+4])
		size := int(binary.LittleEndian.Uint32(b[p+4:]))
		body := p + 8
		if size < 0 || size > len(b)-body {
			return bad("chunk %q of %d bytes runs past the end", id, size)
		}
		switch id {
		case "fmt ":
			if size < 16 {
				return bad("fmt chunk too short")
			}
			format := binary.LittleEndian.Uint16(b[body:])
			channels := binary.LittleEndian.Uint16(b[body+2:])
			rate := binary.LittleEndian.Uint32(b[body+4:])
			bits := binary.LittleEndian.Uint16(b[body+14:])
			if format != 1 || channels != 1 || rate != 16000 || bits != 16 {
				return bad("need PCM 16 kHz mono 16-bit, have format %d, %d channels, %d Hz, %d bits", format, channels, rate, bits)
			}
			fmtOK = true
		case "data":
			if !fmtOK {
				return bad("data chunk before fmt chunk")
			}
			n := size / 2
			if n == 0 {
				return bad("no samples")
			}
			pcm := make([]int16, n)
			for i := range pcm {
				pcm[i] = int16(binary.LittleEndian.Uint16(b[body+2*i:]))
			}
			return pcm, nil
		}
		p = body + size + size&1 // chunks are padded to even sizes
	}
	return bad("no data chunk")
}
