//go:build cgo && libzstd

package archive

/*
#cgo LDFLAGS: -lzstd
#include <zstd.h>

// hf_cctx makes a compression context for one level, with the content
// checksum on. NULL if the library refuses.
static ZSTD_CCtx *hf_cctx(int level) {
	ZSTD_CCtx *c = ZSTD_createCCtx();
	if (c == NULL)
		return NULL;
	if (ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1))) {
		ZSTD_freeCCtx(c);
		return NULL;
	}
	return c;
}
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"
)

// EncoderName names the zstd implementation compiled in.
var EncoderName = fmt.Sprintf("libzstd %s (cgo)", C.GoString(C.ZSTD_versionString()))

// cEncoder compresses with libzstd: about twice the speed of the pure-Go
// encoder at level 1 on relation data, and smaller output (see the
// package benchmarks).
type cEncoder struct {
	cctx    *C.ZSTD_CCtx
	scratch []byte // compressBound of a frame: libzstd writes here, the frame keeps only what it needs
}

func newFrameEncoder(level, frameSize int) frameEncoder {
	c := C.hf_cctx(C.int(level))
	if c == nil {
		// Only an allocation failure or an out-of-range level gets
		// here, and the options are validated before.
		panic(fmt.Sprintf("archive: libzstd refused a compression context for level %d", level))
	}
	e := &cEncoder{cctx: c}
	runtime.AddCleanup(e, func(c *C.ZSTD_CCtx) { C.ZSTD_freeCCtx(c) }, c)
	return e
}

// encodeFrame compresses src in one call: libzstd knows the size up
// front, so it writes it into the header and makes the frame a single
// segment. The output goes to the encoder's scratch buffer first: a
// frame's own buffer then grows to what the frame compresses to (a
// twentieth of its size on relation data) instead of the worst case, and
// short archives touch that much less fresh memory.
func (e *cEncoder) encodeFrame(dst, src []byte) []byte {
	bound := int(C.ZSTD_compressBound(C.size_t(len(src))))
	if cap(e.scratch) < bound {
		e.scratch = make([]byte, bound) // mostly untouched: frames compress to a fraction
	}
	out := e.scratch[:bound]
	var in unsafe.Pointer
	if len(src) > 0 {
		in = unsafe.Pointer(unsafe.SliceData(src))
	}
	n := C.ZSTD_compress2(e.cctx, unsafe.Pointer(unsafe.SliceData(out)), C.size_t(len(out)), in, C.size_t(len(src)))
	runtime.KeepAlive(src)
	if C.ZSTD_isError(n) != 0 {
		// With a destination of compressBound bytes only a broken
		// library fails.
		panic("archive: libzstd: " + C.GoString(C.ZSTD_getErrorName(n)))
	}
	return append(dst, out[:n]...)
}
