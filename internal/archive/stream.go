package archive

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// streamBufSize is the StreamReader's read-ahead on the decompressed stream.
const streamBufSize = 64 << 10

// StreamReader walks a stored archive from start to end without its index:
// for verify, and for archives whose index is lost. It decompresses all
// concatenated frames (any zstd stream, in fact) and checks the tar as it
// goes. Errors are sticky; malformed data gives errors wrapping ErrCorrupt,
// while errors of the underlying reader are returned wrapped but as they are.
type StreamReader struct {
	src  *sourceReader
	dec  *zstd.Decoder
	in   *bufio.Reader // decompressed tar bytes
	pos  int64         // tar offset of the next byte of in
	cur  *Member
	left int64 // unread data bytes of cur
	pad  int64 // padding bytes after cur's data
	err  error
	blk  [blockSize]byte
}

// sourceReader remembers the underlying reader's first error, so that a
// decoder failure caused by it is not reported as corruption.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// NewStreamReader returns a StreamReader of the stored archive read from r,
// stored with compression c.
func NewStreamReader(r io.Reader, c Compression) *StreamReader {
	s := &StreamReader{src: &sourceReader{r: r}}
	var tar io.Reader = s.src
	switch c {
	case None:
	case Zstd:
		// One decoder without goroutines: the stream decodes synchronously
		// in the caller's Read, so there is nothing to leak. The window
		// limit refuses frames needing more memory than any Holdfast frame.
		dec, err := zstd.NewReader(s.src,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(MaxFrameSize),
			zstd.WithDecoderMaxMemory(MaxFrameSize),
		)
		if err != nil {
			s.err = fmt.Errorf("archive: zstd decoder: %w", err)
			return s
		}
		s.dec, tar = dec, dec
	default:
		s.err = fmt.Errorf("archive: unknown compression %d", int(c))
	}
	s.in = bufio.NewReaderSize(tar, streamBufSize)
	return s
}

// Close releases the decoder. It is optional, but the StreamReader cannot
// be used afterwards.
func (s *StreamReader) Close() error {
	if s.dec != nil {
		s.dec.Close()
		s.dec = nil
	}
	if s.err == nil {
		s.err = errors.New("archive: stream reader is closed")
	}
	return nil
}

// readErr classifies an error from reading the decompressed stream: the
// source's own failure stays what it is; a short stream or a decoder error is
// corruption.
func (s *StreamReader) readErr(err error, what string) error {
	if s.src.err != nil {
		return fmt.Errorf("archive: read stored archive: %w", s.src.err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return corruptAt(s.pos, "stored archive ends %s", what)
	}
	return corruptAt(s.pos, "%s: %v", what, err)
}

// Next skips the rest of the current member and returns the next one. It
// returns io.EOF after the end-of-archive trailer, once it has checked that
// nothing but zero blocks follows it.
func (s *StreamReader) Next() (*Member, error) {
	if s.err != nil {
		return nil, s.err
	}
	if s.cur != nil {
		if err := s.skip(s.left + s.pad); err != nil {
			s.err = s.readErr(err, fmt.Sprintf("inside member %q", s.cur.Name))
			return nil, s.err
		}
		s.cur, s.left, s.pad = nil, 0, 0
	}
	if err := s.block("before the end-of-archive trailer"); err != nil {
		return nil, err
	}
	if isZeroBlock(s.blk[:]) {
		s.err = s.trailer()
		return nil, s.err
	}
	m, err := parseHeader(s.blk[:], s.pos-blockSize)
	if err != nil {
		s.err = err
		return nil, err
	}
	s.cur, s.left, s.pad = &m, m.Size, padded(m.Size)-m.Size
	return &m, nil
}

// block reads one 512-byte block into s.blk.
func (s *StreamReader) block(what string) error {
	n, err := io.ReadFull(s.in, s.blk[:])
	s.pos += int64(n)
	if err != nil {
		s.err = s.readErr(err, what)
		return s.err
	}
	return nil
}

// trailer checks the second zero block and that only zeros follow.
func (s *StreamReader) trailer() error {
	if err := s.block("after one of the two trailer blocks"); err != nil {
		return err
	}
	if !isZeroBlock(s.blk[:]) {
		return corruptAt(s.pos-blockSize, "a single zero block inside the archive")
	}
	for {
		b, err := s.in.Peek(streamBufSize)
		if len(b) > 0 {
			if !isZeroBlock(b) {
				return corruptAt(s.pos, "data after the end-of-archive trailer")
			}
			n, _ := s.in.Discard(len(b))
			s.pos += int64(n)
		}
		if errors.Is(err, io.EOF) {
			if s.pos%blockSize != 0 {
				return corruptAt(s.pos, "stored archive ends inside a block after the trailer")
			}
			return io.EOF
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return s.readErr(err, "after the trailer")
		}
	}
}

// skip discards n bytes of the stream.
func (s *StreamReader) skip(n int64) error {
	for n > 0 {
		k, err := s.in.Discard(int(min(n, streamBufSize)))
		s.pos += int64(k)
		n -= int64(k)
		if err != nil {
			return err
		}
	}
	return nil
}

// Read reads the current member's data. It returns io.EOF at the end of the
// member and before the first Next.
func (s *StreamReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.in.Read(p)
	s.pos += int64(n)
	s.left -= int64(n)
	if err != nil && !(errors.Is(err, io.EOF) && n > 0) {
		s.err = s.readErr(err, fmt.Sprintf("inside member %q", s.cur.Name))
		return n, s.err
	}
	return n, nil
}
