package amanda

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// FrameHeaderSize is the size of a frame header: length and handle, both
// unsigned 32-bit big-endian.
const FrameHeaderSize = 8

// MaxFrameSize is the largest payload Amanda's own readers accept
// (128 x 32768 bytes). A larger length is fatal for the whole connection.
const MaxFrameSize = 128 * 32768

// ErrFrameTooLarge reports a frame header whose length exceeds the reader's
// limit. The connection cannot be resynchronised after it.
var ErrFrameTooLarge = errors.New("amanda: frame too large")

// Frame is one unit of a bsdtcp connection: Payload bytes for Handle. An
// empty Payload is the end of that handle.
type Frame struct {
	Handle  uint32
	Payload []byte
}

// IsClose reports whether f is the zero-length frame that ends its handle.
func (f Frame) IsClose() bool { return len(f.Payload) == 0 }

// FrameSizeError is returned by ReadFrame for a length above the limit. It
// keeps the header, because a header made only of printable bytes usually
// means the peer speaks a line protocol by mistake.
type FrameSizeError struct {
	Length uint32
	Limit  int
	Header [FrameHeaderSize]byte
}

func (e *FrameSizeError) Error() string {
	msg := fmt.Sprintf("amanda: frame of %d bytes exceeds the limit of %d", e.Length, e.Limit)
	if printable(e.Header[:]) {
		msg += " (header looks like text: " + strconv.Quote(string(e.Header[:])) + ")"
	}
	return msg
}

// Unwrap makes errors.Is(err, ErrFrameTooLarge) true.
func (e *FrameSizeError) Unwrap() error { return ErrFrameTooLarge }

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// AppendFrameHeader appends the 8-byte header of a frame carrying n payload
// bytes on handle.
func AppendFrameHeader(dst []byte, handle uint32, n int) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	return binary.BigEndian.AppendUint32(dst, handle)
}

// AppendFrame appends a whole frame (header and payload) to dst.
func AppendFrame(dst []byte, handle uint32, payload []byte) []byte {
	return append(AppendFrameHeader(dst, handle, len(payload)), payload...)
}

// ReadFrame reads one frame from r. A payload longer than limit bytes fails
// with a *FrameSizeError before anything of it is read; limit <= 0 means
// MaxFrameSize. The payload is freshly allocated. A clean end of r before
// the first header byte returns io.EOF; an end inside a frame returns
// io.ErrUnexpectedEOF.
func ReadFrame(r io.Reader, limit int) (Frame, error) {
	if limit <= 0 || limit > MaxFrameSize {
		limit = MaxFrameSize
	}
	var hdr [FrameHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(hdr[0:4])
	f := Frame{Handle: binary.BigEndian.Uint32(hdr[4:8])}
	if uint64(n) > uint64(limit) {
		return Frame{}, &FrameSizeError{Length: n, Limit: limit, Header: hdr}
	}
	if n == 0 {
		return f, nil
	}
	f.Payload = make([]byte, n)
	if _, err := io.ReadFull(r, f.Payload); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	return f, nil
}
