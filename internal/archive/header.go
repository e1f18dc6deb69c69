package archive

import (
	"bytes"
)

// blockSize is the tar block: headers are one block, data is padded to whole
// blocks, the trailer is two zero blocks.
const blockSize = 512

// maxMemberSize bounds a member's size so that offsets never overflow int64.
// 2^56 bytes is 64 PiB.
const maxMemberSize = 1 << 56

// maxNameLen is the longest ustar name: 155 bytes of prefix, "/", 100 of name.
const maxNameLen = 256

// maxLinkLen is the width of the linkname field.
const maxLinkLen = 100

// maxMode is the largest mode the 8-byte octal field holds.
const maxMode = 0o7777777

// Header field offsets and widths (POSIX ustar; PostgreSQL's src/port/tar.c).
const (
	hName     = 0   // [100]
	hMode     = 100 // [8]
	hSize     = 124 // [12]
	hMtime    = 136 // [12]
	hChksum   = 148 // [8]
	hType     = 156 // [1]
	hLinkname = 157 // [100]
	hMagic    = 257 // [6] + version [2]
	hPrefix   = 345 // [155]
)

func isZeroBlock(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// parseHeader decodes one 512-byte header block at tar offset off. It does not
// accept the all-zero block; the caller handles trailers.
func parseHeader(b []byte, off int64) (Member, error) {
	var m Member
	if len(b) != blockSize {
		return m, corruptAt(off, "short header")
	}
	stored, ok := parseOctal(b[hChksum : hChksum+8])
	if !ok {
		return m, corruptAt(off, "unreadable header checksum %q", b[hChksum:hChksum+8])
	}
	// The sum is over the block with the checksum field read as spaces;
	// some old tars summed signed bytes, which archive/tar also accepts.
	var unsigned, signed int64
	for i, c := range b {
		if i >= hChksum && i < hChksum+8 {
			c = ' '
		}
		unsigned += int64(c)
		signed += int64(int8(c))
	}
	if stored != unsigned && stored != signed {
		return m, corruptAt(off, "header checksum mismatch (stored %d, computed %d)", stored, unsigned)
	}

	magic := b[hMagic : hMagic+8]
	ustar := bytes.Equal(magic, []byte("ustar\x0000"))
	gnu := bytes.Equal(magic, []byte("ustar  \x00"))
	if !ustar && !gnu {
		return m, corruptAt(off, "not a ustar header (magic %q)", magic)
	}

	m.Name = cString(b[hName : hName+100])
	if ustar {
		if p := cString(b[hPrefix : hPrefix+155]); p != "" {
			m.Name = p + "/" + m.Name
		}
	}
	if m.Name == "" {
		return m, corruptAt(off, "empty member name")
	}
	m.Linkname = cString(b[hLinkname : hLinkname+100])

	var okMode, okSize, okTime bool
	m.Mode, okMode = parseNumeric(b[hMode : hMode+8])
	m.Size, okSize = parseNumeric(b[hSize : hSize+12])
	m.ModTime, okTime = parseNumeric(b[hMtime : hMtime+12])
	switch {
	case !okMode || m.Mode < 0 || m.Mode > maxMode:
		return m, corruptAt(off, "member %q: bad mode field %q", m.Name, b[hMode:hMode+8])
	case !okSize || m.Size < 0 || m.Size > maxMemberSize:
		return m, corruptAt(off, "member %q: bad size field %q", m.Name, b[hSize:hSize+12])
	case !okTime:
		return m, corruptAt(off, "member %q: bad mtime field %q", m.Name, b[hMtime:hMtime+12])
	}

	m.Type = b[hType]
	switch m.Type {
	case TypeReg, 0, '7':
		m.Type = TypeReg
	case TypeLink, TypeSymlink, TypeChar, TypeBlock, TypeDir, TypeFifo:
		if m.Size != 0 {
			return m, corruptAt(off, "member %q: type %q with size %d", m.Name, m.Type, m.Size)
		}
	default:
		// PAX ('x', 'g') and GNU long-name ('L', 'K') headers never occur
		// in PostgreSQL's archives and would need their own model.
		return m, corruptAt(off, "member %q: unsupported type %q", m.Name, m.Type)
	}
	m.HeaderOffset = off
	m.DataOffset = off + blockSize
	return m, nil
}

// sameHeader reports whether two members describe the same header.
func sameHeader(a, b *Member) bool {
	return a.Name == b.Name && a.Type == b.Type && a.Mode == b.Mode && a.Size == b.Size &&
		a.ModTime == b.ModTime && a.Linkname == b.Linkname && a.HeaderOffset == b.HeaderOffset
}

// cString returns b up to its first NUL.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// parseNumeric decodes an octal field or a GNU base-256 field (high bit of
// the first byte set; two's complement big-endian in the remaining bits), which
// PostgreSQL uses for sizes of 8 GiB and more.
func parseNumeric(b []byte) (int64, bool) {
	if len(b) == 0 || b[0]&0x80 == 0 {
		return parseOctal(b)
	}
	// Bit 6 of the first byte is the sign; flipping every byte of a
	// negative number gives its one's complement magnitude.
	var flip byte
	if b[0]&0x40 != 0 {
		flip = 0xff
	}
	var x uint64
	for i, c := range b {
		c ^= flip
		if i == 0 {
			c &= 0x7f
		}
		if x>>55 != 0 {
			return 0, false
		}
		x = x<<8 | uint64(c)
	}
	if x>>63 != 0 {
		return 0, false
	}
	if flip != 0 {
		return ^int64(x), true
	}
	return int64(x), true
}

// parseOctal decodes an octal field: optional leading spaces, digits, then
// only spaces or NULs. PostgreSQL ends fields with a space, Go's archive/tar
// with a NUL; an empty field is 0.
func parseOctal(b []byte) (int64, bool) {
	i := 0
	for i < len(b) && b[i] == ' ' {
		i++
	}
	var x int64
	for ; i < len(b) && b[i] >= '0' && b[i] <= '7'; i++ {
		if x > (1<<63-1)>>3 {
			return 0, false
		}
		x = x<<3 | int64(b[i]-'0')
	}
	for ; i < len(b); i++ {
		if b[i] != ' ' && b[i] != 0 {
			return 0, false
		}
	}
	return x, true
}
