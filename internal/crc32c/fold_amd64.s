//go:build amd64 && !purego

#include "textflag.h"

// func fold(rest *[256]byte, r0 uint32, p []byte, keys *[8]uint64)
//
// Z0-Z3 hold 256 bytes as sixteen 128-bit lanes. Each step multiplies a
// lane's two quadwords by the keys that move them 256 bytes on and adds
// (XORs) the next 256 bytes of p; the four registers are independent
// chains, so the carry-less multiplies overlap.
TEXT ·fold(SB), NOSPLIT, $0-48
	MOVQ rest+0(FP), DI
	MOVL r0+8(FP), AX
	MOVQ p_base+16(FP), SI
	MOVQ p_len+24(FP), CX
	MOVQ keys+40(FP), DX

	VMOVDQU64 (DX), Z8
	VMOVDQU64 0(SI), Z0
	VMOVDQU64 64(SI), Z1
	VMOVDQU64 128(SI), Z2
	VMOVDQU64 192(SI), Z3
	VMOVD     AX, X4
	VPXORQ    Z4, Z0, Z0
	ADDQ      $256, SI
	SUBQ      $256, CX
	JZ        done

loop:
	VMOVDQU64  0(SI), Z4
	VMOVDQU64  64(SI), Z5
	VMOVDQU64  128(SI), Z6
	VMOVDQU64  192(SI), Z7
	VPCLMULQDQ $0x00, Z8, Z0, Z10
	VPCLMULQDQ $0x11, Z8, Z0, Z0
	VPCLMULQDQ $0x00, Z8, Z1, Z11
	VPCLMULQDQ $0x11, Z8, Z1, Z1
	VPCLMULQDQ $0x00, Z8, Z2, Z12
	VPCLMULQDQ $0x11, Z8, Z2, Z2
	VPCLMULQDQ $0x00, Z8, Z3, Z13
	VPCLMULQDQ $0x11, Z8, Z3, Z3
	VPTERNLOGD $0x96, Z4, Z10, Z0
	VPTERNLOGD $0x96, Z5, Z11, Z1
	VPTERNLOGD $0x96, Z6, Z12, Z2
	VPTERNLOGD $0x96, Z7, Z13, Z3
	ADDQ       $256, SI
	SUBQ       $256, CX
	JNZ        loop

done:
	VMOVDQU64 Z0, 0(DI)
	VMOVDQU64 Z1, 64(DI)
	VMOVDQU64 Z2, 128(DI)
	VMOVDQU64 Z3, 192(DI)
	VZEROUPPER
	RET

// func crcTail(r uint32, p *[256]byte) uint32
//
// The CRC register r carried over p with the CRC32 instruction (no
// inversions): what is left of a fold.
TEXT ·crcTail(SB), NOSPLIT, $0-20
	MOVL r+0(FP), AX
	MOVQ p+8(FP), SI
	MOVQ $32, CX

tail:
	CRC32Q (SI), AX
	ADDQ   $8, SI
	DECQ   CX
	JNZ    tail
	MOVL   AX, ret+16(FP)
	RET
