package archive

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/holdfast-backup/holdfast/internal/crc32c"
)

// Index layout constants; doc.go draws the layout.
const (
	indexMagic   = "HFTARIDX"
	indexVersion = 1
	// indexFixed is the fixed part before the frame table.
	indexFixed = 8 + 2 + 1 + 1 + 4 + 4 + 8 + 8
	// indexCRC is the CRC-32C trailer.
	indexCRC = 4
	// Smallest encodings of one table entry, to bound counts by the bytes
	// left before allocating anything.
	minFrameEntry  = 2 // two one-byte uvarints
	minMemberEntry = 7 // type, name length, 1-byte name, link length, mode, size, mtime
	// maxStoredSize bounds raw and stored sizes so sums never overflow.
	maxStoredSize = 1 << 62
)

// Frame is one independently readable piece of a stored archive: the bytes
// [RawOffset, RawOffset+RawSize) of the tar are stored at
// [StoredOffset, StoredOffset+StoredSize) of the object. For Zstd that range
// is one zstd frame; for None the two ranges are the same.
type Frame struct {
	RawOffset    int64
	RawSize      int64
	StoredOffset int64
	StoredSize   int64
}

// Index describes a stored archive: its frames and its members. It is what
// the .idx object holds; ParseIndex reads it and Writer produces it.
type Index struct {
	// Compression is how the archive is stored.
	Compression Compression
	// FrameSize is the cap on a frame's uncompressed size.
	FrameSize int
	// DataAlign is the cut alignment inside members: a frame that starts
	// inside a member's data starts at DataOffset + k*DataAlign.
	DataAlign int
	// DigestSize is the length of every regular member's Checksum; 0 when
	// the archive was written without a hash.
	DigestSize int
	// RawSize is the length of the uncompressed tar, trailer included.
	RawSize int64
	// StoredSize is the length of the stored object.
	StoredSize int64
	// Frames cover [0, RawSize) and [0, StoredSize) in order, without gaps.
	Frames []Frame
	// Members lists every tar member in stream order.
	Members []Member
}

// trailerOffset returns where the two zero blocks start.
func (x *Index) trailerOffset() int64 {
	if len(x.Members) == 0 {
		return 0
	}
	return x.Members[len(x.Members)-1].end()
}

// frameAt returns the index of the frame holding raw offset off, which must
// be in [0, RawSize): the first frame that ends after off.
func (x *Index) frameAt(off int64) int {
	return sort.Search(len(x.Frames), func(i int) bool {
		f := &x.Frames[i]
		return f.RawOffset+f.RawSize > off
	})
}

// MarshalBinary encodes the index in the format doc.go describes. Frame and
// member offsets are not stored: they follow from the sizes. The result is
// what ParseIndex accepts when x is consistent, which every index a Writer
// makes is.
func (x *Index) MarshalBinary() ([]byte, error) {
	if x.DigestSize < 0 || x.DigestSize > maxDigestSize {
		return nil, fmt.Errorf("archive: encode index: digest size %d out of range", x.DigestSize)
	}
	b := make([]byte, 0, indexFixed+len(x.Frames)*8+len(x.Members)*(48+x.DigestSize)+indexCRC)
	b = append(b, indexMagic...)
	b = binary.LittleEndian.AppendUint16(b, indexVersion)
	b = append(b, byte(x.Compression), byte(x.DigestSize))
	b = binary.LittleEndian.AppendUint32(b, uint32(x.FrameSize))
	b = binary.LittleEndian.AppendUint32(b, uint32(x.DataAlign))
	b = binary.LittleEndian.AppendUint64(b, uint64(x.RawSize))
	b = binary.LittleEndian.AppendUint64(b, uint64(x.StoredSize))
	b = binary.AppendUvarint(b, uint64(len(x.Frames)))
	for _, f := range x.Frames {
		b = binary.AppendUvarint(b, uint64(f.RawSize))
		b = binary.AppendUvarint(b, uint64(f.StoredSize))
	}
	b = binary.AppendUvarint(b, uint64(len(x.Members)))
	for i := range x.Members {
		m := &x.Members[i]
		b = append(b, m.Type)
		b = binary.AppendUvarint(b, uint64(len(m.Name)))
		b = append(b, m.Name...)
		b = binary.AppendUvarint(b, uint64(len(m.Linkname)))
		b = append(b, m.Linkname...)
		b = binary.AppendUvarint(b, uint64(m.Mode))
		b = binary.AppendUvarint(b, uint64(m.Size))
		b = binary.AppendVarint(b, m.ModTime)
		if m.Type == TypeReg && x.DigestSize > 0 {
			if len(m.Checksum) != x.DigestSize {
				return nil, fmt.Errorf("archive: encode index: member %q has a %d-byte checksum, want %d",
					m.Name, len(m.Checksum), x.DigestSize)
			}
			b = append(b, m.Checksum...)
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32c.Checksum(b)), nil
}

// indexDecoder reads the index fields; the first problem sticks.
type indexDecoder struct {
	b   []byte
	off int
	err error
}

func (d *indexDecoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = corruptf("index byte %d: %s", d.off, fmt.Sprintf(format, args...))
	}
}

func (d *indexDecoder) left() int { return len(d.b) - d.off }

func (d *indexDecoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > d.left() {
		d.fail("truncated")
		return nil
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	return p
}

func (d *indexDecoder) byte() byte {
	if p := d.bytes(1); p != nil {
		return p[0]
	}
	return 0
}

// uvarint reads a canonical (shortest-form) uvarint no larger than max.
func (d *indexDecoder) uvarint(what string, max uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad %s", what)
		return 0
	}
	if n != uvarintLen(v) {
		d.fail("non-canonical %s", what)
		return 0
	}
	if v > max {
		d.fail("%s %d out of range (max %d)", what, v, max)
		return 0
	}
	d.off += n
	return v
}

func (d *indexDecoder) varint(what string) int64 {
	u := d.uvarint(what, 1<<64-1)
	// zigzag, as binary.AppendVarint writes it
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// ParseIndex decodes and checks an index. It refuses versions it does not
// know and any inconsistency: wrong CRC, counts or sizes out of range, frames
// that do not tile the archive, frame cuts where the format forbids them,
// members that overrun the archive. An unknown version gives an error
// wrapping ErrIndexVersion; every other error wraps ErrCorrupt. The memory it allocates is proportional to len(b).
func ParseIndex(b []byte) (*Index, error) {
	if len(b) < indexFixed+indexCRC {
		return nil, corruptf("index: %d bytes is too short", len(b))
	}
	if string(b[:8]) != indexMagic {
		return nil, corruptf("index: bad magic %q", b[:8])
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != indexVersion {
		return nil, fmt.Errorf("%w %d (this build reads version %d): use a newer holdfast", ErrIndexVersion, v, indexVersion)
	}
	body := b[:len(b)-indexCRC]
	if got, want := crc32c.Checksum(body), binary.LittleEndian.Uint32(b[len(body):]); got != want {
		return nil, corruptf("index: CRC mismatch (stored %08x, computed %08x)", want, got)
	}

	d := &indexDecoder{b: body, off: 10}
	x := &Index{}
	x.Compression = Compression(d.byte())
	x.DigestSize = int(d.byte())
	fixed := d.bytes(indexFixed - d.off)
	x.FrameSize = int(binary.LittleEndian.Uint32(fixed[0:]))
	x.DataAlign = int(binary.LittleEndian.Uint32(fixed[4:]))
	raw := binary.LittleEndian.Uint64(fixed[8:])
	stored := binary.LittleEndian.Uint64(fixed[16:])
	switch {
	case x.Compression != None && x.Compression != Zstd:
		return nil, corruptf("index: unknown compression %d", int(x.Compression))
	case x.DigestSize > maxDigestSize:
		return nil, corruptf("index: digest size %d out of range", x.DigestSize)
	case x.FrameSize < MinFrameSize || x.FrameSize > MaxFrameSize:
		return nil, corruptf("index: frame size %d out of range", x.FrameSize)
	case x.DataAlign < minDataAlign || x.DataAlign > maxDataAlign ||
		x.DataAlign&(x.DataAlign-1) != 0 || x.DataAlign > x.FrameSize/2:
		return nil, corruptf("index: data alignment %d invalid for frame size %d", x.DataAlign, x.FrameSize)
	case raw < 2*blockSize || raw > maxStoredSize || raw%blockSize != 0:
		return nil, corruptf("index: raw size %d invalid", raw)
	case stored > maxStoredSize || (x.Compression == None && stored != raw):
		return nil, corruptf("index: stored size %d invalid", stored)
	}
	x.RawSize, x.StoredSize = int64(raw), int64(stored)

	n := d.uvarint("frame count", uint64(d.left()/minFrameEntry))
	if d.err != nil {
		return nil, d.err
	}
	if n > 0 {
		x.Frames = make([]Frame, n)
	}
	var rawOff, storedOff int64
	for i := range x.Frames {
		f := &x.Frames[i]
		f.RawOffset, f.StoredOffset = rawOff, storedOff
		f.RawSize = int64(d.uvarint("frame raw size", uint64(x.FrameSize)))
		maxStored := uint64(f.RawSize)
		if x.Compression == Zstd {
			maxStored = zstdBound(maxStored)
		}
		f.StoredSize = int64(d.uvarint("frame stored size", maxStored))
		if d.err != nil {
			return nil, d.err
		}
		if f.RawSize == 0 || f.StoredSize == 0 || (x.Compression == None && f.StoredSize != f.RawSize) {
			d.fail("frame %d: sizes %d/%d invalid", i, f.RawSize, f.StoredSize)
			return nil, d.err
		}
		rawOff += f.RawSize
		storedOff += f.StoredSize
		if rawOff > x.RawSize || storedOff > x.StoredSize {
			d.fail("frame %d ends past the archive", i)
			return nil, d.err
		}
	}
	if rawOff != x.RawSize || storedOff != x.StoredSize {
		return nil, corruptf("index: frames cover %d/%d bytes, archive is %d/%d", rawOff, storedOff, x.RawSize, x.StoredSize)
	}

	n = d.uvarint("member count", uint64(d.left()/minMemberEntry))
	if d.err != nil {
		return nil, d.err
	}
	if n > 0 {
		x.Members = make([]Member, n)
	}
	var off int64
	for i := range x.Members {
		m := &x.Members[i]
		m.HeaderOffset, m.DataOffset = off, off+blockSize
		m.Type = d.byte()
		m.Name = string(d.bytes(int(d.uvarint("name length", maxNameLen))))
		m.Linkname = string(d.bytes(int(d.uvarint("link length", maxLinkLen))))
		m.Mode = int64(d.uvarint("mode", maxMode))
		m.Size = int64(d.uvarint("size", maxMemberSize))
		m.ModTime = d.varint("mtime")
		if m.Type == TypeReg && x.DigestSize > 0 {
			m.Checksum = bytes.Clone(d.bytes(x.DigestSize))
		}
		if d.err != nil {
			return nil, d.err
		}
		if err := checkMember(m); err != nil {
			d.fail("member %d: %v", i, err)
			return nil, d.err
		}
		off = m.end()
		if off > x.RawSize-2*blockSize {
			d.fail("member %d (%q) ends at %d, past the trailer", i, m.Name, off)
			return nil, d.err
		}
	}
	if d.left() != 0 {
		return nil, corruptf("index: %d unexpected bytes after the member table", d.left())
	}
	if err := x.checkCuts(); err != nil {
		return nil, err
	}
	return x, nil
}

// checkMember applies the header rules to a member read from an index.
func checkMember(m *Member) error {
	switch m.Type {
	case TypeReg:
	case TypeLink, TypeSymlink, TypeChar, TypeBlock, TypeDir, TypeFifo:
		if m.Size != 0 {
			return fmt.Errorf("type %q with size %d", m.Type, m.Size)
		}
	default:
		return fmt.Errorf("unknown type %q", m.Type)
	}
	if m.Name == "" || bytes.IndexByte([]byte(m.Name), 0) >= 0 || bytes.IndexByte([]byte(m.Linkname), 0) >= 0 {
		return fmt.Errorf("bad name %q or link %q", m.Name, m.Linkname)
	}
	return nil
}

// checkCuts verifies that every frame starts where the format allows: at a
// member header, at an aligned offset inside a member's data, or at a block
// boundary in the trailer.
func (x *Index) checkCuts() error {
	trailer := x.trailerOffset()
	mi := 0
	for i := 1; i < len(x.Frames); i++ {
		s := x.Frames[i].RawOffset
		if s >= trailer {
			continue // a block boundary, as all sizes are whole blocks
		}
		for x.Members[mi].end() <= s {
			mi++
		}
		m := &x.Members[mi]
		if s == m.HeaderOffset {
			continue
		}
		if s <= m.DataOffset || (s-m.DataOffset)%int64(x.DataAlign) != 0 {
			return corruptf("index: frame %d starts at %d, inside member %q off its %d-byte alignment",
				i, s, m.Name, x.DataAlign)
		}
	}
	return nil
}

// zstdBound is the most a zstd frame of n bytes can take: the content stored
// raw in 128 KiB blocks with 3-byte block headers, plus frame header and
// checksum, with slack.
func zstdBound(n uint64) uint64 { return n + n>>7 + 64 }
