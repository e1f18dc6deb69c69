//go:build amd64 && !purego

package crc32c

import "golang.org/x/sys/cpu"

var hasFold = cpu.X86.HasAVX512F && cpu.X86.HasAVX512VPCLMULQDQ

// fold XORs r0 into the first four bytes of p, folds p (a multiple of 256
// bytes, at least 256) into 256 bytes congruent to it modulo the polynomial
// at p's end, and stores them in rest. keys is foldKeys.
//
//go:noescape
func fold(rest *[foldBlock]byte, r0 uint32, p []byte, keys *[8]uint64)

// crcTail carries the CRC register r (not inverted) over p with the CRC32
// instruction. It stands in for hash/crc32.Update on fold's output, which
// goes through a function value and so made rest escape: a heap
// allocation per call, 4% of an uncompressed verify's CPU.
//
//go:noescape
func crcTail(r uint32, p *[foldBlock]byte) uint32
