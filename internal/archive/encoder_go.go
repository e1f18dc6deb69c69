//go:build !(cgo && libzstd)

package archive

import (
	"errors"

	"github.com/klauspost/compress/zstd"
)

// EncoderName names the zstd implementation compiled in.
const EncoderName = "klauspost/compress (pure Go)"

type goEncoder struct{ *zstd.Encoder }

func newFrameEncoder(level, frameSize int) frameEncoder {
	window := zstd.MinWindowSize
	for window < frameSize {
		window <<= 1
	}
	e, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
		zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(window),
		zstd.WithEncoderCRC(true),
	)
	if err != nil {
		// Only invalid options fail, and these are fixed and valid.
		panic(errors.Join(errors.New("archive: zstd encoder options"), err))
	}
	return goEncoder{e}
}

func (e goEncoder) encodeFrame(dst, src []byte) []byte { return e.EncodeAll(src, dst) }
