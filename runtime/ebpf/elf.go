package ebpf

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/tinycontainer/tinycontainer/runtime"
)

// Guest address space. Every guest address fits in 32 bits (SPEC section
// 2): the stack frames lie just below StackTop, the data sections from
// DataBase up. Address 0 and everything else is unmapped, so a null or
// wild pointer faults.
const (
	// StackTop is the frame pointer r10 of the entry function; each
	// bpf-to-bpf call moves it 512 bytes down.
	StackTop = 0x0010_0000
	// DataBase is where the read-only sections start; the writable
	// sections (.data, then .bss) follow them.
	DataBase = 0x0020_0000
	// MaxData bounds the data region whatever the memory limit says.
	MaxData = 64 << 20
	// MaxObjectSize bounds the ELF object accepted by Compile.
	MaxObjectSize = 16 << 20
)

// ELF relocation types of the BPF target.
const (
	relNone  = 0  // R_BPF_NONE
	relLDDW  = 1  // R_BPF_64_64: the 64-bit immediate of an lddw
	relAbs64 = 2  // R_BPF_64_ABS64: a 64-bit address in data
	relAbs32 = 3  // R_BPF_64_ABS32: a 32-bit address in data
	relCall  = 10 // R_BPF_64_32: a bpf-to-bpf call
)

// entrySection holds the guest's entry function (SPEC section 2).
const entrySection = "tc_main"

// image is a linked object: the code of the entry section and of every
// section it calls, and the initial data region.
type image struct {
	code  []byte // raw instructions, the entry function first
	init  []byte // initial bytes of the data region: read-only, then writable sections
	roLen uint32 // the first roLen bytes of the data region are read-only
	size  uint32 // the data region's size: init plus the zeroed sections
}

func invalidELF(format string, args ...any) error {
	return fmt.Errorf("%w: ELF: %s", runtime.ErrInvalidCode, fmt.Sprintf(format, args...))
}

// loader links one relocatable BPF object the way a kernel loader would,
// without maps: sections become regions of the guest address space and
// relocations become guest addresses and call offsets.
type loader struct {
	f        *elf.File
	syms     []elf.Symbol  // syms[i-1] is symbol i
	rels     map[int][]int // section index -> its REL sections
	dataAddr map[int]uint32
	textAt   map[int]int // exec section index -> first slot in code
	texts    []int       // exec sections in link order
}

// loadELF parses and links obj; maxData caps the data region (ErrLimit).
func loadELF(obj []byte, maxData uint64) (*image, error) {
	if len(obj) > MaxObjectSize {
		return nil, fmt.Errorf("%w: ELF object of %d bytes, the limit is %d", runtime.ErrInvalidCode, len(obj), MaxObjectSize)
	}
	if err := checkHeaders(obj); err != nil {
		return nil, err
	}
	f, err := elf.NewFile(bytes.NewReader(obj))
	if err != nil {
		return nil, fmt.Errorf("%w: not a valid ELF object: %v", runtime.ErrInvalidCode, err)
	}
	if f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB || f.Machine != elf.EM_BPF || f.Type != elf.ET_REL {
		return nil, invalidELF("want a little-endian 64-bit relocatable BPF object (clang -target bpf -c), got %v %v %v %v",
			f.Class, f.Data, f.Machine, f.Type)
	}
	var relBytes uint64
	for _, s := range f.Sections {
		if strings.HasPrefix(s.Name, ".zdebug") {
			return nil, invalidELF("section %q: compressed sections are not supported", s.Name)
		}
		if s.Type == elf.SHT_REL {
			relBytes += s.FileSize
		}
	}
	// Relocation sections may name the same bytes of the file: read each
	// byte once at most, so the relocations cost what the object holds.
	if relBytes > uint64(len(obj)) {
		return nil, invalidELF("relocation sections overlap (%d bytes of relocations in a %d-byte object)", relBytes, len(obj))
	}
	l := &loader{f: f, rels: map[int][]int{}, dataAddr: map[int]uint32{}, textAt: map[int]int{}}
	l.syms, err = f.Symbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return nil, invalidELF("symbol table: %v", err)
	}
	for i, s := range f.Sections {
		switch s.Type {
		case elf.SHT_REL:
			// Compared in 64 bits here and below: on 32-bit platforms an
			// index of 2^31 or more was a negative int, past the check.
			if uint64(s.Info) >= uint64(len(f.Sections)) {
				return nil, invalidELF("relocation section %q applies to missing section %d", s.Name, s.Info)
			}
			l.rels[int(s.Info)] = append(l.rels[int(s.Info)], i)
		case elf.SHT_RELA:
			if t := uint64(s.Info); t < uint64(len(f.Sections)) && f.Sections[t].Flags&elf.SHF_ALLOC != 0 {
				return nil, invalidELF("RELA relocations (section %q) are not used by the BPF target", s.Name)
			}
		}
	}
	img, err := l.layoutData(maxData)
	if err != nil {
		return nil, err
	}
	if img.code, err = l.linkText(); err != nil {
		return nil, err
	}
	if err := l.relocateData(img); err != nil {
		return nil, err
	}
	return img, nil
}

// checkHeaders refuses, before the ELF reader opens obj, what it would
// cost more to read than obj's size: compressed sections (the reader
// inflates the section-name table while it opens the file, and any other
// section when it is read: a 4 MiB object can claim 128 GiB) and objects
// other than 64-bit little-endian ones (whose headers are not checked
// here).
func checkHeaders(obj []byte) error {
	le := binary.LittleEndian
	if len(obj) < 64 || string(obj[:4]) != elf.ELFMAG {
		return fmt.Errorf("%w: not a valid ELF object: no ELF header", runtime.ErrInvalidCode)
	}
	if elf.Class(obj[4]) != elf.ELFCLASS64 || elf.Data(obj[5]) != elf.ELFDATA2LSB {
		return invalidELF("want a little-endian 64-bit relocatable BPF object (clang -target bpf -c)")
	}
	const entry = 64 // size of a 64-bit section header
	shoff, entsize, shnum := le.Uint64(obj[40:]), uint64(le.Uint16(obj[58:])), uint64(le.Uint16(obj[60:]))
	if shoff == 0 {
		return nil // no sections
	}
	header := func(i uint64) ([]byte, error) {
		if shoff > uint64(len(obj)) || i > (uint64(len(obj))-shoff)/max(entsize, entry) ||
			shoff+i*max(entsize, entry)+entry > uint64(len(obj)) {
			return nil, invalidELF("section header %d is outside the object", i)
		}
		at := shoff + i*max(entsize, entry)
		return obj[at : at+entry], nil
	}
	if shnum == 0 { // more than 0xff00 sections: the count is in section 0
		h, err := header(0)
		if err != nil {
			return err
		}
		shnum = le.Uint64(h[32:])
	}
	for i := range shnum {
		h, err := header(i)
		if err != nil {
			return err
		}
		if elf.SectionFlag(le.Uint64(h[8:]))&elf.SHF_COMPRESSED != 0 {
			return invalidELF("section %d: compressed sections are not supported", i)
		}
	}
	return nil
}

func isText(s *elf.Section) bool {
	return s.Type == elf.SHT_PROGBITS && s.Flags&elf.SHF_ALLOC != 0 && s.Flags&elf.SHF_EXECINSTR != 0
}

func isData(s *elf.Section) bool {
	return (s.Type == elf.SHT_PROGBITS || s.Type == elf.SHT_NOBITS) &&
		s.Flags&elf.SHF_ALLOC != 0 && s.Flags&elf.SHF_EXECINSTR == 0
}

// layoutData places the allocated data sections in the data region:
// read-only ones first (so one bound protects them all), then initialised
// writable ones, then the zeroed (.bss) ones, each at its alignment.
func (l *loader) layoutData(maxData uint64) (*image, error) {
	var ro, rw, zero []int
	for i, s := range l.f.Sections {
		if !isData(s) {
			continue
		}
		switch {
		case s.Name == "maps" || s.Name == ".maps":
			return nil, invalidELF("section %q: BPF maps are not supported (there is no kernel)", s.Name)
		case s.Type == elf.SHT_NOBITS:
			zero = append(zero, i)
		case s.Flags&elf.SHF_WRITE == 0:
			ro = append(ro, i)
		default:
			rw = append(rw, i)
		}
	}
	limit := min(maxData, MaxData)
	img := &image{}
	var end uint64
	place := func(idx []int) error {
		for _, i := range idx {
			s := l.f.Sections[i]
			align := min(max(s.Addralign, 1), 4096)
			if align&(align-1) != 0 {
				return invalidELF("section %q: alignment %d is not a power of two", s.Name, s.Addralign)
			}
			start := (end + align - 1) &^ (align - 1)
			if s.Size > limit || start+s.Size > limit {
				return fmt.Errorf("%w: data sections need more than %d bytes (at section %q)", runtime.ErrLimit, limit, s.Name)
			}
			l.dataAddr[i] = DataBase + uint32(start)
			end = start + s.Size
		}
		return nil
	}
	if err := place(ro); err != nil {
		return nil, err
	}
	img.roLen = uint32(end)
	if err := place(rw); err != nil {
		return nil, err
	}
	initLen := end
	if err := place(zero); err != nil {
		return nil, err
	}
	img.size = uint32(end)
	img.init = make([]byte, initLen)
	for _, i := range append(ro, rw...) {
		s := l.f.Sections[i]
		b, err := s.Data()
		if err != nil || uint64(len(b)) != s.Size {
			return nil, invalidELF("section %q: contents unreadable: %v", s.Name, err)
		}
		copy(img.init[l.dataAddr[i]-DataBase:], b)
	}
	return img, nil
}

// rel is one REL entry.
type rel struct {
	off uint64
	sym uint32
	typ uint32
}

func (l *loader) relocs(sec int) ([]rel, error) {
	var out []rel
	for _, ri := range l.rels[sec] {
		rs := l.f.Sections[ri]
		b, err := rs.Data()
		if err != nil {
			return nil, invalidELF("relocation section %q unreadable: %v", rs.Name, err)
		}
		if len(b)%16 != 0 {
			return nil, invalidELF("relocation section %q: size %d is not a multiple of 16", rs.Name, len(b))
		}
		for ; len(b) > 0; b = b[16:] {
			info := binary.LittleEndian.Uint64(b[8:])
			out = append(out, rel{off: binary.LittleEndian.Uint64(b), sym: uint32(info >> 32), typ: uint32(info)})
		}
	}
	return out, nil
}

// symbol resolves relocation symbol k to its section and value.
func (l *loader) symbol(k uint32) (elf.Symbol, int, error) {
	if k == 0 || uint64(k) > uint64(len(l.syms)) {
		return elf.Symbol{}, 0, invalidELF("relocation against missing symbol %d", k)
	}
	s := l.syms[k-1]
	switch {
	case s.Section == elf.SHN_UNDEF:
		return s, 0, invalidELF("undefined symbol %q (there is no linker: everything must be in this object)", s.Name)
	case s.Section >= elf.SHN_LORESERVE || int(s.Section) >= len(l.f.Sections):
		return s, 0, invalidELF("symbol %q is in an unsupported section %v", s.Name, s.Section)
	}
	return s, int(s.Section), nil
}

// dataAddress is the guest address of symbol k plus addend; it must name
// data, since code has no address in the guest's memory.
func (l *loader) dataAddress(k uint32, addend int64) (uint32, error) {
	s, sec, err := l.symbol(k)
	if err != nil {
		return 0, err
	}
	base, ok := l.dataAddr[sec]
	if !ok {
		if isText(l.f.Sections[sec]) {
			return 0, invalidELF("symbol %q: function pointers are not supported", s.Name)
		}
		return 0, invalidELF("symbol %q is in section %q, which is not loaded", s.Name, l.f.Sections[sec].Name)
	}
	// Bound each term first so the sum cannot overflow.
	if s.Value > MaxData || addend < -1<<32 || addend > 1<<32 {
		return 0, invalidELF("address of symbol %q%+d does not fit in 32 bits", s.Name, addend)
	}
	a := int64(base) + int64(s.Value) + addend
	if a < 0 || a > 0xffff_ffff {
		return 0, invalidELF("address of symbol %q%+d does not fit in 32 bits", s.Name, addend)
	}
	return uint32(a), nil
}

// linkText lays out the entry section and, transitively, every section it
// calls, then resolves lddw and call relocations.
func (l *loader) linkText() ([]byte, error) {
	entry := -1
	for i, s := range l.f.Sections {
		if s.Name == entrySection {
			entry = i
			break
		}
	}
	if entry < 0 {
		return nil, invalidELF("no %q section: mark the entry function with TC_MAIN", entrySection)
	}
	if !isText(l.f.Sections[entry]) {
		return nil, invalidELF("section %q is not executable code", entrySection)
	}
	var code []byte
	add := func(sec int) error {
		s := l.f.Sections[sec]
		b, err := s.Data()
		if err != nil || uint64(len(b)) != s.Size {
			return invalidELF("section %q: contents unreadable: %v", s.Name, err)
		}
		if len(b)%insnSize != 0 {
			return invalidELF("section %q: size %d is not a multiple of %d", s.Name, len(b), insnSize)
		}
		if len(code)+len(b) > MaxInstructions*insnSize {
			return fmt.Errorf("%w: more than %d instructions", runtime.ErrInvalidCode, MaxInstructions)
		}
		l.textAt[sec] = len(code) / insnSize
		l.texts = append(l.texts, sec)
		code = append(code, b...)
		return nil
	}
	if err := add(entry); err != nil {
		return nil, err
	}
	// Breadth-first over call relocations; l.texts grows as we go.
	for k := 0; k < len(l.texts); k++ {
		rs, err := l.relocs(l.texts[k])
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			if r.typ != relCall {
				continue
			}
			_, sec, err := l.symbol(r.sym)
			if err != nil {
				return nil, err
			}
			if !isText(l.f.Sections[sec]) {
				return nil, invalidELF("call relocation at %s+%#x targets non-code section %q",
					l.f.Sections[l.texts[k]].Name, r.off, l.f.Sections[sec].Name)
			}
			if _, ok := l.textAt[sec]; !ok {
				if err := add(sec); err != nil {
					return nil, err
				}
			}
		}
	}
	for _, sec := range l.texts {
		if err := l.relocateText(code, sec); err != nil {
			return nil, err
		}
	}
	return code, nil
}

func (l *loader) relocateText(code []byte, sec int) error {
	s := l.f.Sections[sec]
	start := l.textAt[sec]
	n := int(s.Size / insnSize)
	rs, err := l.relocs(sec)
	if err != nil {
		return err
	}
	relocated := map[int]bool{}
	for _, r := range rs {
		if r.typ == relNone {
			continue
		}
		if r.off%insnSize != 0 || r.off >= s.Size {
			return invalidELF("relocation at %s+%#x is not on an instruction", s.Name, r.off)
		}
		idx := int(r.off / insnSize)
		raw := code[(start+idx)*insnSize:]
		imm := int64(int32(binary.LittleEndian.Uint32(raw[4:])))
		switch r.typ {
		case relLDDW:
			if raw[0] != rawLDDW || idx+1 >= n {
				return invalidELF("64-bit relocation at %s+%#x is not on an lddw", s.Name, r.off)
			}
			addend := int64(binary.LittleEndian.Uint32(raw[4:])) | int64(binary.LittleEndian.Uint32(raw[12:]))<<32
			a, err := l.dataAddress(r.sym, addend)
			if err != nil {
				return err
			}
			binary.LittleEndian.PutUint32(raw[4:], a)
			binary.LittleEndian.PutUint32(raw[12:], 0)
		case relCall:
			if raw[0] != classJMP|jmpCALL || raw[1]>>4 != callLocal {
				return invalidELF("call relocation at %s+%#x is not on a bpf-to-bpf call", s.Name, r.off)
			}
			sym, tsec, err := l.symbol(r.sym)
			if err != nil {
				return err
			}
			ts := l.f.Sections[tsec]
			// The target is the symbol's instruction plus imm+1 (clang puts
			// -1 for a named function, the offset for a section symbol).
			t := int64(sym.Value/insnSize) + imm + 1
			if sym.Value%insnSize != 0 || sym.Value > ts.Size || t < 0 || t >= int64(ts.Size/insnSize) {
				return invalidELF("call at %s+%#x to %q+%d is outside section %q", s.Name, r.off, sym.Name, imm, ts.Name)
			}
			rel := int64(l.textAt[tsec]) + t - int64(start+idx+1)
			binary.LittleEndian.PutUint32(raw[4:], uint32(int32(rel)))
			relocated[idx] = true
		default:
			return invalidELF("unsupported relocation type %d at %s+%#x", r.typ, s.Name, r.off)
		}
	}
	// Calls without a relocation are relative within their own section.
	for idx := 0; idx < n; idx++ {
		raw := code[(start+idx)*insnSize:]
		if raw[0] != classJMP|jmpCALL || raw[1]>>4 != callLocal || relocated[idx] {
			continue
		}
		t := int64(idx) + 1 + int64(int32(binary.LittleEndian.Uint32(raw[4:])))
		if t < 0 || t >= int64(n) {
			return invalidELF("call at %s+%#x leaves its section", s.Name, idx*insnSize)
		}
	}
	return nil
}

// relocateData writes the addresses that data sections hold (pointer
// tables, pointers to other globals) into the initial image.
func (l *loader) relocateData(img *image) error {
	for sec, base := range l.dataAddr {
		s := l.f.Sections[sec]
		rs, err := l.relocs(sec)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.typ == relNone {
				continue
			}
			size := uint64(8)
			if r.typ == relAbs32 {
				size = 4
			} else if r.typ != relAbs64 {
				return invalidELF("unsupported relocation type %d in data section %q", r.typ, s.Name)
			}
			if s.Type == elf.SHT_NOBITS || r.off > s.Size || s.Size-r.off < size {
				return invalidELF("relocation at %s+%#x is outside the section's contents", s.Name, r.off)
			}
			at := img.init[uint64(base-DataBase)+r.off:]
			if size == 8 {
				a, err := l.dataAddress(r.sym, int64(binary.LittleEndian.Uint64(at)))
				if err != nil {
					return err
				}
				binary.LittleEndian.PutUint64(at, uint64(a))
			} else {
				a, err := l.dataAddress(r.sym, int64(binary.LittleEndian.Uint32(at)))
				if err != nil {
					return err
				}
				binary.LittleEndian.PutUint32(at, a)
			}
		}
	}
	return nil
}
