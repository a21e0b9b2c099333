package boltstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"os"

	"github.com/tinycontainer/tinycontainer/store"
)

// bbolt trusts its pages: a page id pointing outside the file reads through
// a wild pointer, a branch page pointing back at an ancestor sends cursors
// into an endless loop (growing memory) and its checker into unbounded
// recursion (a fatal, unrecoverable stack overflow). recover cannot help with
// those, so before bbolt sees an existing file, verifyFile walks the page
// structure bbolt will use and refuses anything it could not read safely.
// The layout constants below are bbolt's documented on-disk format (v2).
const (
	pageHeaderSize = 16 // id u64, flags u16, count u16, overflow u32
	elemSize       = 16 // branch: pos u32, ksize u32, pgid u64; leaf: flags u32, pos u32, ksize u32, vsize u32
	bucketHeader   = 16 // root pgid u64, sequence u64; an inline page follows when root is 0

	flagBranch   = 0x01
	flagLeaf     = 0x02
	flagMeta     = 0x04
	flagFreelist = 0x10
	leafIsBucket = 0x01

	boltMagic   = 0xED0CDAED
	boltVersion = 2
	metaSumLen  = 56 // meta bytes covered by its FNV-64a checksum

	// maxDepth bounds the nesting of b-tree levels and buckets together;
	// our schema needs 2 bucket levels and small trees of 4 KiB pages.
	maxDepth = 64
)

type meta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	hwm      uint64 // pages below this id exist
	txid     uint64

	recovered string // set by pickMeta when the other meta page is damaged
}

type verifier struct {
	f        *os.File
	size     int64
	pageSize int64
	hwm      uint64
	used     map[uint64]bool // reachable pages
	free     map[uint64]bool
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: not a valid state database: "+format, append([]any{store.ErrInvalid}, args...)...)
}

// verifyFile checks the bbolt file at path. A missing file is fine (bbolt
// will create it); an empty one is not: bbolt writes a new file's first
// pages as it creates it, so an existing empty state.db is one whose content
// was lost (a file system repaired after a power cut, a failed copy), and
// starting afresh on it would silently drop the device's state. recovered
// is empty, or says which damaged meta page the file opens without.
func verifyFile(path string) (recovered string, err error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("boltstore: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("boltstore: %w", err)
	}
	if st.Size() == 0 {
		return "", invalidf("the file is empty (0 bytes): its content was lost")
	}
	v := &verifier{f: f, size: st.Size(), used: map[uint64]bool{}, free: map[uint64]bool{}}
	m, err := v.pickMeta()
	if err != nil {
		return "", err
	}
	v.pageSize, v.hwm = int64(m.pageSize), m.hwm
	if m.hwm < 4 || m.hwm > uint64(v.size/v.pageSize) {
		return "", invalidf("high water mark %d pages, file holds %d", m.hwm, v.size/v.pageSize)
	}
	if err := v.freelist(m.freelist); err != nil {
		return "", err
	}
	if err := v.tree(m.root, 0); err != nil {
		return "", err
	}
	return m.recovered, nil
}

// pickMeta finds the page size and chooses the meta page the way bbolt does:
// the page size of meta page 0, or when that page is torn, of the first valid
// meta page found at a power-of-two offset; then the valid meta page with the
// higher transaction id. When one meta page does not check, the chosen one
// says so in its recovered field.
func (v *verifier) pickMeta() (meta, error) {
	m0, err0 := v.readMeta(0)
	ps := m0.pageSize
	for i := 0; err0 != nil && i <= 6 && ps == 0; i++ {
		if m, err := v.readMeta(1024 << i); err == nil {
			ps = m.pageSize
		}
	}
	if ps < 1024 || ps > 64<<10 || ps&(ps-1) != 0 {
		return meta{}, invalidf("no usable meta page (page size %d; meta page 0: %v)", ps, err0)
	}
	m1, err1 := v.readMeta(int64(ps))
	if err1 == nil && m1.pageSize != ps {
		return meta{}, invalidf("meta pages disagree on the page size")
	}
	switch {
	case err1 == nil && err0 != nil:
		m1.recovered = fmt.Sprintf("meta page 0 is damaged (%v): opened at transaction %d of meta page 1", err0, m1.txid)
		return m1, nil
	case err1 == nil && m1.txid > m0.txid:
		return m1, nil
	case err0 == nil:
		if err1 != nil {
			m0.recovered = fmt.Sprintf("meta page 1 is damaged (%v): opened at transaction %d of meta page 0", err1, m0.txid)
		}
		return m0, nil
	}
	return meta{}, invalidf("meta pages: %v; %v", err0, err1)
}

func (v *verifier) readMeta(off int64) (meta, error) {
	p := make([]byte, pageHeaderSize+metaSumLen+8)
	if _, err := v.f.ReadAt(p, off); err != nil {
		return meta{}, fmt.Errorf("file of %d bytes is too short", v.size)
	}
	return parseMeta(p)
}

func parseMeta(p []byte) (meta, error) {
	b := p[pageHeaderSize:]
	le := binary.LittleEndian
	if le.Uint32(b[0:]) != boltMagic {
		return meta{}, fmt.Errorf("bad magic")
	}
	if le.Uint32(b[4:]) != boltVersion {
		return meta{}, fmt.Errorf("unsupported bbolt version %d", le.Uint32(b[4:]))
	}
	h := fnv.New64a()
	h.Write(b[:metaSumLen])
	if h.Sum64() != le.Uint64(b[metaSumLen:]) {
		return meta{}, fmt.Errorf("checksum mismatch")
	}
	return meta{
		pageSize: le.Uint32(b[8:]),
		root:     le.Uint64(b[16:]),
		freelist: le.Uint64(b[32:]),
		hwm:      le.Uint64(b[40:]),
		txid:     le.Uint64(b[48:]),
	}, nil
}

// page reads page id with its overflow pages after checking every bound.
func (v *verifier) page(id uint64, flags uint16) ([]byte, error) {
	if id < 2 || id >= v.hwm {
		return nil, invalidf("page id %d outside 2..%d", id, v.hwm-1)
	}
	hdr := make([]byte, pageHeaderSize)
	if _, err := v.f.ReadAt(hdr, int64(id)*v.pageSize); err != nil {
		return nil, invalidf("page %d: %v", id, err)
	}
	le := binary.LittleEndian
	if got := le.Uint64(hdr); got != id {
		return nil, invalidf("page %d says it is page %d", id, got)
	}
	f := le.Uint16(hdr[8:])
	if f&flags == 0 || f&(f-1) != 0 {
		return nil, invalidf("page %d has flags %#x", id, f)
	}
	overflow := uint64(le.Uint32(hdr[12:]))
	if id+overflow >= v.hwm {
		return nil, invalidf("page %d overflows past the high water mark", id)
	}
	for i := id; i <= id+overflow; i++ {
		if v.used[i] || v.free[i] {
			return nil, invalidf("page %d is referenced twice", i)
		}
		v.used[i] = true
	}
	buf := make([]byte, int64(overflow+1)*v.pageSize)
	if _, err := v.f.ReadAt(buf, int64(id)*v.pageSize); err != nil && err != io.EOF {
		return nil, invalidf("page %d: %v", id, err)
	}
	return buf, nil
}

func (v *verifier) freelist(id uint64) error {
	p, err := v.page(id, flagFreelist)
	if err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	ids := p[pageHeaderSize:]
	n := uint64(binary.LittleEndian.Uint16(p[10:]))
	if n == 0xFFFF { // the real count is the first element
		if len(ids) < 8 {
			return invalidf("freelist count missing")
		}
		n, ids = binary.LittleEndian.Uint64(ids), ids[8:]
	}
	if n > uint64(len(ids)/8) {
		return invalidf("freelist of %d ids overruns its page", n)
	}
	for i := range n {
		fid := binary.LittleEndian.Uint64(ids[8*i:])
		if fid < 2 || fid >= v.hwm || v.free[fid] || v.used[fid] {
			return invalidf("freelist holds bad or repeated page %d", fid)
		}
		v.free[fid] = true
	}
	return nil
}

// tree checks the b-tree rooted at page id.
func (v *verifier) tree(id uint64, depth int) error {
	if depth > maxDepth {
		return invalidf("nesting deeper than %d", maxDepth)
	}
	p, err := v.page(id, flagBranch|flagLeaf)
	if err != nil {
		return err
	}
	if binary.LittleEndian.Uint16(p[8:])&flagLeaf != 0 {
		return v.leaf(p, id, depth)
	}
	count := int(binary.LittleEndian.Uint16(p[10:]))
	if count == 0 || pageHeaderSize+count*elemSize > len(p) {
		return invalidf("branch page %d has %d elements", id, count)
	}
	var prev []byte
	for i := range count {
		e := p[pageHeaderSize+i*elemSize:]
		pos, ksize := int64(binary.LittleEndian.Uint32(e)), int64(binary.LittleEndian.Uint32(e[4:]))
		start := int64(pageHeaderSize+i*elemSize) + pos
		if start+ksize > int64(len(p)) {
			return invalidf("branch page %d element %d overruns the page", id, i)
		}
		k := p[start : start+ksize]
		if i > 0 && bytes.Compare(prev, k) >= 0 {
			return invalidf("branch page %d keys out of order", id)
		}
		prev = k
		if err := v.tree(binary.LittleEndian.Uint64(e[8:]), depth+1); err != nil {
			return err
		}
	}
	return nil
}

// leaf checks a leaf page (from the file, or inline in a bucket value) and
// the buckets it holds.
func (v *verifier) leaf(p []byte, id uint64, depth int) error {
	count := int(binary.LittleEndian.Uint16(p[10:]))
	if pageHeaderSize+count*elemSize > len(p) {
		return invalidf("leaf page %d has %d elements", id, count)
	}
	var prev []byte
	for i := range count {
		e := p[pageHeaderSize+i*elemSize:]
		le := binary.LittleEndian
		flags, pos := le.Uint32(e), int64(le.Uint32(e[4:]))
		ksize, vsize := int64(le.Uint32(e[8:])), int64(le.Uint32(e[12:]))
		start := int64(pageHeaderSize+i*elemSize) + pos
		if flags&^leafIsBucket != 0 || start+ksize+vsize > int64(len(p)) {
			return invalidf("leaf page %d element %d is malformed", id, i)
		}
		k, val := p[start:start+ksize], p[start+ksize:start+ksize+vsize]
		if i > 0 && bytes.Compare(prev, k) >= 0 {
			return invalidf("leaf page %d keys out of order", id)
		}
		prev = k
		if flags&leafIsBucket == 0 {
			continue
		}
		if len(val) < bucketHeader {
			return invalidf("bucket %q on page %d has a short header", k, id)
		}
		if root := le.Uint64(val); root != 0 {
			if err := v.tree(root, depth+1); err != nil {
				return err
			}
			continue
		}
		inline := val[bucketHeader:]
		if len(inline) < pageHeaderSize || le.Uint16(inline[8:]) != flagLeaf {
			return invalidf("inline bucket %q on page %d is malformed", k, id)
		}
		if depth+1 > maxDepth {
			return invalidf("nesting deeper than %d", maxDepth)
		}
		if err := v.leaf(inline, id, depth+1); err != nil {
			return err
		}
	}
	return nil
}
