package archive

import (
	"errors"
	"fmt"
	"hash"
	"runtime"
)

// ErrCorrupt is wrapped by every error that reports malformed input: a tar
// stream that is not well formed (bad header checksum, truncated member,
// missing trailer), stored bytes that do not decompress, or an index that does
// not match itself or the data it describes. Test for it with errors.Is.
var ErrCorrupt = errors.New("archive: corrupt")

// ErrIndexVersion is wrapped by the error ParseIndex returns for an index
// written in a format version this build does not know.
var ErrIndexVersion = errors.New("archive: unsupported index version")

// errClosed is returned by a Writer used after Close.
var errClosed = errors.New("archive: writer is closed")

// corruptAt reports malformed data at an offset of the uncompressed tar stream.
func corruptAt(off int64, format string, args ...any) error {
	return fmt.Errorf("%w: tar offset %d: %s", ErrCorrupt, off, fmt.Sprintf(format, args...))
}

// corruptf reports malformed data that has no single tar offset.
func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// Compression says how the tar bytes are stored.
type Compression int

// The stored encodings. The numbers are part of the index format.
const (
	// None stores the tar bytes as they are (base.tar).
	None Compression = 0
	// Zstd stores the tar bytes as a sequence of independent zstd frames
	// (base.tar.zst); any zstd decoder reads the whole object as one stream.
	Zstd Compression = 1
)

// String returns "none" or "zstd".
func (c Compression) String() string {
	switch c {
	case None:
		return "none"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

// Ext returns the file name extension of an archive stored with c:
// ".tar" or ".tar.zst".
func (c Compression) Ext() string {
	if c == Zstd {
		return ".tar.zst"
	}
	return ".tar"
}

// Member type flags, as in the ustar typeflag field. Legacy regular-file
// flags ('\x00', '7') are reported as TypeReg.
const (
	TypeReg     byte = '0'
	TypeLink    byte = '1'
	TypeSymlink byte = '2'
	TypeChar    byte = '3'
	TypeBlock   byte = '4'
	TypeDir     byte = '5'
	TypeFifo    byte = '6'
)

// Member is one entry of a tar stream: a file, directory, symlink or other
// header-only entry, with where it sits in the uncompressed tar.
type Member struct {
	// Name is the member's name exactly as in the header (prefix/name for
	// ustar names that use the prefix field): directories and PostgreSQL's
	// tablespace symlinks end in "/", and a few PostgreSQL entries start
	// with "./".
	Name string
	// Type is the typeflag: TypeReg, TypeDir, TypeSymlink, ...
	Type byte
	// Mode holds the permission bits from the header.
	Mode int64
	// Size is the data length; 0 for everything but regular files.
	Size int64
	// ModTime is the modification time in Unix seconds.
	ModTime int64
	// Linkname is the symlink (or hard link) target.
	Linkname string
	// HeaderOffset is the offset of the member's 512-byte header in the
	// uncompressed tar.
	HeaderOffset int64
	// DataOffset is HeaderOffset+512, where the data starts.
	DataOffset int64
	// Checksum is the Options.Hash digest of the data, for regular files
	// when a hash was configured; nil otherwise.
	Checksum []byte
}

// end returns the offset just past the member's padded data: the next
// header's offset.
func (m *Member) end() int64 { return m.DataOffset + padded(m.Size) }

// Frame sizes and alignment.
const (
	// DefaultFrameSize is the frame size cap used when Options.FrameSize is 0.
	DefaultFrameSize = 4 << 20
	// MinFrameSize and MaxFrameSize bound Options.FrameSize; values outside
	// are clamped. The maximum also bounds what a reader ever allocates for
	// one frame.
	MinFrameSize = 16 << 10
	MaxFrameSize = 64 << 20
	// maxDataAlign is where frames are cut inside large members: at data
	// offsets that are multiples of 1 MiB, so no 8 KiB page straddles frames.
	maxDataAlign = 1 << 20
	// minDataAlign is PostgreSQL's block size; alignment is never finer.
	minDataAlign = 8 << 10
	// maxDigestSize bounds Options.Hash's digest (SHA-512 is 64 bytes).
	maxDigestSize = 64
)

// Options configure a Writer. The zero value stores uncompressed, without
// per-file checksums.
type Options struct {
	// Compression selects None (raw tar) or Zstd.
	Compression Compression
	// Level is a zstd level in the zstd command's numbering: 1–2 fastest,
	// 3–5 default, 6–9 better, 10 and above best. 0 selects
	// DefaultLevel.
	Level int
	// FrameSize caps the uncompressed bytes per frame; 0 selects
	// DefaultFrameSize. Clamped to [MinFrameSize, MaxFrameSize].
	FrameSize int
	// Concurrency is the number of frames compressed in parallel; 0
	// selects GOMAXPROCS.
	Concurrency int
	// Hash, when set, makes a new hash for each regular file; the file's
	// digest ends up in Member.Checksum. Pass the manifest's algorithm
	// (CRC-32C, SHA-256, ...).
	Hash func() hash.Hash
}

// DefaultLevel is the zstd level used when Options.Level is 0: the fastest
// encoder. On relation data it compresses nearly as well as level 3 at about
// twice the speed (see the package benchmarks), and the speed is what keeps
// a backup ahead of the network.
const DefaultLevel = 1

// writerConfig is Options with defaults applied.
type writerConfig struct {
	Options
	align int
}

func (o Options) config() (writerConfig, error) {
	c := writerConfig{Options: o}
	if c.Compression != None && c.Compression != Zstd {
		return c, fmt.Errorf("archive: unknown compression %d", int(c.Compression))
	}
	if c.Level == 0 {
		c.Level = DefaultLevel
	}
	if c.FrameSize == 0 {
		c.FrameSize = DefaultFrameSize
	}
	c.FrameSize = min(max(c.FrameSize, MinFrameSize), MaxFrameSize)
	if c.Concurrency <= 0 {
		c.Concurrency = runtime.GOMAXPROCS(0)
	}
	c.align = dataAlign(c.FrameSize)
	if c.Hash != nil {
		if n := c.Hash().Size(); n < 1 || n > maxDigestSize {
			return c, fmt.Errorf("archive: hash digest size %d out of range 1..%d", n, maxDigestSize)
		}
	}
	return c, nil
}

// dataAlign returns the in-member cut alignment for a frame size cap: 1 MiB,
// or for caps under 2 MiB the largest power of two not above half the cap.
// Half the cap guarantees a header plus one aligned chunk fits in a frame.
func dataAlign(frameSize int) int {
	a := maxDataAlign
	for a > minDataAlign && a > frameSize/2 {
		a >>= 1
	}
	return a
}

// padded rounds a member size up to whole 512-byte blocks.
func padded(size int64) int64 { return (size + blockSize - 1) &^ (blockSize - 1) }
