package crc32c

import "sync"

// Combine returns the CRC-32C of A followed by B from crcA, crcB and
// len(B), without the bytes: appending n zero bytes to a message is a
// linear map on its CRC register, so the register of A is advanced over
// len(B) zero bytes and B's CRC folded in (the pre- and post-inversion of
// the standard CRC cancel out in that sum).
func Combine(crcA, crcB uint32, lenB int64) uint32 {
	if lenB <= 0 {
		return crcA
	}
	ops := zeroOps()
	for k := 0; lenB != 0; k, lenB = k+1, lenB>>1 {
		if lenB&1 != 0 {
			crcA = ops[k].apply(crcA)
		}
	}
	return crcA ^ crcB
}

// gf2Matrix is a 32×32 matrix over GF(2), column i being the image of bit i.
type gf2Matrix [32]uint32

func (m *gf2Matrix) apply(v uint32) uint32 {
	var r uint32
	for i := 0; v != 0; i, v = i+1, v>>1 {
		if v&1 != 0 {
			r ^= m[i]
		}
	}
	return r
}

func (m *gf2Matrix) square() gf2Matrix {
	var sq gf2Matrix
	for i := range sq {
		sq[i] = m.apply(m[i])
	}
	return sq
}

// zeroOps[k] advances a CRC-32C register over 2^k zero bytes.
var zeroOps = sync.OnceValue(func() *[63]gf2Matrix {
	// One zero bit: the reflected register shifts right, and a bit
	// falling out feeds back the polynomial.
	var bit gf2Matrix
	bit[0] = 0x82F63B78 // CRC-32C (Castagnoli), reflected
	for i := 1; i < 32; i++ {
		bit[i] = 1 << (i - 1)
	}
	two := bit.square()
	four := two.square()
	var ops [63]gf2Matrix
	ops[0] = four.square() // eight bits: one byte
	for k := 1; k < len(ops); k++ {
		ops[k] = ops[k-1].square()
	}
	return &ops
})
