//go:build !(cgo && libzstd)

package archive

import (
	"errors"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// The pure-Go decoders are shared by every caller: DecodeAll is safe for
// concurrent use and runs up to GOMAXPROCS decodes at once.
var (
	checkedDecoder   = sync.OnceValues(func() (*zstd.Decoder, error) { return newGoDecoder() })
	uncheckedDecoder = sync.OnceValues(func() (*zstd.Decoder, error) { return newGoDecoder(zstd.IgnoreChecksum(true)) })
)

func newGoDecoder(extra ...zstd.DOption) (*zstd.Decoder, error) {
	return zstd.NewReader(nil, append([]zstd.DOption{
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(MaxFrameSize),
		zstd.WithDecodeAllCapLimit(true),
	}, extra...)...)
}

func decodeFrame(dst, src []byte, checksums bool) ([]byte, error) {
	get := checkedDecoder
	if !checksums {
		get = uncheckedDecoder
	}
	dec, err := get()
	if err != nil {
		return dst, err
	}
	// The cap limit stops most oversized frames early, but not all: a
	// frame without a content size whose single RLE block is larger than
	// the room left is decoded in full into a new array (found by
	// FuzzDecodeFrame). Whatever outgrows dst is an error here, as it is
	// in libzstd, and the caller's buffer is what comes back.
	out, err := dec.DecodeAll(src, dst)
	if err != nil {
		return dst, err
	}
	if len(out) > cap(dst) {
		return dst, errors.New("zstd: frame is larger than the room given for it")
	}
	return out, nil
}
