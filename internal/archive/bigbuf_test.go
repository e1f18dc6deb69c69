package archive

import (
	"runtime"
	"testing"
	"unsafe"
)

func TestBigBuffer(t *testing.T) {
	for _, c := range []int{0, 4096, 1 << 20, 4 << 20, 4<<20 + 12345, 64 << 20} {
		n := c / 3
		b := bigBuffer(n, c)
		if len(b) != n || cap(b) != c {
			t.Fatalf("bigBuffer(%d, %d): len %d cap %d", n, c, len(b), cap(b))
		}
		b = b[:c]
		for i := range b {
			if b[i] != 0 {
				t.Fatalf("bigBuffer(%d, %d): byte %d is %d, want 0", n, c, i, b[i])
			}
		}
		clear(b)
		if c >= 2<<20 && len(b) > 0 && uintptr(unsafe.Pointer(&b[0]))%(2<<20) != 0 && runtime.GOOS == "linux" {
			t.Errorf("bigBuffer(%d, %d) does not start on a 2 MiB boundary", n, c)
		}
	}
}
