package archive_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/holdfast-backup/holdfast/internal/archive"
)

// fixCRC recomputes an index's CRC trailer after an edit.
func fixCRC(b []byte) []byte {
	b = bytes.Clone(b)
	if len(b) >= 4 {
		binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], crc32.MakeTable(crc32.Castagnoli)))
	}
	return b
}

func TestIndexRoundTrip(t *testing.T) {
	_, res, _ := smallArchive(t, archive.Zstd)
	idx, err := archive.ParseIndex(res.Index)
	if err != nil {
		t.Fatal(err)
	}
	b, err := idx.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, res.Index) {
		t.Fatal("MarshalBinary(ParseIndex(b)) != b")
	}
}

func TestIndexDamage(t *testing.T) {
	_, res, _ := smallArchive(t, archive.Zstd)
	good := res.Index
	for n := range len(good) {
		if _, err := archive.ParseIndex(good[:n]); !isCorrupt(err) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	for i := range len(good) {
		b := bytes.Clone(good)
		b[i] ^= 0x01
		if _, err := archive.ParseIndex(b); err == nil {
			t.Fatalf("byte %d flipped: accepted", i)
		}
	}
	v2 := bytes.Clone(good)
	v2[8] = 2
	if _, err := archive.ParseIndex(fixCRC(v2)); !errors.Is(err, archive.ErrIndexVersion) || isCorrupt(err) || !strings.Contains(err.Error(), "version 2") {
		t.Fatalf("version 2: %v", err)
	}
}

// TestIndexInconsistent edits a parsed index so that it no longer describes a
// possible archive; ParseIndex must refuse what MarshalBinary writes.
func TestIndexInconsistent(t *testing.T) {
	_, res, _ := smallArchive(t, archive.Zstd)
	edits := map[string]func(x *archive.Index){
		"frames short": func(x *archive.Index) { x.Frames = x.Frames[:len(x.Frames)-1] },
		"raw size":     func(x *archive.Index) { x.RawSize += 512 },
		"stored size":  func(x *archive.Index) { x.StoredSize++ },
		"frame over cap": func(x *archive.Index) {
			x.FrameSize = archive.MinFrameSize
			x.Frames[0].RawSize = archive.MinFrameSize + 1
		},
		"cut off alignment":   func(x *archive.Index) { x.Frames[0].RawSize -= 512; x.Frames[1].RawSize += 512 },
		"member past trailer": func(x *archive.Index) { x.Members[len(x.Members)-1].Size += 1024 },
		"dir with size":       func(x *archive.Index) { x.Members[0].Type = archive.TypeDir },
		"unknown type":        func(x *archive.Index) { x.Members[0].Type = 'x' },
		"empty name":          func(x *archive.Index) { x.Members[0].Name = "" },
		"long name":           func(x *archive.Index) { x.Members[0].Name = strings.Repeat("a", 257) },
		"bad align":           func(x *archive.Index) { x.DataAlign = 3 << 10 },
		"compression":         func(x *archive.Index) { x.Compression = 9 },
		"none stored size":    func(x *archive.Index) { x.Compression = archive.None },
	}
	for name, edit := range edits {
		t.Run(name, func(t *testing.T) {
			x, _ := archive.ParseIndex(res.Index)
			edit(x)
			b, err := x.MarshalBinary()
			if err != nil {
				return // refused before writing, also fine
			}
			if _, err := archive.ParseIndex(b); !isCorrupt(err) {
				t.Fatalf("ParseIndex = %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestIndexLargeMember describes a 9 GiB relation file (one whose tar size
// field needs base-256) without writing it.
func TestIndexLargeMember(t *testing.T) {
	const size = 9 << 30
	x := &archive.Index{
		Compression: archive.Zstd, FrameSize: 4 << 20, DataAlign: 1 << 20, DigestSize: 4,
		Members: []archive.Member{
			{Name: "base/5/16384", Type: archive.TypeReg, Mode: 0o600, Size: size, ModTime: -5,
				HeaderOffset: 0, DataOffset: 512, Checksum: []byte{1, 2, 3, 4}},
			{Name: "global/", Type: archive.TypeDir, Mode: 0o700, HeaderOffset: 512 + size, DataOffset: 1024 + size},
		},
	}
	x.RawSize = 1024 + size + 1024
	// First frame: header and 4 MiB-512 of data... cut at 3 MiB; then 4 MiB
	// frames on 1 MiB multiples; the rest with the dir and trailer.
	var raw, stored int64
	add := func(n int64) {
		x.Frames = append(x.Frames, archive.Frame{RawOffset: raw, RawSize: n, StoredOffset: stored, StoredSize: n / 3})
		raw += n
		stored += n / 3
	}
	add(512 + 3<<20)
	for raw+4<<20 <= 512+size {
		add(4 << 20)
	}
	add(x.RawSize - raw)
	x.StoredSize = stored
	b, err := x.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := archive.ParseIndex(b)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(x, got); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	t.Logf("index of a 9 GiB member with %d frames: %d bytes", len(x.Frames), len(b))
}
