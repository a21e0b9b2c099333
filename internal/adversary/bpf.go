package adversary

import (
	"bytes"
	"encoding/binary"
)

// BPF instruction with its fields.
func bpfInsn(code, dst, src uint8, off int16, imm int32) []byte {
	b := make([]byte, 8)
	b[0], b[1] = code, src<<4|dst
	binary.LittleEndian.PutUint16(b[2:], uint16(off))
	binary.LittleEndian.PutUint32(b[4:], uint32(imm))
	return b
}

// BPFSlots is an eBPF program of n instruction slots (the most the
// verifier accepts is 65,536): loads and stores through a pointer the
// compiler knows nothing of, the longest machine code per instruction
// (a bounds check against every region each), and a final exit.
func BPFSlots(n int) []byte {
	code := bpfInsn(0xb7, 1, 0, 0, 0) // r1 = 0
	for i := 0; i < n-3; i++ {
		if i%2 == 0 {
			code = append(code, bpfInsn(0x79, 2, 1, int16(i%512), 0)...) // r2 = *(u64 *)(r1+off)
		} else {
			code = append(code, bpfInsn(0x7b, 1, 2, int16(i%512), 0)...) // *(u64 *)(r1+off) = r2
		}
	}
	code = append(code, bpfInsn(0xb7, 0, 0, 0, 0)...) // r0 = 0
	code = append(code, bpfInsn(0x95, 0, 0, 0, 0)...) // exit
	return BPFObject(code)
}

// BPFObject wraps raw instructions as a minimal relocatable BPF object
// whose tc_main section holds them.
func BPFObject(code []byte) []byte {
	const ehdr, shdr = 64, 64
	strtab := []byte("\x00tc_main\x00.shstrtab\x00")
	le := binary.LittleEndian
	var b bytes.Buffer
	h := make([]byte, ehdr)
	copy(h, "\x7fELF\x02\x01\x01")
	le.PutUint16(h[16:], 1)   // ET_REL
	le.PutUint16(h[18:], 247) // EM_BPF
	le.PutUint32(h[20:], 1)
	le.PutUint64(h[40:], uint64(ehdr+len(code)+len(strtab))) // e_shoff
	le.PutUint16(h[52:], ehdr)
	le.PutUint16(h[58:], shdr)
	le.PutUint16(h[60:], 3) // null, tc_main, .shstrtab
	le.PutUint16(h[62:], 2)
	b.Write(h)
	b.Write(code)
	b.Write(strtab)
	section := func(name, typ uint32, flags, off, size, align uint64) {
		s := make([]byte, shdr)
		le.PutUint32(s[0:], name)
		le.PutUint32(s[4:], typ)
		le.PutUint64(s[8:], flags)
		le.PutUint64(s[24:], off)
		le.PutUint64(s[32:], size)
		le.PutUint64(s[48:], align)
		b.Write(s)
	}
	section(0, 0, 0, 0, 0, 0)
	section(1, 1, 0x6, ehdr, uint64(len(code)), 8)                   // PROGBITS, ALLOC|EXECINSTR
	section(9, 3, 0, uint64(ehdr+len(code)), uint64(len(strtab)), 1) // STRTAB
	return b.Bytes()
}

// BPFShapes are the eBPF shapes of issue 11.
var BPFShapes = []Shape{
	{"bpf-slots-65536", func() []byte { return BPFSlots(65536) }, false},
	{"bpf-slots-16384", func() []byte { return BPFSlots(16384) }, false},
}
