package archive

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

// cacheFrames is how many decompressed frames a Reader keeps: with the
// default frame size, 16 MiB. Small files share frames, so restoring a
// directory of them decompresses each frame about once.
const cacheFrames = 2

// Reader reads members of a stored archive at random through its index:
// reading a member or a block costs one ranged read and one decompression
// per frame it touches. A Reader is safe for concurrent use.
type Reader struct {
	ra     io.ReaderAt
	idx    *Index
	byName map[string]int
	cache  frameCache
}

// NewReader returns a Reader for the stored object ra of storedSize bytes,
// described by idx (from ParseIndex). It fails, wrapping ErrCorrupt, if the
// index describes an object of another size.
func NewReader(ra io.ReaderAt, storedSize int64, idx *Index) (*Reader, error) {
	if storedSize != idx.StoredSize {
		return nil, corruptf("stored archive is %d bytes, its index describes %d", storedSize, idx.StoredSize)
	}
	r := &Reader{ra: ra, idx: idx, byName: make(map[string]int, len(idx.Members))}
	for i := range idx.Members {
		// Later members win, as when extracting.
		r.byName[cleanName(idx.Members[i].Name)] = i
	}
	return r, nil
}

// cleanName drops what PostgreSQL's tar names add to a path: the "./" of
// the synthesized pg_wal entries and the "/" after directories and
// tablespace links.
func cleanName(name string) string {
	name = strings.TrimPrefix(name, "./")
	return strings.TrimSuffix(name, "/")
}

// Members returns every member in stream order. The slice belongs to the
// Reader and must not be modified.
func (r *Reader) Members() []Member { return r.idx.Members }

// Lookup finds a member by name. Names match with and without a leading
// "./" and a trailing "/", so "base/1" finds the member "base/1/". If the
// archive has the name twice, the later member is returned.
func (r *Reader) Lookup(name string) (Member, bool) {
	i, ok := r.byName[cleanName(name)]
	if !ok {
		return Member{}, false
	}
	return r.idx.Members[i], true
}

// Open returns a reader of m's data. Before the first byte it checks that the
// header stored at m.HeaderOffset is m's, so an index that does not match its
// archive fails with ErrCorrupt. Frames that hold only m's data are decoded
// into the reader's own buffer; frames shared with other members go through
// the Reader's cache.
func (r *Reader) Open(m Member) io.Reader {
	return &memberReader{r: r, m: m}
}

// ReadAt reads len(p) bytes of m's data from offset off, like io.ReaderAt:
// fewer bytes only at the end of the member, with io.EOF. It touches only the
// frames that hold the range: an aligned 8 KiB block is always in one frame.
// Unlike Open it does not re-check m's header.
func (r *Reader) ReadAt(m Member, p []byte, off int64) (int, error) {
	if err := r.checkMember(&m); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("archive: read %s: negative offset %d", m.Name, off)
	}
	if off >= m.Size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), m.Size-off))
	if err := r.readRaw(p[:n], m.DataOffset+off); err != nil {
		return 0, fmt.Errorf("archive: read %s: %w", m.Name, err)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// MemberReaderAt returns m's data as an io.ReaderAt (see ReadAt).
func (r *Reader) MemberReaderAt(m Member) io.ReaderAt {
	return memberReaderAt{r, m}
}

type memberReaderAt struct {
	r *Reader
	m Member
}

func (a memberReaderAt) ReadAt(p []byte, off int64) (int, error) { return a.r.ReadAt(a.m, p, off) }

// checkMember refuses a member that does not lie inside this archive.
func (r *Reader) checkMember(m *Member) error {
	if m.HeaderOffset < 0 || m.HeaderOffset > r.idx.RawSize || m.DataOffset != m.HeaderOffset+blockSize ||
		m.Size < 0 || m.Size > maxMemberSize || m.end() > r.idx.trailerOffset() {
		return fmt.Errorf("archive: member %q (offset %d, size %d) is not in this archive", m.Name, m.HeaderOffset, m.Size)
	}
	return nil
}

// readRaw fills p with the tar bytes at off.
func (r *Reader) readRaw(p []byte, off int64) error {
	if r.idx.Compression == None {
		return r.readStored(p, off)
	}
	for len(p) > 0 {
		i := r.idx.frameAt(off)
		data, err := r.cachedFrame(i)
		if err != nil {
			return err
		}
		k := copy(p, data[off-r.idx.Frames[i].RawOffset:])
		p, off = p[k:], off+int64(k)
	}
	return nil
}

// readStored fills p with stored bytes at off; a short object is corrupt.
func (r *Reader) readStored(p []byte, off int64) error {
	n, err := r.ra.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return corruptf("stored archive ends at %d, before %d as its index says", off+int64(n), off+int64(len(p)))
	}
	return fmt.Errorf("archive: read stored bytes %d..%d: %w", off, off+int64(len(p)), err)
}

// cachedFrame returns frame i decoded, from the cache if possible. Cached
// buffers are never written again, so callers may read them unlocked.
func (r *Reader) cachedFrame(i int) ([]byte, error) {
	if b := r.cache.get(i); b != nil {
		return b, nil
	}
	b, err := r.loadFrame(i, nil)
	if err != nil {
		return nil, err
	}
	r.cache.put(i, b)
	return b, nil
}

// storedBufs recycles the buffers stored frames are read into.
var storedBufs sync.Pool

// loadFrame reads and decodes frame i into dst's storage when it is large
// enough.
func (r *Reader) loadFrame(i int, dst []byte) ([]byte, error) {
	f := &r.idx.Frames[i]
	if cap(dst) < int(f.RawSize) {
		dst = make([]byte, 0, f.RawSize)
	}
	dst = dst[:0]
	if r.idx.Compression == None {
		dst = dst[:f.RawSize]
		return dst, r.readStored(dst, f.StoredOffset)
	}
	var src []byte
	if bp, ok := storedBufs.Get().(*[]byte); ok && cap(*bp) >= int(f.StoredSize) {
		src = (*bp)[:f.StoredSize]
	} else {
		src = make([]byte, f.StoredSize)
	}
	defer storedBufs.Put(&src)
	if err := r.readStored(src, f.StoredOffset); err != nil {
		return nil, err
	}
	out, err := decodeIndexed(dst, src, i, f, true)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// checkHeader reads the header block at m.HeaderOffset and compares it with m.
func (r *Reader) checkHeader(m *Member) error {
	var b [blockSize]byte
	if err := r.readRaw(b[:], m.HeaderOffset); err != nil {
		return err
	}
	got, err := parseHeader(b[:], m.HeaderOffset)
	if err != nil {
		return err
	}
	if !sameHeader(&got, m) {
		return corruptAt(m.HeaderOffset, "index says member %q (size %d), archive has %q (size %d)",
			m.Name, m.Size, got.Name, got.Size)
	}
	return nil
}

// memberReader is what Open returns.
type memberReader struct {
	r       *Reader
	m       Member
	off     int64 // next data offset within the member
	err     error // sticky
	checked bool
	buf     []byte // decoded frame holding the next bytes
	bufOff  int64  // tar offset of buf[0]
	own     []byte // storage for frames only this member uses
}

func (mr *memberReader) Read(p []byte) (int, error) {
	if mr.err != nil {
		return 0, mr.err
	}
	if !mr.checked {
		if err := mr.r.checkMember(&mr.m); err != nil {
			mr.err = err
			return 0, err
		}
		if err := mr.r.checkHeader(&mr.m); err != nil {
			mr.err = fmt.Errorf("archive: open %s: %w", mr.m.Name, err)
			return 0, mr.err
		}
		mr.checked = true
	}
	if mr.off >= mr.m.Size {
		mr.err = io.EOF
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	pos := mr.m.DataOffset + mr.off
	if pos < mr.bufOff || pos >= mr.bufOff+int64(len(mr.buf)) {
		if err := mr.load(pos); err != nil {
			mr.err = fmt.Errorf("archive: read %s: %w", mr.m.Name, err)
			return 0, mr.err
		}
	}
	end := min(mr.bufOff+int64(len(mr.buf)), mr.m.DataOffset+mr.m.Size)
	n := copy(p, mr.buf[pos-mr.bufOff:end-mr.bufOff])
	mr.off += int64(n)
	return n, nil
}

// load makes buf the frame holding tar offset pos.
func (mr *memberReader) load(pos int64) error {
	idx := mr.r.idx
	i := idx.frameAt(pos)
	f := &idx.Frames[i]
	var err error
	if f.RawOffset >= mr.m.DataOffset && f.RawOffset+f.RawSize <= mr.m.DataOffset+mr.m.Size {
		mr.own, err = mr.r.loadFrame(i, mr.own)
		mr.buf = mr.own
	} else {
		mr.buf, err = mr.r.cachedFrame(i)
	}
	if err != nil {
		mr.buf = nil
		return err
	}
	mr.bufOff = f.RawOffset
	return nil
}

// frameCache is a small LRU of decoded frames.
type frameCache struct {
	mu    sync.Mutex
	clock uint64
	slots [cacheFrames]cacheSlot
}

type cacheSlot struct {
	frame int
	data  []byte
	used  uint64
}

func (c *frameCache) get(frame int) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.slots {
		if s := &c.slots[i]; s.data != nil && s.frame == frame {
			c.clock++
			s.used = c.clock
			return s.data
		}
	}
	return nil
}

func (c *frameCache) put(frame int, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	victim := &c.slots[0]
	for i := range c.slots {
		s := &c.slots[i]
		if s.data != nil && s.frame == frame {
			return // another goroutine decoded it too
		}
		if s.used < victim.used {
			victim = s
		}
	}
	c.clock++
	*victim = cacheSlot{frame: frame, data: data, used: c.clock}
}
