package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// bbolt trusts its file: it follows page ids and element offsets into its
// memory map unchecked, and some of that runs in goroutines of its own
// (its consistency check) where a fault or panic cannot be recovered. So a
// view's file is checked before bbolt opens it, with plain reads: the meta
// pages, the freelist, and the structure of every page reachable from the
// root bucket (page ids and types within the file, element offsets and
// sizes within their page, inline buckets within their value, no page
// reached twice or both reached and free). Values are not read.

const (
	pageHeader  = 16
	elementSize = 16
	metaOffset  = pageHeader
	boltMagic   = 0xED0CDAED
	boltVersion = 2

	flagBranch   = 0x01
	flagLeaf     = 0x02
	flagMeta     = 0x04
	flagFreelist = 0x10
	bucketLeaf   = 0x01

	maxTreeDepth = 64
)

// checkFile checks the bbolt file at path (see CheckFile); a missing or
// empty file is fine (bbolt creates it).
func checkFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		return nil
	}
	return CheckFile(f, fi.Size())
}

// CheckFile checks that a bbolt file of size bytes is safe for bbolt to
// open and read: an error says what is wrong.
func CheckFile(r io.ReaderAt, size int64) error {
	w := &walker{r: r, size: size, seen: map[uint64]bool{}}
	return w.run()
}

type walker struct {
	r        io.ReaderAt
	size     int64
	pageSize int64
	pages    uint64 // the high-water mark: pages in use
	seen     map[uint64]bool
	free     map[uint64]bool
}

type meta struct {
	pageSize       uint32
	root, freelist uint64
	pgid, txid     uint64
	valid          bool
}

func readMeta(b []byte) meta {
	if len(b) < metaOffset+64 {
		return meta{}
	}
	m := b[metaOffset:]
	h := fnv.New64a()
	h.Write(m[:56])
	return meta{
		pageSize: binary.LittleEndian.Uint32(m[8:]),
		root:     binary.LittleEndian.Uint64(m[16:]),
		freelist: binary.LittleEndian.Uint64(m[32:]),
		pgid:     binary.LittleEndian.Uint64(m[40:]),
		txid:     binary.LittleEndian.Uint64(m[48:]),
		valid: binary.LittleEndian.Uint32(m) == boltMagic && binary.LittleEndian.Uint32(m[4:]) == boltVersion &&
			binary.LittleEndian.Uint64(m[56:]) == h.Sum64(),
	}
}

func (w *walker) run() error {
	head := make([]byte, metaOffset+64)
	if _, err := w.r.ReadAt(head, 0); err != nil {
		return fmt.Errorf("index: reading the first meta page: %w", err)
	}
	m0 := readMeta(head)
	ps := int64(m0.pageSize)
	if !m0.valid || ps < 512 || ps > 1<<16 || ps&(ps-1) != 0 {
		return errors.New("index: the first meta page is not valid")
	}
	w.pageSize = ps
	if _, err := w.r.ReadAt(head, ps); err != nil {
		return fmt.Errorf("index: reading the second meta page: %w", err)
	}
	m1 := readMeta(head)
	if !m1.valid || int64(m1.pageSize) != ps {
		return errors.New("index: the second meta page is not valid")
	}
	m := m0
	if m1.txid > m0.txid {
		m = m1
	}
	for _, x := range []meta{m0, m1} {
		if x.pgid < 4 || x.pgid > uint64(w.size/ps) {
			return fmt.Errorf("index: a meta page counts %d pages; the file has %d", x.pgid, w.size/ps)
		}
	}
	w.pages = m.pgid
	if err := w.freelist(m.freelist); err != nil {
		return err
	}
	return w.tree(m.root, 0)
}

// page reads page id with its overflow pages, checking it lies within the
// pages in use.
func (w *walker) page(id uint64) ([]byte, error) {
	if id < 2 || id >= w.pages {
		return nil, fmt.Errorf("index: page %d is outside the %d pages in use", id, w.pages)
	}
	hdr := make([]byte, pageHeader)
	if _, err := w.r.ReadAt(hdr, int64(id)*w.pageSize); err != nil {
		return nil, fmt.Errorf("index: page %d: %w", id, err)
	}
	if got := binary.LittleEndian.Uint64(hdr); got != id {
		return nil, fmt.Errorf("index: page %d says it is page %d", id, got)
	}
	overflow := uint64(binary.LittleEndian.Uint32(hdr[12:]))
	if id+overflow >= w.pages {
		return nil, fmt.Errorf("index: page %d overflows past the pages in use", id)
	}
	buf := make([]byte, int64(overflow+1)*w.pageSize)
	if _, err := w.r.ReadAt(buf, int64(id)*w.pageSize); err != nil {
		return nil, fmt.Errorf("index: page %d: %w", id, err)
	}
	for p := id; p <= id+overflow; p++ {
		if w.seen[p] {
			return nil, fmt.Errorf("index: page %d is reached twice", p)
		}
		w.seen[p] = true
	}
	return buf, nil
}

func (w *walker) freelist(id uint64) error {
	p, err := w.page(id)
	if err != nil {
		return fmt.Errorf("index: freelist: %w", err)
	}
	if binary.LittleEndian.Uint16(p[8:]) != flagFreelist {
		return fmt.Errorf("index: page %d is not the freelist", id)
	}
	count, start := uint64(binary.LittleEndian.Uint16(p[10:])), uint64(pageHeader)
	if count == 0xFFFF {
		if len(p) < pageHeader+8 {
			return errors.New("index: freelist too short")
		}
		count, start = binary.LittleEndian.Uint64(p[pageHeader:]), pageHeader+8
	}
	if count > (uint64(len(p))-start)/8 {
		return fmt.Errorf("index: the freelist counts %d pages, more than its page holds", count)
	}
	w.free = make(map[uint64]bool, count)
	for i := range count {
		f := binary.LittleEndian.Uint64(p[start+8*i:])
		if f < 2 || f >= w.pages || w.seen[f] {
			return fmt.Errorf("index: the freelist names page %d", f)
		}
		w.free[f] = true
	}
	return nil
}

// tree checks the B+tree rooted at page id.
func (w *walker) tree(id uint64, depth int) error {
	if depth > maxTreeDepth {
		return errors.New("index: tree too deep")
	}
	if w.free[id] {
		return fmt.Errorf("index: page %d is both in a tree and free", id)
	}
	p, err := w.page(id)
	if err != nil {
		return err
	}
	return w.node(p, depth)
}

// node checks one branch or leaf page (or an inline bucket's page) p.
func (w *walker) node(p []byte, depth int) error {
	if len(p) < pageHeader {
		return errors.New("index: page too short")
	}
	flags, count := binary.LittleEndian.Uint16(p[8:]), int(binary.LittleEndian.Uint16(p[10:]))
	if pageHeader+count*elementSize > len(p) {
		return fmt.Errorf("index: a page of %d bytes counts %d elements", len(p), count)
	}
	for i := range count {
		at := pageHeader + i*elementSize
		e := p[at : at+elementSize]
		switch flags {
		case flagBranch:
			pos, ksize := int(binary.LittleEndian.Uint32(e)), int(binary.LittleEndian.Uint32(e[4:]))
			if at+pos+ksize > len(p) || at+pos+ksize < at {
				return errors.New("index: a branch key lies outside its page")
			}
			if err := w.tree(binary.LittleEndian.Uint64(e[8:]), depth+1); err != nil {
				return err
			}
		case flagLeaf:
			lflags := binary.LittleEndian.Uint32(e)
			pos, ksize, vsize := int(binary.LittleEndian.Uint32(e[4:])), int(binary.LittleEndian.Uint32(e[8:])), int(binary.LittleEndian.Uint32(e[12:]))
			end := at + pos + ksize + vsize
			if end > len(p) || end < at || pos < 0 || ksize < 0 || vsize < 0 {
				return errors.New("index: a leaf key or value lies outside its page")
			}
			if lflags&bucketLeaf == 0 {
				continue
			}
			v := p[at+pos+ksize : end]
			if len(v) < 16 {
				return errors.New("index: a bucket value is too short")
			}
			if root := binary.LittleEndian.Uint64(v); root != 0 {
				if err := w.tree(root, depth+1); err != nil {
					return err
				}
			} else if err := w.node(v[16:], depth+1); err != nil { // inline bucket
				return err
			}
		default:
			return fmt.Errorf("index: a tree page has flags %#x", flags)
		}
	}
	return nil
}
