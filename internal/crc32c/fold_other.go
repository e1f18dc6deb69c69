//go:build !amd64 || purego

package crc32c

const hasFold = false

func fold(rest *[foldBlock]byte, r0 uint32, p []byte, keys *[8]uint64) {
	panic("crc32c: no folding on this platform")
}

func crcTail(r uint32, p *[foldBlock]byte) uint32 {
	panic("crc32c: no folding on this platform")
}
