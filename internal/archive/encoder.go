package archive

import "sync"

// A frameEncoder compresses one tar frame into one independent zstd frame:
// content size in the header, single segment (the window covers the
// frame, so a decoder needs only the content size), content checksum on.
// Two implementations exist: libzstd through cgo (build tag libzstd, what
// the project's scripts build) and klauspost/compress (pure Go, the
// default of a plain go build). Both write standard frames; which one
// wrote an archive makes no difference to any reader.
type frameEncoder interface {
	// encodeFrame appends the compressed frame of src to dst.
	encodeFrame(dst, src []byte) []byte
}

// decodeFrame decodes src, a stored zstd frame, after dst's bytes and
// never past cap(dst); checksums says whether the frame's content checksum
// is checked. Two implementations, like the encoder: libzstd through cgo
// (build tag libzstd) and klauspost/compress (decoder_go.go). Sequential
// reads of a whole archive (stream.go) always use the pure-Go streaming
// decoder.
//
//	func decodeFrame(dst, src []byte, checksums bool) ([]byte, error)

// decodeIndexed decodes frame i of an index (f) from its stored bytes
// into dst, from its start and within its capacity, and holds it to the
// size the index gives. dst keeps its capacity whatever the frame's size,
// so pooled buffers go back to the pool as large as they came.
func decodeIndexed(dst, src []byte, i int, f *Frame, checksums bool) ([]byte, error) {
	out, err := decodeFrame(dst[:0], src, checksums)
	if err != nil {
		return dst[:0], corruptf("frame %d (stored bytes %d..%d): %v", i, f.StoredOffset, f.StoredOffset+f.StoredSize, err)
	}
	if int64(len(out)) != f.RawSize {
		return out, corruptf("frame %d decodes to %d bytes, index says %d", i, len(out), f.RawSize)
	}
	return out, nil
}

// Encoders are pooled by level and frame size: creating one allocates its
// tables, and a backup makes several Writers.
type encoderKey struct{ level, frameSize int }

var encoderPools sync.Map // encoderKey -> *sync.Pool

func getEncoder(level, frameSize int) frameEncoder {
	k := encoderKey{level, frameSize}
	p, _ := encoderPools.LoadOrStore(k, &sync.Pool{})
	if e, ok := p.(*sync.Pool).Get().(frameEncoder); ok {
		return e
	}
	return newFrameEncoder(level, frameSize)
}

func putEncoder(e frameEncoder, level, frameSize int) {
	p, _ := encoderPools.Load(encoderKey{level, frameSize})
	p.(*sync.Pool).Put(e)
}
