//go:build cgo && libzstd

package archive

/*
#cgo LDFLAGS: -lzstd
#include <zstd.h>
#include <zstd_errors.h>

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
	cctx *C.ZSTD_CCtx
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
// segment. It compresses straight into dst's spare capacity, which after
// the first frames is what frames compress to (a twentieth of their size
// on relation data); only a frame that does not fit there is compressed
// again into room for the worst case. A worst-case buffer per encoder
// would be megabytes the garbage collector counts but nothing touches.
func (e *cEncoder) encodeFrame(dst, src []byte) []byte {
	bound := int(C.ZSTD_compressBound(C.size_t(len(src))))
	if cap(dst)-len(dst) < min(bound, len(src)/8+4096) {
		dst = grow(dst, min(bound, len(src)/8+4096))
	}
	var in unsafe.Pointer
	if len(src) > 0 {
		in = unsafe.Pointer(unsafe.SliceData(src))
	}
	for {
		out := dst[len(dst):cap(dst)]
		n := C.ZSTD_compress2(e.cctx, unsafe.Pointer(unsafe.SliceData(out)), C.size_t(len(out)), in, C.size_t(len(src)))
		runtime.KeepAlive(src)
		if C.ZSTD_isError(n) == 0 {
			return dst[:len(dst)+int(n)]
		}
		if C.ZSTD_getErrorCode(n) != C.ZSTD_error_dstSize_tooSmall || len(out) >= bound {
			// With compressBound bytes of room only a broken library fails.
			panic("archive: libzstd: " + C.GoString(C.ZSTD_getErrorName(n)))
		}
		dst = grow(dst, bound)
	}
}

// grow returns dst with room for at least n more bytes.
func grow(dst []byte, n int) []byte {
	g := make([]byte, len(dst), len(dst)+n)
	copy(g, dst)
	return g
}
