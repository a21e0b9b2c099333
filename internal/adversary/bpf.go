package adversary

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
)

// BPF opcodes the shapes use.
const (
	bpfMovK  = 0xb7 // dst = imm
	bpfLdxDW = 0x79 // dst = *(u64 *)(src+off)
	bpfStxDW = 0x7b // *(u64 *)(dst+off) = src
	bpfLDDW  = 0x18 // dst = imm64 (two slots)
	bpfJEqK  = 0x15 // if dst == imm goto +off
	bpfJNeK  = 0x55 // if dst != imm goto +off
	bpfCall  = 0x85 // helper (src 0) or bpf-to-bpf (src 1) call
	bpfExit  = 0x95
)

// MaxBPFSlots is the longest eBPF program the verifier accepts.
const MaxBPFSlots = 1 << 16

// ELF section types and flags the builder uses.
const (
	shtProgbits  = 1
	shtSymtab    = 2
	shtStrtab    = 3
	shtRel       = 9
	shfWrite     = 0x1
	shfAlloc     = 0x2
	shfExec      = 0x4
	shfCompress  = 0x800
	relBPF64     = 1 // R_BPF_64_64: the immediate of an lddw
	compressZlib = 1
	compressZstd = 2
)

// bpfInsn is one instruction slot.
func bpfInsn(code, dst, src uint8, off int16, imm int32) []byte {
	b := make([]byte, 8)
	b[0], b[1] = code, src<<4|dst
	binary.LittleEndian.PutUint16(b[2:], uint16(off))
	binary.LittleEndian.PutUint32(b[4:], uint32(imm))
	return b
}

// bpfEnd ends a program: r0 = 0; exit.
func bpfEnd(code []byte) []byte {
	code = append(code, bpfInsn(bpfMovK, 0, 0, 0, 0)...)
	return append(code, bpfInsn(bpfExit, 0, 0, 0, 0)...)
}

// BPFSlots is an eBPF program of n instruction slots (the most the
// verifier accepts is 65,536): loads and stores through a pointer the
// compiler knows nothing of, the longest machine code per instruction
// (a bounds check against every region each), and a final exit.
func BPFSlots(n int) []byte {
	code := bpfInsn(bpfMovK, 1, 0, 0, 0) // r1 = 0
	for i := 0; i < n-3; i++ {
		if i%2 == 0 {
			code = append(code, bpfInsn(bpfLdxDW, 2, 1, int16(i%512), 0)...)
		} else {
			code = append(code, bpfInsn(bpfStxDW, 1, 2, int16(i%512), 0)...)
		}
	}
	return BPFObject(bpfEnd(code))
}

// BPFHelperCalls is a program of n slots that are nearly all helper calls
// (tc.call, with whatever the argument registers hold): each is a trip to
// the host in machine code, with a budget check.
func BPFHelperCalls(n int) []byte {
	var code []byte
	for range n - 2 {
		code = append(code, bpfInsn(bpfCall, 0, 0, 0, 2)...)
	}
	return BPFObject(bpfEnd(code))
}

// BPFJumps is a program of n slots that are nearly all conditional
// jumps, alternately to the far end of the program and back to its
// start: the longest branch encodings and a back edge (a budget check)
// every other slot.
func BPFJumps(n int) []byte {
	code := bpfInsn(bpfMovK, 1, 0, 0, 0)
	last := n - 2 // the r0 = 0 before exit
	for i := 1; i < last; i++ {
		var off int
		op := uint8(bpfJEqK)
		if i%2 == 0 {
			off = last - i - 1 // forward, to the end
		} else {
			op, off = bpfJNeK, -i // back, to slot 0 (never taken: r1 is 0)
		}
		if off > 32767 || off < -32768 {
			off = 0
		}
		code = append(code, bpfInsn(op, 1, 0, int16(off), int32(i))...)
	}
	return BPFObject(bpfEnd(code))
}

// BPFCallChain is a program of n functions, each calling the next
// (bpf-to-bpf calls far deeper than the run-time limit of 8 frames: the
// verifier works out the depth, the run faults).
func BPFCallChain(n int) []byte {
	var code []byte
	for range n - 1 {
		code = append(code, bpfInsn(bpfCall, 0, 1, 0, 1)...) // call the next function
		code = append(code, bpfInsn(bpfExit, 0, 0, 0, 0)...)
	}
	return BPFObject(bpfEnd(code))
}

// BPFLddw is a program of n slots of 64-bit immediate loads.
func BPFLddw(n int) []byte {
	var code []byte
	for i := 0; i+4 <= n; i += 2 {
		code = append(code, bpfInsn(bpfLDDW, 1, 0, 0, int32(i))...)
		code = append(code, bpfInsn(0, 0, 0, 0, int32(i>>1))...)
	}
	return BPFObject(bpfEnd(code))
}

// ELFSection is a section of an object built by BPFELF. Shared, when
// non-zero, gives the section the file bytes of section Shared (1-based,
// in the order given) instead of its own: sections overlapping in the
// file, which ELF readers accept.
type ELFSection struct {
	Name       string
	Type       uint32
	Flags      uint64
	Data       []byte
	Link, Info uint32
	Align      uint64
	EntSize    uint64
	Shared     int
	Size       uint64 // header's size when Data is nil and Shared is 0 (NOBITS)
}

// BPFObject wraps raw instructions as a minimal relocatable BPF object
// whose tc_main section holds them.
func BPFObject(code []byte) []byte {
	return BPFELF([]ELFSection{TextSection(code)}, nil)
}

// TextSection is a tc_main section holding code.
func TextSection(code []byte) ELFSection {
	return ELFSection{Name: "tc_main", Type: shtProgbits, Flags: shfAlloc | shfExec, Data: code, Align: 8}
}

// BPFELF builds a relocatable BPF object of secs (section i+1 is secs[i])
// and a final section-name table. names, when set, rewrites that table's
// contents and flags (to compress it).
func BPFELF(secs []ELFSection, names func([]byte) ([]byte, uint64)) []byte {
	const ehdr, shdr = 64, 64
	strtab := []byte{0}
	nameAt := make([]uint32, len(secs)+1)
	for i, s := range secs {
		nameAt[i] = uint32(len(strtab))
		strtab = append(append(strtab, s.Name...), 0)
	}
	nameAt[len(secs)] = uint32(len(strtab))
	strtab = append(strtab, ".shstrtab\x00"...)
	namesFlags := uint64(0)
	if names != nil {
		strtab, namesFlags = names(strtab)
	}
	le := binary.LittleEndian
	var body bytes.Buffer
	offs := make([]uint64, len(secs))
	sizes := make([]uint64, len(secs))
	for i, s := range secs {
		switch {
		case s.Shared > 0:
			offs[i], sizes[i] = offs[s.Shared-1], sizes[s.Shared-1]
		case s.Data == nil:
			offs[i], sizes[i] = ehdr+uint64(body.Len()), s.Size
		default:
			for body.Len()%8 != 0 {
				body.WriteByte(0)
			}
			offs[i], sizes[i] = ehdr+uint64(body.Len()), uint64(len(s.Data))
			body.Write(s.Data)
		}
	}
	namesOff := ehdr + uint64(body.Len())
	body.Write(strtab)
	for body.Len()%8 != 0 {
		body.WriteByte(0)
	}
	h := make([]byte, ehdr)
	copy(h, "\x7fELF\x02\x01\x01")
	le.PutUint16(h[16:], 1)   // ET_REL
	le.PutUint16(h[18:], 247) // EM_BPF
	le.PutUint32(h[20:], 1)
	le.PutUint64(h[40:], ehdr+uint64(body.Len())) // e_shoff
	le.PutUint16(h[52:], ehdr)
	le.PutUint16(h[58:], shdr)
	le.PutUint16(h[60:], uint16(len(secs)+2))
	le.PutUint16(h[62:], uint16(len(secs)+1))
	var b bytes.Buffer
	b.Grow(ehdr + body.Len() + (len(secs)+2)*shdr)
	b.Write(h)
	b.Write(body.Bytes())
	section := func(name, typ uint32, flags, off, size uint64, link, info uint32, align, entsize uint64) {
		s := make([]byte, shdr)
		le.PutUint32(s[0:], name)
		le.PutUint32(s[4:], typ)
		le.PutUint64(s[8:], flags)
		le.PutUint64(s[24:], off)
		le.PutUint64(s[32:], size)
		le.PutUint32(s[40:], link)
		le.PutUint32(s[44:], info)
		le.PutUint64(s[48:], align)
		le.PutUint64(s[56:], entsize)
		b.Write(s)
	}
	section(0, 0, 0, 0, 0, 0, 0, 0, 0)
	for i, s := range secs {
		section(nameAt[i], s.Type, s.Flags, offs[i], sizes[i], s.Link, s.Info, s.Align, s.EntSize)
	}
	section(nameAt[len(secs)], shtStrtab, namesFlags, namesOff, uint64(len(strtab)), 0, 0, 1, 0)
	return b.Bytes()
}

// BPFRelocs is a program of n slots of lddw instructions, each loading
// the address of its own symbol in .rodata through a relocation: the
// loader's whole symbol and relocation path at its longest.
func BPFRelocs(n int) []byte {
	var code, rodata, rels []byte
	syms := make([]byte, 24) // symbol 0 is null
	strs := []byte{0}
	le := binary.LittleEndian
	k := 0
	for ; 2*k+4 <= n; k++ {
		code = append(code, bpfInsn(bpfLDDW, 1, 0, 0, 0)...)
		code = append(code, bpfInsn(0, 0, 0, 0, 0)...)
		rodata = le.AppendUint64(rodata, uint64(k))
		s := make([]byte, 24)
		le.PutUint32(s[0:], uint32(len(strs)))
		s[4] = 1               // STB_LOCAL, STT_OBJECT
		le.PutUint16(s[6:], 2) // in section 2 (.rodata)
		le.PutUint64(s[8:], uint64(8*k))
		le.PutUint64(s[16:], 8)
		syms = append(syms, s...)
		strs = fmt.Appendf(strs, "v%d\x00", k)
		rels = le.AppendUint64(rels, uint64(16*k))
		rels = le.AppendUint64(rels, uint64(k+1)<<32|relBPF64)
	}
	return BPFELF([]ELFSection{
		TextSection(bpfEnd(code)),
		{Name: ".rodata", Type: shtProgbits, Flags: shfAlloc, Data: rodata, Align: 8},
		{Name: ".symtab", Type: shtSymtab, Data: syms, Link: 4, Info: 1, Align: 8, EntSize: 24},
		{Name: ".strtab", Type: shtStrtab, Data: strs, Align: 1},
		{Name: ".reltc_main", Type: shtRel, Data: rels, Link: 3, Info: 1, Align: 8, EntSize: 16},
	}, nil)
}

// BPFRelOverlap is an object whose n relocation sections all apply to
// tc_main and all name the same size bytes of the file (empty
// relocations): n times more relocations to read than the object holds.
func BPFRelOverlap(n, size int) []byte {
	secs := []ELFSection{
		TextSection(bpfEnd(nil)),
		{Name: ".rel", Type: shtRel, Data: make([]byte, size&^15), Info: 1, Align: 8, EntSize: 16},
	}
	for range n - 1 {
		secs = append(secs, ELFSection{Name: ".rel", Type: shtRel, Shared: 2, Info: 1, Align: 8, EntSize: 16})
	}
	return BPFELF(secs, nil)
}

// BPFDataSections is an object with n read-only data sections sharing
// the same 8 bytes of the file.
func BPFDataSections(n int) []byte {
	secs := []ELFSection{
		TextSection(bpfEnd(nil)),
		{Name: ".rodata", Type: shtProgbits, Flags: shfAlloc, Data: make([]byte, 8), Align: 8},
	}
	for range n - 1 {
		secs = append(secs, ELFSection{Name: ".rodata", Type: shtProgbits, Flags: shfAlloc, Shared: 2, Align: 8})
	}
	return BPFELF(secs, nil)
}

// zstdRLE is a zstd frame of blocks run-length blocks of 128 KiB each:
// four bytes each, 32,768 times their size decompressed.
func zstdRLE(blocks int) []byte {
	b := []byte{0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x38} // magic; no size, no checksum; 128 KiB window
	for i := range blocks {
		h := uint32(128<<10)<<3 | 1<<1 // RLE block of 128 KiB
		if i == blocks-1 {
			h |= 1
		}
		b = append(b, byte(h), byte(h>>8), byte(h>>16), 0)
	}
	return b
}

// zlibZeros is a zlib stream of about size bytes that inflates about
// 1,000 times: one compressed MiB of zeros, repeated.
func zlibZeros(size int) []byte {
	var one bytes.Buffer
	w, _ := zlib.NewWriterLevel(&one, zlib.BestCompression)
	w.Write(make([]byte, 1<<20))
	w.Flush() // ends on a byte boundary: the block can be repeated
	head, block := one.Bytes()[:2], one.Bytes()[2:]
	out := append([]byte{}, head...)
	for len(out)+len(block) <= size {
		out = append(out, block...)
	}
	return out
}

// compressed is a section's contents as an ELF compressed section: the
// 64-bit compression header claiming size bytes, then payload.
func compressed(kind uint32, size uint64, payload []byte) []byte {
	h := make([]byte, 24)
	binary.LittleEndian.PutUint32(h[0:], kind)
	binary.LittleEndian.PutUint64(h[8:], size)
	binary.LittleEndian.PutUint64(h[16:], 1)
	return append(h, payload...)
}

// BPFZstdNames is an object of about size bytes whose section-name
// table is zstd-compressed run-length blocks: 32,768 times size once
// inflated (a 4 MiB object, 128 GiB). ELF readers inflate that table
// while they open the file.
func BPFZstdNames(size int) []byte {
	blocks := max(size/4, 1)
	return BPFELF([]ELFSection{TextSection(bpfEnd(nil))}, func([]byte) ([]byte, uint64) {
		return compressed(compressZstd, uint64(blocks)<<17, zstdRLE(blocks)), shfCompress
	})
}

// BPFZlibStrings is an object of about size bytes whose symbol names
// are a zlib-compressed table of zeros, 1,000 times size inflated.
func BPFZlibStrings(size int) []byte {
	z := zlibZeros(size)
	return BPFELF([]ELFSection{
		TextSection(bpfEnd(nil)),
		{Name: ".symtab", Type: shtSymtab, Data: make([]byte, 48), Link: 3, Info: 2, Align: 8, EntSize: 24},
		{Name: ".strtab", Type: shtStrtab, Flags: shfCompress, Data: compressed(compressZlib, uint64(len(z))*1024, z), Align: 1},
	}, nil)
}

// BPFZdebugData is an object of about size bytes with a read-only data
// section named .zdebug_rodata in the old GNU compressed form ("ZLIB",
// its size, a zlib stream): readers that honour the name inflate it.
func BPFZdebugData(size int) []byte {
	z := zlibZeros(size)
	data := append([]byte("ZLIB"), binary.BigEndian.AppendUint64(nil, uint64(len(z))*1024)...)
	return BPFELF([]ELFSection{
		TextSection(bpfEnd(nil)),
		{Name: ".zdebug_rodata", Type: shtProgbits, Flags: shfAlloc, Data: append(data, z...), Align: 8},
	}, nil)
}

// BPFMix is an eBPF object chosen and sized by data (a fuzzer's input):
// a program of up to 65,536 slots mixing the instruction shapes above,
// or one of the object shapes, from tiny to beyond the limits.
func BPFMix(data []byte) []byte {
	if len(data) < 3 {
		return BPFObject(bpfEnd(nil))
	}
	a, b := int(data[1]), int(data[2])
	size := (a<<8 | b) * 64 // up to 4 MiB
	n := max(a<<8|b, 4)
	switch data[0] % 12 {
	case 0:
		return BPFSlots(n)
	case 1:
		return BPFHelperCalls(n)
	case 2:
		return BPFJumps(n)
	case 3:
		return BPFCallChain(n / 2)
	case 4:
		return BPFLddw(n)
	case 5:
		return BPFRelocs(n)
	case 6:
		return BPFRelOverlap(1+a*8, 16+b*256)
	case 7:
		return BPFDataSections(1 + (a<<8|b)/2)
	case 8:
		return BPFZstdNames(size)
	case 9:
		return BPFZlibStrings(min(size, 1<<20))
	case 10:
		return BPFZdebugData(min(size, 1<<20))
	}
	// A program whose slots cycle through the instruction shapes.
	code := bpfInsn(bpfMovK, 1, 0, 0, 0)
	for i := 1; i < n-2; i++ {
		sel := byte(i)
		if len(data) > 3 {
			sel = data[3+i%(len(data)-3)]
		}
		switch sel % 5 {
		case 0:
			code = append(code, bpfInsn(bpfLdxDW, 2, 1, int16(i%512), 0)...)
		case 1:
			code = append(code, bpfInsn(bpfCall, 0, 0, 0, 2)...)
		case 2:
			code = append(code, bpfInsn(bpfJNeK, 1, 0, int16(-i), int32(i))...)
		case 3:
			code = append(code, bpfInsn(bpfJEqK, 1, 0, int16(min(n-3-i, 32767)), int32(i))...)
		default:
			code = append(code, bpfInsn(bpfStxDW, 1, 2, int16(i%512), 0)...)
		}
	}
	return BPFObject(bpfEnd(code))
}

// BPFShapes returns the eBPF shapes of issue 11 and their kin: the longest
// programs of each costly instruction kind, and objects whose reading
// costs more than their size.
func BPFShapes() []Shape {
	return []Shape{
		{"bpf-slots-65536", func() []byte { return BPFSlots(MaxBPFSlots) }, false, false},
		{"bpf-slots-16384", func() []byte { return BPFSlots(16384) }, false, false},
		{"bpf-helper-calls-65536", func() []byte { return BPFHelperCalls(MaxBPFSlots) }, false, false},
		{"bpf-jumps-65536", func() []byte { return BPFJumps(MaxBPFSlots) }, false, false},
		{"bpf-call-chain-32768", func() []byte { return BPFCallChain(MaxBPFSlots / 2) }, false, false},
		{"bpf-lddw-65536", func() []byte { return BPFLddw(MaxBPFSlots) }, false, false},
		{"bpf-relocs-32767", func() []byte { return BPFRelocs(MaxBPFSlots) }, false, false},
		{"bpf-over-slots-65537", func() []byte { return BPFSlots(MaxBPFSlots + 1) }, false, true},
		{"bpf-data-sections-40000", func() []byte { return BPFDataSections(40000) }, false, false},
		{"bpf-rel-overlap-30000x2MiB", func() []byte { return BPFRelOverlap(30000, 2<<20) }, false, true},
		{"bpf-zstd-names-4MiB", func() []byte { return BPFZstdNames(4<<20 - 4096) }, false, true},
		{"bpf-zlib-strings-4MiB", func() []byte { return BPFZlibStrings(4<<20 - 4096) }, false, true},
		{"bpf-zdebug-data-4MiB", func() []byte { return BPFZdebugData(4<<20 - 4096) }, false, true},
	}
}
