package instrument

import (
	"fmt"
	"unicode/utf8"

	"github.com/tinycontainer/tinycontainer/runtime"
)

// reader decodes the primitive encodings of the binary format. Every read
// is bounds-checked; base is the absolute offset of b[0] in the module, so
// errors point into the file.
type reader struct {
	b    []byte
	off  int
	base int
}

func (r *reader) pos() int  { return r.base + r.off }
func (r *reader) eof() bool { return r.off >= len(r.b) }
func (r *reader) left() int { return len(r.b) - r.off }

func (r *reader) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: at offset %#x: %s", runtime.ErrInvalidCode, r.pos(), fmt.Sprintf(format, args...))
}

func (r *reader) byte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, r.errorf("unexpected end of data")
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

func (r *reader) bytes(n uint32) ([]byte, error) {
	if uint64(n) > uint64(r.left()) {
		return nil, r.errorf("%d bytes wanted, %d left", n, r.left())
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s, nil
}

// u32 reads an unsigned LEB128 of at most 5 bytes whose unused high bits
// are zero, as the spec requires.
func (r *reader) u32() (uint32, error) {
	var v uint32
	for i := 0; i < 5; i++ {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if i == 4 && c&0xf0 != 0 {
			return 0, r.errorf("u32 LEB128 overflows")
		}
		v |= uint32(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, r.errorf("u32 LEB128 too long")
}

// signed reads a signed LEB128 of at most bits bits and returns its
// value. Like wazero, it ignores the padding bits of a last byte (which
// decoders disagree on checking): the instruction's length is the same to
// every decoder, and the bytes are copied as they are.
func (r *reader) signed(bits int) (int64, error) {
	var v int64
	maxBytes := (bits + 6) / 7
	for i := 0; i < maxBytes; i++ {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		shift := 7 * i
		v |= int64(c&0x7f) << shift
		if c&0x80 == 0 {
			if shift+7 < bits && c&0x40 != 0 {
				v |= -1 << (shift + 7)
			}
			return v, nil
		}
	}
	return 0, r.errorf("s%d LEB128 too long", bits)
}

// name reads a vec(byte) that must be UTF-8.
func (r *reader) name() (string, error) {
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	b, err := r.bytes(n)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", r.errorf("name is not valid UTF-8")
	}
	return string(b), nil
}

// appendU32 appends the shortest unsigned LEB128 of v.
func appendU32(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// appendS32 appends the shortest signed LEB128 of v.
func appendS32(b []byte, v int32) []byte { return appendS64(b, int64(v)) }

// appendS64 appends the shortest signed LEB128 of v.
func appendS64(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// appendSection appends a section with its id and size.
func appendSection(b []byte, id byte, payload []byte) []byte {
	b = append(b, id)
	b = appendU32(b, uint32(len(payload)))
	return append(b, payload...)
}
