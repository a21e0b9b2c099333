package device

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
	"unicode/utf8"

	eplog "github.com/tinycontainer/tinycontainer/endpoint/log"
)

// The file of one container's retained log lines (docs/notes/device.md):
//
//	header: "tclog1\n", tenant length (1 byte), tenant
//	record: payload length (u32 LE), CRC-32C of the payload (u32 LE),
//	        payload = seq (u64 LE), time (Unix ns, i64 LE), text (UTF-8)
//
// Records are appended; a torn or corrupt tail (a crash in the middle of
// an append) ends the file where the last good record ends.
const logMagic = "tclog1\n"

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errLogFile marks a log file whose header does not decode.
var errLogFile = errors.New("not a container log file")

// fileLine is one decoded record.
type fileLine struct {
	seq  uint64
	time time.Time
	text string
}

func appendLogHeader(b []byte, tenant string) []byte {
	b = append(b, logMagic...)
	b = append(b, byte(len(tenant)))
	return append(b, tenant...)
}

func appendLogRecord(b []byte, seq uint64, t time.Time, text string) []byte {
	n := 16 + len(text)
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	at := len(b)
	b = binary.LittleEndian.AppendUint32(b, 0)
	p := len(b)
	b = binary.LittleEndian.AppendUint64(b, seq)
	b = binary.LittleEndian.AppendUint64(b, uint64(t.UnixNano()))
	b = append(b, text...)
	binary.LittleEndian.PutUint32(b[at:], crc32.Checksum(b[p:], crcTable))
	return b
}

// decodeLogFile returns the tenant and the good records of a log file, in
// file order, and the length of the good prefix. Records whose seq does not
// increase are skipped.
func decodeLogFile(b []byte) (tenant string, lines []fileLine, good int, err error) {
	if len(b) < len(logMagic)+1 || string(b[:len(logMagic)]) != logMagic {
		return "", nil, 0, errLogFile
	}
	tl := int(b[len(logMagic)])
	off := len(logMagic) + 1
	if len(b) < off+tl || !utf8.Valid(b[off:off+tl]) {
		return "", nil, 0, fmt.Errorf("%w: tenant", errLogFile)
	}
	tenant = string(b[off : off+tl])
	off += tl
	good = off
	var last uint64
	for len(b)-off >= 8 {
		n := int(binary.LittleEndian.Uint32(b[off:]))
		sum := binary.LittleEndian.Uint32(b[off+4:])
		if n < 16 || n > 16+eplog.MaxLine || len(b)-off-8 < n {
			break
		}
		p := b[off+8 : off+8+n]
		if crc32.Checksum(p, crcTable) != sum || !utf8.Valid(p[16:]) {
			break
		}
		off += 8 + n
		good = off
		seq := binary.LittleEndian.Uint64(p)
		if seq <= last {
			continue
		}
		last = seq
		lines = append(lines, fileLine{seq: seq, time: time.Unix(0, int64(binary.LittleEndian.Uint64(p[8:]))), text: string(p[16:])})
	}
	return tenant, lines, good, nil
}
