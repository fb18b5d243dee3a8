package filestore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// ErrCorrupt is wrapped by the errors of a damaged file: Open's, when the file is cut
// short or its pages do not hold together, and a delivery's, when its record cannot be
// decoded (the Sender then fails that delivery with the reason and keeps its bytes; see
// Store.Quarantined). Restore the file from a backup, or move it aside and start a new
// one.
var ErrCorrupt = errors.New("filestore: damaged file")

// The bbolt file format, as far as checkFile reads it (go.etcd.io/bbolt, internal/common).
const (
	pageHeaderSize  = 16 // id u64, flags u16, count u16, overflow u32
	elementSize     = 16 // branch: pos u32, ksize u32, pgid u64; leaf: flags u32, pos u32, ksize u32, vsize u32
	bucketHeaderLen = 16 // root pgid u64, sequence u64
	metaChecksumAt  = 56 // the meta's bytes before its checksum
	boltMagic       = 0xED0CDAED
	boltVersion     = 2
	branchPage      = 0x01
	leafPage        = 0x02
	bucketLeaf      = 0x01
)

// checkFile reads a store's file, which no one may be writing, and reports whether bbolt
// can open and walk it safely. bbolt trusts its pages: a file cut short or with damaged
// pages makes it read past the end of its memory map (SIGBUS), index past a slice or
// recurse forever, some of it in goroutines of its own where no recover can reach, so one
// damaged file would kill the process that opens it. checkFile walks every reachable
// page with bounds checks instead, as bbolt's own consistency check does, and returns an
// error wrapping ErrCorrupt for the first fault.
func checkFile(f *os.File) error {
	info, err := f.Stat()
	if err != nil {
		return err
	}
	c := &fileChecker{f: f, size: info.Size(), seen: map[uint64]bool{}}
	if c.size == 0 {
		return nil // new: bbolt writes its first pages
	}
	meta, err := c.meta()
	if err != nil {
		return err
	}
	if c.size < int64(meta.hwm)*int64(c.pageSize) {
		return c.corrupt("the file is %d bytes, shorter than its %d pages of %d bytes: it was cut short", c.size, meta.hwm, c.pageSize)
	}
	c.hwm = meta.hwm
	_, err = c.tree(meta.root, nil, nil, 0)
	return err
}

type fileChecker struct {
	f        *os.File
	size     int64
	pageSize int
	hwm      uint64
	seen     map[uint64]bool // pages reached so far
}

type boltMeta struct {
	pageSize        int
	root, hwm, txid uint64
	valid           bool
}

func (c *fileChecker) corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

var ne = binary.NativeEndian // bbolt writes its pages in the machine's byte order

// readMeta reads the meta page at off.
func (c *fileChecker) readMeta(off int64) boltMeta {
	buf := make([]byte, pageHeaderSize+metaChecksumAt+8)
	if _, err := c.f.ReadAt(buf, off); err != nil {
		return boltMeta{}
	}
	m := buf[pageHeaderSize:]
	h := fnv.New64a()
	h.Write(m[:metaChecksumAt])
	return boltMeta{
		pageSize: int(ne.Uint32(m[8:])),
		root:     ne.Uint64(m[16:]),
		hwm:      ne.Uint64(m[40:]),
		txid:     ne.Uint64(m[48:]),
		valid:    ne.Uint32(m[0:]) == boltMagic && ne.Uint32(m[4:]) == boltVersion && ne.Uint64(m[metaChecksumAt:]) == h.Sum64(),
	}
}

// meta chooses the meta page bbolt will: it takes the page size from the first meta
// page, or failing that from the second wherever it is found, then the valid one of the
// two with the higher transaction ID.
func (c *fileChecker) meta() (boltMeta, error) {
	if m0 := c.readMeta(0); m0.valid {
		c.pageSize = m0.pageSize
	} else {
		for off := int64(1024); off <= 1<<24 && off < c.size; off <<= 1 {
			if m := c.readMeta(off); m.valid {
				c.pageSize = m.pageSize
				break
			}
		}
	}
	if c.pageSize == 0 {
		return boltMeta{}, c.corrupt("neither meta page is valid")
	}
	if c.pageSize < 1024 || c.pageSize > 1<<24 || c.pageSize&(c.pageSize-1) != 0 {
		return boltMeta{}, c.corrupt("page size %d is not a power of two between 1 KiB and 16 MiB", c.pageSize)
	}
	a, b := c.readMeta(0), c.readMeta(int64(c.pageSize))
	if b.txid > a.txid {
		a, b = b, a
	}
	m := a
	if !m.valid {
		m = b
	}
	switch {
	case !m.valid || m.pageSize != c.pageSize:
		return boltMeta{}, c.corrupt("neither meta page is valid")
	case m.root < 2 || m.root >= m.hwm:
		return boltMeta{}, c.corrupt("the root page %d lies outside the file's %d pages", m.root, m.hwm)
	}
	return m, nil
}

// page reads page id and its overflow pages, checking that it lies in the file, that
// nothing else refers to it, and that its element array fits.
func (c *fileChecker) page(id uint64) ([]byte, error) {
	if id < 2 || id >= c.hwm {
		return nil, c.corrupt("page %d lies outside the file's %d pages", id, c.hwm)
	}
	ps := uint64(c.pageSize)
	hdr := make([]byte, pageHeaderSize)
	if _, err := c.f.ReadAt(hdr, int64(id*ps)); err != nil {
		return nil, c.corrupt("page %d cannot be read: %v", id, err)
	}
	if got := ne.Uint64(hdr); got != id {
		return nil, c.corrupt("page %d says it is page %d", id, got)
	}
	overflow := uint64(ne.Uint32(hdr[12:]))
	if id+overflow >= c.hwm {
		return nil, c.corrupt("page %d runs %d pages past the file's end", id, overflow)
	}
	for i := id; i <= id+overflow; i++ {
		if c.seen[i] {
			return nil, c.corrupt("page %d is referred to twice", i)
		}
		c.seen[i] = true
	}
	p := make([]byte, (overflow+1)*ps)
	if _, err := c.f.ReadAt(p, int64(id*ps)); err != nil && !errors.Is(err, io.EOF) {
		return nil, c.corrupt("page %d cannot be read: %v", id, err)
	}
	return p, nil
}

// element returns the key (and, on a leaf, the value) of element i of page p, checking
// that they lie inside p.
func (c *fileChecker) element(p []byte, i int, leaf bool) (flags uint32, key, value []byte, child uint64, err error) {
	at := pageHeaderSize + i*elementSize
	e := p[at : at+elementSize]
	var pos, ksize, vsize uint64
	if leaf {
		flags, pos, ksize, vsize = ne.Uint32(e), uint64(ne.Uint32(e[4:])), uint64(ne.Uint32(e[8:])), uint64(ne.Uint32(e[12:]))
	} else {
		pos, ksize, child = uint64(ne.Uint32(e)), uint64(ne.Uint32(e[4:])), ne.Uint64(e[8:])
	}
	start := uint64(at) + pos
	if start+ksize+vsize > uint64(len(p)) {
		return 0, nil, nil, 0, c.corrupt("element %d of a page points past its end", i)
	}
	return flags, p[start : start+ksize], p[start+ksize : start+ksize+vsize], child, nil
}

// tree checks the page tree rooted at page id (or, with inline set, the inline page), its
// keys within [min, max), and every bucket nested in it. It returns the largest key.
func (c *fileChecker) tree(id uint64, min, max []byte, depth int) ([]byte, error) {
	if depth > 64 {
		return nil, c.corrupt("the page tree is deeper than any real one")
	}
	p, err := c.page(id)
	if err != nil {
		return nil, err
	}
	return c.nodes(p, id, min, max, depth)
}

// nodes checks one page (from the file, or a bucket's inline page).
func (c *fileChecker) nodes(p []byte, id uint64, min, max []byte, depth int) ([]byte, error) {
	if len(p) < pageHeaderSize {
		return nil, c.corrupt("an inline page of %d bytes is too short", len(p))
	}
	flags, count := ne.Uint16(p[8:]), int(ne.Uint16(p[10:]))
	if pageHeaderSize+count*elementSize > len(p) {
		return nil, c.corrupt("page %d lists %d elements, more than it holds", id, count)
	}
	if flags != branchPage && flags != leafPage {
		return nil, c.corrupt("page %d is neither a branch nor a leaf (flags %#x)", id, flags)
	}
	leaf := flags == leafPage
	prev, last := min, []byte(nil)
	for i := range count {
		ef, key, value, child, err := c.element(p, i, leaf)
		if err != nil {
			return nil, err
		}
		if prev != nil && (bytes.Compare(prev, key) > 0 || (i > 0 && bytes.Equal(prev, key))) {
			return nil, c.corrupt("keys of page %d are out of order", id)
		}
		if max != nil && bytes.Compare(key, max) >= 0 {
			return nil, c.corrupt("a key of page %d lies beyond its parent's range", id)
		}
		if !leaf {
			next := max
			if i < count-1 {
				if _, next, _, _, err = c.element(p, i+1, false); err != nil {
					return nil, err
				}
			}
			if last, err = c.tree(child, key, next, depth+1); err != nil {
				return nil, err
			}
			prev = last
			continue
		}
		if ef&bucketLeaf != 0 {
			if err := c.bucket(value, depth+1); err != nil {
				return nil, err
			}
		}
		prev, last = key, key
	}
	return last, nil
}

// bucket checks a nested bucket from its header value.
func (c *fileChecker) bucket(v []byte, depth int) error {
	if len(v) < bucketHeaderLen {
		return c.corrupt("a bucket header of %d bytes is too short", len(v))
	}
	if root := ne.Uint64(v); root != 0 {
		_, err := c.tree(root, nil, nil, depth)
		return err
	}
	_, err := c.nodes(v[bucketHeaderLen:], 0, nil, nil, depth) // inline: its page follows the header
	return err
}
