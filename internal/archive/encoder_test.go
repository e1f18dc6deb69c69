package archive

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// encodeFrame round-trips frames that compress well, not at all, and
// worse than the frame before them in the same buffer (the libzstd
// encoder then compresses again into room for the worst case).
func TestEncodeFrame(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 1<<20)
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	inputs := [][]byte{
		nil,
		make([]byte, DefaultFrameSize),
		bytes.Repeat([]byte("relation page "), 50000),
		random,
		random[:1000],
		make([]byte, 3<<20),
		random,
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	e := newFrameEncoder(DefaultLevel, DefaultFrameSize)
	var out []byte
	for i, in := range inputs {
		out = e.encodeFrame(out[:0], in)
		got, err := dec.DecodeAll(out, nil)
		if err != nil || !bytes.Equal(got, in) {
			t.Fatalf("input %d (%d bytes): round trip gave %d bytes, %v", i, len(in), len(got), err)
		}
	}
	// Appending keeps what dst held.
	out = e.encodeFrame([]byte("prefix"), random[:5000])
	if !bytes.HasPrefix(out, []byte("prefix")) {
		t.Fatal("encodeFrame dropped dst's bytes")
	}
	if got, err := dec.DecodeAll(out[6:], nil); err != nil || !bytes.Equal(got, random[:5000]) {
		t.Fatalf("appended frame: %d bytes, %v", len(got), err)
	}
	// The frame header promises what readers rely on.
	var h zstd.Header
	if err := h.Decode(out[6:]); err != nil || !h.SingleSegment || !h.HasCheckSum || !h.HasFCS || h.FrameContentSize != 5000 {
		t.Fatalf("frame header %+v, %v: want single segment, content size 5000, checksum", h, err)
	}
}
