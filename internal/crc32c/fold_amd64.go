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
