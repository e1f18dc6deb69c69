package crc32c

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

func TestCombine(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 1<<20+37)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	whole := crc32.Checksum(data, tab)
	for _, cut := range []int{0, 1, 7, 8, 4096, 65535, len(data) / 2, len(data) - 1, len(data)} {
		a := crc32.Checksum(data[:cut], tab)
		b := crc32.Checksum(data[cut:], tab)
		if got := Combine(a, b, int64(len(data)-cut)); got != whole {
			t.Errorf("cut at %d: combined %08x, want %08x", cut, got, whole)
		}
	}
	// Many pieces, as a member spread over frames.
	var crc uint32
	for off := 0; off < len(data); {
		n := min(len(data)-off, 1+r.IntN(200000))
		piece := crc32.Checksum(data[off:off+n], tab)
		if off == 0 {
			crc = piece
		} else {
			crc = Combine(crc, piece, int64(n))
		}
		off += n
	}
	if crc != whole {
		t.Errorf("pieces combined %08x, want %08x", crc, whole)
	}
}

func FuzzCRC32CCombine(f *testing.F) {
	f.Add([]byte("hello, world"), uint16(5))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		c := int(cut) % (len(data) + 1)
		a := crc32.Checksum(data[:c], tab)
		b := crc32.Checksum(data[c:], tab)
		if got, want := Combine(a, b, int64(len(data)-c)), crc32.Checksum(data, tab); got != want {
			t.Fatalf("cut %d of %d: %08x, want %08x", c, len(data), got, want)
		}
	})
}
