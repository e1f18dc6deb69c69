package incremental_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/holdfast-backup/holdfast/internal/incremental"
)

// raw lays out header words as the server writes them.
func raw(words ...uint32) []byte {
	b := make([]byte, 4*len(words))
	for i, w := range words {
		binary.LittleEndian.PutUint32(b[4*i:], w)
	}
	return b
}

func seq(from, n uint32) []uint32 {
	s := make([]uint32, n)
	for i := range s {
		s[i] = from + uint32(i)
	}
	return s
}

func TestHeaderRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name       string
		h          incremental.Header
		dataOffset int64
		fileSize   int64
		length     uint32
	}{
		{"unchanged relation", incremental.NewHeader(3, nil), 12, 12, 3},
		{"empty relation", incremental.NewHeader(0, nil), 12, 12, 0},
		{"one block", incremental.NewHeader(10, []uint32{4}), 8192, 16384, 10},
		{"two blocks", incremental.NewHeader(10, []uint32{0, 9}), 8192, 24576, 10},
		{"four blocks", incremental.NewHeader(2, []uint32{1, 2, 3, 7}), 8192, 40960, 8},
		{"header exactly one block", incremental.NewHeader(5000, seq(0, 2045)), 8192, 8192 + 2045*8192, 5000},
		{"header spills into a second block", incremental.NewHeader(5000, seq(0, 2046)), 16384, 16384 + 2046*8192, 5000},
		{"whole segment", incremental.NewHeader(incremental.RelSegSize, seq(0, incremental.RelSegSize)), 532480, 532480 + 1<<30, incremental.RelSegSize},
		{"last block of segment", incremental.NewHeader(0, []uint32{incremental.RelSegSize - 1}), 8192, 16384, incremental.RelSegSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.h.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := tc.h.DataOffset(); got != tc.dataOffset {
				t.Errorf("DataOffset = %d, want %d", got, tc.dataOffset)
			}
			if got := tc.h.FileSize(); got != tc.fileSize {
				t.Errorf("FileSize = %d, want %d", got, tc.fileSize)
			}
			if got := tc.h.BlockLength(); got != tc.length {
				t.Errorf("BlockLength = %d, want %d", got, tc.length)
			}
			enc := tc.h.Encode()
			if int64(len(enc)) != tc.dataOffset {
				t.Fatalf("len(Encode) = %d, want %d", len(enc), tc.dataOffset)
			}
			fixed := raw(incremental.Magic, tc.h.BlockCount, tc.h.TruncationBlockLength)
			if !bytes.Equal(enc[:12], fixed) || !bytes.Equal(enc[:4], []byte{0x0d, 0x1f, 0xae, 0xd3}) {
				t.Errorf("Encode starts % x, want % x", enc[:12], fixed)
			}
			if n := 12 + 4*len(tc.h.Blocks); bytes.ContainsFunc(enc[n:], func(r rune) bool { return r != 0 }) {
				t.Error("padding is not zero")
			}
			for _, r := range []io.Reader{bytes.NewReader(enc), iotest.OneByteReader(bytes.NewReader(enc)), iotest.HalfReader(bytes.NewReader(enc))} {
				got, err := incremental.ReadHeader(r)
				if err != nil {
					t.Fatal(err)
				}
				// slices.Equal, not cmp.Diff: a whole segment has 131072 numbers.
				if got.BlockCount != tc.h.BlockCount || got.TruncationBlockLength != tc.h.TruncationBlockLength || !slices.Equal(got.Blocks, tc.h.Blocks) {
					t.Errorf("ReadHeader (-want +got):\n%s", cmp.Diff(tc.h, got, cmpopts.EquateEmpty()))
				}
			}
		})
	}
}

func TestReadHeaderErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      []byte
		msg     string
		corrupt bool
	}{
		{"empty", nil, "incremental: corrupt: truncated header: unexpected EOF", true},
		{"short fixed part", raw(incremental.Magic, 0)[:7], "truncated header", true},
		{"bad magic", raw(0x0d1faed4, 0, 0), "bad magic number 0x0d1faed4, expected 0xd3ae1f0d", true},
		{"big-endian file", append([]byte{0xd3, 0xae, 0x1f, 0x0d}, make([]byte, 8)...), "bad magic number 0x0d1faed3 (written by a big-endian server?)", true},
		{"block count too big", raw(incremental.Magic, incremental.RelSegSize+1, 0), "block count 131073 exceeds segment size 131072", true},
		{"truncation too big", raw(incremental.Magic, 0, incremental.RelSegSize+1), "truncation block length 131073 exceeds segment size 131072", true},
		{"missing block numbers", raw(incremental.Magic, 2, 2, 0), "truncated block numbers", true},
		{"lying block count", raw(incremental.Magic, incremental.RelSegSize, 2, 0, 1), "truncated block numbers", true},
		{"block beyond segment", raw(incremental.Magic, 1, 2, incremental.RelSegSize), "block number 131072 (entry 0) is beyond segment size", true},
		{"descending", raw(incremental.Magic, 2, 9, 5, 4), "block number 4 (entry 1) does not follow 5", true},
		{"repeated", raw(incremental.Magic, 3, 9, 1, 5, 5), "block number 5 (entry 2) does not follow 5", true},
		{"descending in second chunk", append(raw(append([]uint32{incremental.Magic, 1025, 2000}, seq(0, 1024)...)...), raw(3)...), "block number 3 (entry 1024) does not follow 1023", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := incremental.ReadHeader(bytes.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.msg) || errors.Is(err, incremental.ErrCorrupt) != tc.corrupt {
				t.Errorf("ReadHeader = %v, want error containing %q (corrupt %v)", err, tc.msg, tc.corrupt)
			}
		})
	}
}

func TestReadHeaderReaderErrors(t *testing.T) {
	good := incremental.NewHeader(9, []uint32{1, 2, 8}).Encode()
	errBoom := errors.New("boom")
	for _, tc := range []struct {
		name string
		r    io.Reader
	}{
		{"at once", iotest.ErrReader(errBoom)},
		{"in fixed part", io.MultiReader(bytes.NewReader(good[:5]), iotest.ErrReader(errBoom))},
		{"in block numbers", io.MultiReader(bytes.NewReader(good[:17]), iotest.ErrReader(errBoom))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := incremental.ReadHeader(tc.r)
			if !errors.Is(err, errBoom) || errors.Is(err, incremental.ErrCorrupt) {
				t.Errorf("ReadHeader = %v, want the reader's error, not corruption", err)
			}
		})
	}
	// Data that arrives with io.EOF on its last byte is still whole.
	if _, err := incremental.ReadHeader(iotest.DataErrReader(bytes.NewReader(good[:24]))); err != nil {
		t.Errorf("DataErrReader: %v", err)
	}
	if _, err := incremental.ReadHeader(iotest.TimeoutReader(bytes.NewReader(good))); !errors.Is(err, iotest.ErrTimeout) {
		t.Errorf("TimeoutReader: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    incremental.Header
		msg  string
	}{
		{"count mismatch", incremental.Header{BlockCount: 2, Blocks: []uint32{1}}, "block count 2 but 1 block numbers"},
		{"count too big", incremental.Header{BlockCount: incremental.RelSegSize + 1, Blocks: make([]uint32, incremental.RelSegSize+1)}, "exceeds segment size"},
		{"truncation too big", incremental.NewHeader(incremental.RelSegSize+1, nil), "truncation block length 131073"},
		{"not ascending", incremental.NewHeader(3, []uint32{2, 1}), "does not follow"},
		{"beyond segment", incremental.NewHeader(3, []uint32{1 << 31}), "is beyond segment size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.h.Validate()
			if !errors.Is(err, incremental.ErrCorrupt) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Validate = %v, want ErrCorrupt containing %q", err, tc.msg)
			}
		})
	}
}

func TestIsIncrementalName(t *testing.T) {
	for in, want := range map[string]string{
		"INCREMENTAL.16387":      "16387",
		"INCREMENTAL.16387_vm":   "16387_vm",
		"INCREMENTAL.16387.1":    "16387.1",
		"INCREMENTAL.1261":       "1261",
		"INCREMENTAL.":           "",
		"16387":                  "",
		"incremental.16387":      "",
		"XINCREMENTAL.1":         "",
		"INCREMENTAL.a/b":        "",
		"INCREMENTAL.PG_VERSION": "PG_VERSION",
	} {
		got, ok := incremental.IsIncrementalName(in)
		if got != want || ok != (want != "") {
			t.Errorf("IsIncrementalName(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func FuzzReadHeader(f *testing.F) {
	f.Add(incremental.NewHeader(3, nil).Encode())
	f.Add(incremental.NewHeader(10, []uint32{0, 9}).Encode()[:20])
	f.Add(raw(incremental.Magic, 3, 9, 1, 5, 5))
	f.Add(raw(incremental.Magic, 1, 131072, 131071))
	f.Add([]byte{0x0d, 0x1f, 0xae})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := incremental.ReadHeader(bytes.NewReader(data))
		h1, err1 := incremental.ReadHeader(iotest.OneByteReader(bytes.NewReader(data)))
		if (err == nil) != (err1 == nil) || !cmp.Equal(h, h1, cmpopts.EquateEmpty()) {
			t.Fatalf("one byte at a time: %v %v, whole: %v %v", h1, err1, h, err)
		}
		if err != nil {
			if !errors.Is(err, incremental.ErrCorrupt) {
				t.Fatalf("error %v from a bytes.Reader is not ErrCorrupt", err)
			}
			return
		}
		if err := h.Validate(); err != nil {
			t.Fatalf("ReadHeader returned a header Validate refuses: %v", err)
		}
		n := 12 + 4*len(h.Blocks)
		if enc := h.Encode(); !bytes.Equal(enc[:n], data[:n]) {
			t.Fatalf("Encode = % x, read from % x", enc[:n], data[:n])
		}
		if l := h.BlockLength(); l > incremental.RelSegSize || l < h.TruncationBlockLength {
			t.Fatalf("BlockLength %d", l)
		}
	})
}
