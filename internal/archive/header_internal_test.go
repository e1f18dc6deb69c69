package archive

import (
	"errors"
	"fmt"
	"testing"
)

func TestParseNumeric(t *testing.T) {
	b256 := func(bs ...byte) string { return string(bs) }
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0000644 ", 0o644, true},     // PostgreSQL
		{"0000644\x00", 0o644, true},  // archive/tar
		{"   644 \x00", 0o644, true},  // old tars
		{"\x00\x00\x00\x00", 0, true}, // empty
		{"00000001750 ", 1000, true},
		{"77777777777 ", 1<<33 - 1, true},
		{"0000648 ", 0, false},
		{"00 0644 ", 0, false},
		{"777777777777777777777777", 0, false}, // overflows int64
		{b256(0x80, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0), 1 << 33, true},
		{b256(0x80, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1), 1<<33 + 1, true},
		{b256(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), -1, true},
		{b256(0x80, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), 1<<63 - 1, true},
		{b256(0x80, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0), 0, false},
		{b256(0x80, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0, false},
	}
	for _, tt := range tests {
		got, ok := parseNumeric([]byte(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseNumeric(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseHeaderChecksum(t *testing.T) {
	h := make([]byte, blockSize)
	copy(h, "caf\xe9") // a byte ≥ 0x80 makes signed and unsigned sums differ
	copy(h[hMode:], "0000600 ")
	copy(h[hSize:], "00000000000 ")
	copy(h[hMtime:], "00000000000 ")
	h[hType] = TypeReg
	copy(h[hMagic:], "ustar\x0000")
	var unsigned, signed int64
	copy(h[hChksum:hChksum+8], "        ")
	for _, c := range h {
		unsigned += int64(c)
		signed += int64(int8(c))
	}
	for _, sum := range []int64{unsigned, signed} {
		copy(h[hChksum:], fmt.Sprintf("%07o ", sum))
		if m, err := parseHeader(h, 0); err != nil || m.Name != "caf\xe9" {
			t.Fatalf("checksum %d: %v", sum, err)
		}
	}
	copy(h[hChksum:], fmt.Sprintf("%07o ", unsigned+1))
	if _, err := parseHeader(h, 0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bad checksum: %v", err)
	}
}

func TestDataAlign(t *testing.T) {
	for fs, want := range map[int]int{
		MinFrameSize: 8 << 10, 64 << 10: 32 << 10, 1 << 20: 512 << 10, 2 << 20: 1 << 20,
		DefaultFrameSize: 1 << 20, MaxFrameSize: 1 << 20,
	} {
		if got := dataAlign(fs); got != want {
			t.Errorf("dataAlign(%d) = %d, want %d", fs, got, want)
		}
	}
}
