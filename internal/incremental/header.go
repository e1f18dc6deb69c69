package incremental

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strings"
)

const (
	// BlockSize is PostgreSQL's BLCKSZ, the size of every block image.
	BlockSize = 8192
	// RelSegSize is the number of blocks in one relation segment file
	// (RELSEG_SIZE, 1 GiB of 8 KiB blocks): the bound on block numbers,
	// block counts and truncation lengths.
	RelSegSize = 131072
	// Magic opens every INCREMENTAL file.
	Magic uint32 = 0xd3ae1f0d
	// Prefix starts the base name of an incremental file:
	// base/5/INCREMENTAL.16384 stands for base/5/16384.
	Prefix = "INCREMENTAL."

	fixedHeaderSize = 12
)

// ErrCorrupt is matched by every error that reports a malformed INCREMENTAL
// file or a source whose bytes do not match its header.
var ErrCorrupt = errors.New("incremental: corrupt")

// Header is the start of an INCREMENTAL file.
type Header struct {
	// BlockCount is the number of block images, len(Blocks).
	BlockCount uint32
	// TruncationBlockLength is the length in blocks the relation segment
	// had, at least, when the backup ended; blocks below it that this file
	// lacks come from older backups.
	TruncationBlockLength uint32
	// Blocks are the segment-relative numbers of the blocks the file holds,
	// strictly ascending.
	Blocks []uint32
}

// NewHeader returns the header of a file holding the given blocks.
func NewHeader(truncationBlockLength uint32, blocks []uint32) Header {
	return Header{BlockCount: uint32(len(blocks)), TruncationBlockLength: truncationBlockLength, Blocks: blocks}
}

// ReadHeader reads and checks a header, leaving r just after the block
// numbers (the padding, if any, is not read). A short or malformed header is
// an error matching ErrCorrupt; other read errors are returned wrapped.
func ReadHeader(r io.Reader) (Header, error) {
	var fixed [fixedHeaderSize]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return Header{}, readError("header", err)
	}
	le := binary.LittleEndian
	if m := le.Uint32(fixed[0:]); m != Magic {
		hint := ""
		if m == bits.ReverseBytes32(Magic) {
			hint = " (written by a big-endian server?)"
		}
		return Header{}, fmt.Errorf("%w: bad magic number 0x%08x%s, expected 0x%08x", ErrCorrupt, m, hint, Magic)
	}
	h := Header{BlockCount: le.Uint32(fixed[4:]), TruncationBlockLength: le.Uint32(fixed[8:])}
	if h.BlockCount > RelSegSize {
		return Header{}, fmt.Errorf("%w: block count %d exceeds segment size %d", ErrCorrupt, h.BlockCount, RelSegSize)
	}
	if h.TruncationBlockLength > RelSegSize {
		return Header{}, fmt.Errorf("%w: truncation block length %d exceeds segment size %d", ErrCorrupt, h.TruncationBlockLength, RelSegSize)
	}
	if h.BlockCount == 0 {
		return h, nil
	}
	// Read the numbers 1024 at a time so a lying count costs at most what
	// the file really holds, plus one chunk.
	var chunk [4 * 1024]byte
	h.Blocks = make([]uint32, 0, min(h.BlockCount, 1024))
	for left := h.BlockCount; left > 0; {
		k := min(left, 1024)
		if _, err := io.ReadFull(r, chunk[:4*k]); err != nil {
			return Header{}, readError("block numbers", err)
		}
		for i := range k {
			b := le.Uint32(chunk[4*i:])
			if err := checkBlock(h.Blocks, b); err != nil {
				return Header{}, err
			}
			h.Blocks = append(h.Blocks, b)
		}
		left -= k
	}
	return h, nil
}

func readError(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated %s: %w", ErrCorrupt, what, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("incremental: read %s: %w", what, err)
}

// checkBlock checks b may follow the numbers already in prev.
func checkBlock(prev []uint32, b uint32) error {
	if b >= RelSegSize {
		return fmt.Errorf("%w: block number %d (entry %d) is beyond segment size %d", ErrCorrupt, b, len(prev), RelSegSize)
	}
	if n := len(prev); n > 0 && b <= prev[n-1] {
		return fmt.Errorf("%w: block number %d (entry %d) does not follow %d", ErrCorrupt, b, n, prev[n-1])
	}
	return nil
}

// Validate checks a header built in memory by the rules ReadHeader applies.
func (h Header) Validate() error {
	switch {
	case int(h.BlockCount) != len(h.Blocks):
		return fmt.Errorf("%w: block count %d but %d block numbers", ErrCorrupt, h.BlockCount, len(h.Blocks))
	case h.BlockCount > RelSegSize:
		return fmt.Errorf("%w: block count %d exceeds segment size %d", ErrCorrupt, h.BlockCount, RelSegSize)
	case h.TruncationBlockLength > RelSegSize:
		return fmt.Errorf("%w: truncation block length %d exceeds segment size %d", ErrCorrupt, h.TruncationBlockLength, RelSegSize)
	}
	for i, b := range h.Blocks {
		if err := checkBlock(h.Blocks[:i], b); err != nil {
			return err
		}
	}
	return nil
}

// DataOffset is where the first block image starts: 12 when there are no
// blocks, else the header rounded up to a multiple of BlockSize.
func (h Header) DataOffset() int64 {
	if h.BlockCount == 0 {
		return fixedHeaderSize
	}
	n := fixedHeaderSize + 4*int64(h.BlockCount)
	return (n + BlockSize - 1) / BlockSize * BlockSize
}

// FileSize is the size of the whole INCREMENTAL file the header describes.
func (h Header) FileSize() int64 {
	return h.DataOffset() + int64(h.BlockCount)*BlockSize
}

// BlockLength is the length in blocks of the file rebuilt from this, the
// latest, version: max(TruncationBlockLength, highest block + 1).
func (h Header) BlockLength() uint32 {
	n := h.TruncationBlockLength
	if k := len(h.Blocks); k > 0 && h.Blocks[k-1] >= n {
		n = h.Blocks[k-1] + 1
	}
	return n
}

// Encode returns the first DataOffset bytes of the file the header
// describes: the header and its padding, ready for the block images. It
// writes h as it is; Validate first if h was not read by ReadHeader.
func (h Header) Encode() []byte {
	b := make([]byte, h.DataOffset())
	le := binary.LittleEndian
	le.PutUint32(b[0:], Magic)
	le.PutUint32(b[4:], h.BlockCount)
	le.PutUint32(b[8:], h.TruncationBlockLength)
	for i, blk := range h.Blocks {
		if off := fixedHeaderSize + 4*i; off+4 <= len(b) {
			le.PutUint32(b[off:], blk)
		}
	}
	return b
}

// IsIncrementalName reports whether base, a file's base name, is an
// incremental file's name, and returns the name of the file it stands for.
func IsIncrementalName(base string) (orig string, ok bool) {
	orig, ok = strings.CutPrefix(base, Prefix)
	if !ok || orig == "" || strings.Contains(orig, "/") {
		return "", false
	}
	return orig, true
}
