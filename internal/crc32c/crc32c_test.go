package crc32c

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

// Update agrees with hash/crc32 at every length around the folding
// thresholds, at every alignment, from any starting CRC, and when a stream
// is fed in uneven pieces.
func TestUpdateMatchesHashCRC32(t *testing.T) {
	if !hasFold {
		t.Log("no AVX-512 carry-less multiply here: Update is hash/crc32's")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 2*foldMax+400)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	lengths := []int{0, 1, 3, 4, 255, 256, 257, foldMin - 1, foldMin, foldMin + 1, foldMin + 255, foldMin + 256, 4096, 4099, 1 << 16,
		foldMax - 1, foldMax, foldMax + foldMin - 1, foldMax + foldMin, 2*foldMax + 300}
	for range 40 {
		lengths = append(lengths, rng.IntN(len(data)-64))
	}
	for _, n := range lengths {
		for _, align := range []int{0, 1, 7, 8, 63} {
			p := data[align : align+n]
			for _, start := range []uint32{0, 0xFFFFFFFF, rng.Uint32()} {
				if got, want := Update(start, p), crc32.Update(start, tab, p); got != want {
					t.Fatalf("Update(%08x, %d bytes at +%d) = %08x, want %08x", start, n, align, got, want)
				}
			}
		}
	}
	h := New()
	for off := 0; off < len(data); {
		n := min(len(data)-off, rng.IntN(5000))
		h.Write(data[off : off+n])
		off += n
	}
	if got, want := h.Sum32(), crc32.Checksum(data, tab); got != want {
		t.Fatalf("streamed: %08x, want %08x", got, want)
	}
	ref := crc32.New(tab)
	ref.Write(data)
	if got, want := h.Sum([]byte("x")), ref.Sum([]byte("x")); !bytes.Equal(got, want) {
		t.Fatalf("Sum appends %x, want %x (big-endian, as hash/crc32)", got, want)
	}
}

// Update allocates nothing: the folded remainder stays on the stack (it
// used to escape through hash/crc32, one allocation per call).
func TestUpdateAllocates(t *testing.T) {
	p := make([]byte, foldMax+foldMin)
	if n := testing.AllocsPerRun(20, func() { Update(1, p) }); n != 0 {
		t.Fatalf("Update of %d bytes made %v allocations, want 0", len(p), n)
	}
}

// Inputs made to stress the fold: all zeros, all ones, single bits.
func TestUpdatePatterns(t *testing.T) {
	for _, n := range []int{foldMin, 3 * foldMin, 1 << 15} {
		zeros, ones := make([]byte, n), bytes.Repeat([]byte{0xFF}, n)
		for _, p := range [][]byte{zeros, ones} {
			if got, want := Checksum(p), crc32.Checksum(p, tab); got != want {
				t.Fatalf("%d bytes of %#x: %08x, want %08x", n, p[0], got, want)
			}
		}
		for bit := 0; bit < 8*n; bit += 8*n/97 + 1 {
			p := make([]byte, n)
			p[bit/8] = 1 << (bit % 8)
			if got, want := Checksum(p), crc32.Checksum(p, tab); got != want {
				t.Fatalf("%d bytes, bit %d set: %08x, want %08x", n, bit, got, want)
			}
		}
	}
}

func FuzzUpdate(f *testing.F) {
	f.Add(uint32(0), bytes.Repeat([]byte("holdfast"), 1100))
	f.Add(uint32(0xdeadbeef), make([]byte, 20000))
	f.Fuzz(func(t *testing.T, start uint32, p []byte) {
		if got, want := Update(start, p), crc32.Update(start, tab, p); got != want {
			t.Fatalf("Update(%08x, %d bytes) = %08x, want %08x", start, len(p), got, want)
		}
	})
}

func BenchmarkUpdate(b *testing.B) {
	for _, n := range []int{2 << 10, 4 << 10, 8 << 10, 16 << 10, 64 << 10, 256 << 10} {
		p := make([]byte, n)
		b.Run("crc32c/"+sizeName(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				Update(0, p)
			}
		})
		b.Run("hash-crc32/"+sizeName(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				crc32.Update(0, tab, p)
			}
		})
	}
}

func sizeName(n int) string { return fmt.Sprint(n>>10, "KiB") }
