package archive_test

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"

	"github.com/holdfast-backup/holdfast/internal/archive"
)

// entry is one member of a test tar.
type entry struct {
	name string
	typ  byte
	mode int64
	link string
	data []byte
}

// testFrameSize is small so that tests cross many frames with little data;
// its in-member alignment is 32 KiB.
const testFrameSize = 64 << 10

func crc32c() hash.Hash { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) }

// content makes n bytes of relation-like data: a mix of zero, repetitive and
// random 8 KiB pages.
func content(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for off := 0; off < n; off += 8192 {
		page := b[off:min(off+8192, n)]
		switch rng.IntN(3) {
		case 0: // mostly empty page
			for i := len(page) / 2; i < len(page); i++ {
				page[i] = byte(i % 7)
			}
		case 1: // text-like
			for i := range page {
				page[i] = "abcdefgh ijkl\n"[(i+off)%14]
			}
		case 2:
			var x [8]byte
			for i := 0; i < len(page); i += 8 {
				binary.LittleEndian.PutUint64(x[:], rng.Uint64())
				copy(page[i:], x[:])
			}
		}
	}
	return b
}

// randomEntries makes a PostgreSQL-like member list: directories, a
// tablespace symlink, empty files and files of sizes around frame and
// alignment boundaries for frame size fs.
func randomEntries(rng *rand.Rand, fs int) []entry {
	align := fs / 2
	if align > 1<<20 {
		align = 1 << 20
	}
	sizes := []int{0, 1, 511, 512, 513, 8192, align - 1, align, align + 1, 2*align + 8192,
		fs - 1024, fs - 512, fs - 513, fs, fs + 1, 3*fs + 77}
	es := []entry{
		{name: "backup_label", typ: tar.TypeReg, mode: 0o600, data: []byte("START WAL LOCATION: 0/2000028\n")},
		{name: "base/", typ: tar.TypeDir, mode: 0o700},
		{name: "pg_tblspc/", typ: tar.TypeDir, mode: 0o700},
		{name: "pg_tblspc/16384/", typ: tar.TypeSymlink, mode: 0o777, link: "/srv/pg/ts1"},
		{name: "./pg_wal/archive_status/", typ: tar.TypeDir, mode: 0o700},
	}
	for i, n := 0, 4+rng.IntN(len(sizes)); i < n; i++ {
		es = append(es, entry{name: fmt.Sprintf("base/%d/", i), typ: tar.TypeDir, mode: 0o700})
		for j, k := 0, rng.IntN(6); j < k; j++ {
			size := sizes[rng.IntN(len(sizes))]
			if rng.IntN(4) == 0 {
				size = rng.IntN(3 * fs)
			}
			es = append(es, entry{name: fmt.Sprintf("base/%d/%d", i, 16384+j), typ: tar.TypeReg, mode: 0o600, data: content(rng, size)})
		}
	}
	return append(es, entry{name: "global/pg_control", typ: tar.TypeReg, mode: 0o600, data: content(rng, 8192)})
}

// buildTar writes entries as a ustar stream with two trailing zero blocks,
// as PostgreSQL does.
func buildTar(t testing.TB, es []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	size := 1024
	for _, e := range es {
		size += 512 + (len(e.data)+511)/512*512
	}
	buf.Grow(size)
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{
			Name: e.name, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.data)), Linkname: e.link,
			ModTime: time.Unix(1700000000, 0), Uid: 100, Gid: 101, Uname: "postgres", Gname: "postgres",
			Format: tar.FormatUSTAR,
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pgHeader builds a header block as PostgreSQL's tar.c does: octal fields
// ending in a space, base-256 for sizes of 8 GiB and more.
func pgHeader(name string, typ byte, size int64, link string) []byte {
	h := make([]byte, 512)
	copy(h, name)
	copy(h[100:], fmt.Sprintf("%07o ", 0o600))
	copy(h[108:], fmt.Sprintf("%07o ", 100))
	copy(h[116:], fmt.Sprintf("%07o ", 101))
	if size >= 1<<33 {
		h[124] = 0x80
		for i := 135; i > 124; i-- {
			h[i] = byte(size)
			size >>= 8
		}
	} else {
		copy(h[124:], fmt.Sprintf("%011o ", size))
	}
	copy(h[136:], fmt.Sprintf("%011o ", 1700000000))
	h[156] = typ
	copy(h[157:], link)
	copy(h[257:], "ustar\x0000")
	copy(h[265:], "postgres")
	copy(h[297:], "postgres")
	copy(h[329:], "0000000 ")
	copy(h[337:], "0000000 ")
	setChecksum(h)
	return h
}

func setChecksum(h []byte) {
	copy(h[148:156], "        ")
	var sum int
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:], fmt.Sprintf("%07o ", sum))
}

// chunkWriter writes p to w in pieces of the given sizes, cycling.
func writeChunked(w io.Writer, p []byte, sizes ...int) error {
	for i := 0; len(p) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(p))
		if _, err := w.Write(p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// store runs a Writer over tarBytes in the given chunking.
func store(t testing.TB, tarBytes []byte, opt archive.Options, sizes ...int) (*archive.Result, []byte) {
	t.Helper()
	var out bytes.Buffer
	w := archive.NewWriter(&out, opt)
	if len(sizes) == 0 {
		sizes = []int{32 << 10}
	}
	if err := writeChunked(w, tarBytes, sizes...); err != nil {
		t.Fatalf("Write: %v", err)
	}
	res, err := w.Close()
	if err != nil {
		t.Fatalf("Close: %v", err)
	}
	return res, out.Bytes()
}

// wantMembers reads tarBytes with archive/tar and lists what the Writer
// should report, with SHA-256 checksums.
func wantMembers(t testing.TB, tarBytes []byte, h func() hash.Hash) ([]archive.Member, map[string][]byte) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(tarBytes))
	var ms []archive.Member
	data := map[string][]byte{}
	var off int64
	for {
		hd, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		m := archive.Member{
			Name: hd.Name, Type: hd.Typeflag, Mode: hd.Mode, Size: hd.Size, ModTime: hd.ModTime.Unix(),
			Linkname: hd.Linkname, HeaderOffset: off, DataOffset: off + 512,
		}
		if hd.Typeflag == tar.TypeReg && h != nil {
			hh := h()
			hh.Write(b)
			m.Checksum = hh.Sum(nil)
		}
		ms = append(ms, m)
		data[hd.Name] = b
		off += 512 + (hd.Size+511)/512*512
	}
	return ms, data
}

// decompressAll decodes a whole stored object as one zstd stream, as
// `zstd -d` does.
func decompressAll(t testing.TB, stored []byte) []byte {
	t.Helper()
	d, err := zstd.NewReader(bytes.NewReader(stored))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	b, err := io.ReadAll(d)
	if err != nil {
		t.Fatalf("decompress stored archive: %v", err)
	}
	return b
}

// checkStored verifies everything about one stored archive: the stored bytes,
// the index, frame rules, the Reader and the StreamReader.
func checkStored(t *testing.T, tarBytes []byte, opt archive.Options, res *archive.Result, stored []byte) {
	t.Helper()
	want, data := wantMembers(t, tarBytes, opt.Hash)
	if d := cmp.Diff(want, res.Members); d != "" {
		t.Fatalf("members (-want +got):\n%s", d)
	}
	if res.RawSize != int64(len(tarBytes)) || res.StoredSize != int64(len(stored)) {
		t.Fatalf("sizes %d/%d, want %d/%d", res.RawSize, res.StoredSize, len(tarBytes), len(stored))
	}
	if sum := crc32.Checksum(stored, crc32.MakeTable(crc32.Castagnoli)); res.StoredCRC32C != sum {
		t.Fatalf("StoredCRC32C %08x, the stored bytes have %08x", res.StoredCRC32C, sum)
	}
	if opt.Compression == archive.Zstd {
		if got := decompressAll(t, stored); !bytes.Equal(got, tarBytes) {
			t.Fatal("stored archive does not decompress to the input tar")
		}
	} else if !bytes.Equal(stored, tarBytes) {
		t.Fatal("uncompressed stored archive differs from the input tar")
	}

	idx, err := archive.ParseIndex(res.Index)
	if err != nil {
		t.Fatalf("ParseIndex: %v", err)
	}
	if d := cmp.Diff(res.Members, idx.Members); d != "" {
		t.Fatalf("index members (-result +index):\n%s", d)
	}
	checkFrames(t, tarBytes, stored, idx)

	r, err := archive.NewReader(bytes.NewReader(stored), int64(len(stored)), idx)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, uint64(len(tarBytes))))
	for _, m := range r.Members() {
		got, err := io.ReadAll(r.Open(m))
		if err != nil {
			t.Fatalf("Open(%s): %v", m.Name, err)
		}
		if !bytes.Equal(got, data[m.Name]) {
			t.Fatalf("Open(%s): data differs", m.Name)
		}
		if lm, ok := r.Lookup(m.Name); !ok || lm.HeaderOffset != m.HeaderOffset {
			t.Fatalf("Lookup(%s) = %v, %v", m.Name, lm.HeaderOffset, ok)
		}
		if m.Size == 0 {
			continue
		}
		ra := r.MemberReaderAt(m)
		for range 4 {
			blk := rng.Int64N((m.Size + 8191) / 8192)
			p := make([]byte, 8192)
			n, err := ra.ReadAt(p, blk*8192)
			wantN := min(8192, m.Size-blk*8192)
			if int64(n) != wantN || (n < len(p)) != (err == io.EOF) || (err != nil && err != io.EOF) {
				t.Fatalf("ReadAt(%s, block %d) = %d, %v; want %d", m.Name, blk, n, err, wantN)
			}
			if !bytes.Equal(p[:n], data[m.Name][blk*8192:blk*8192+int64(n)]) {
				t.Fatalf("ReadAt(%s, block %d): data differs", m.Name, blk)
			}
		}
	}

	sr := archive.NewStreamReader(bytes.NewReader(stored), opt.Compression)
	var walked []archive.Member
	for {
		m, err := sr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("StreamReader.Next: %v", err)
		}
		got, err := io.ReadAll(sr)
		if err != nil {
			t.Fatalf("StreamReader.Read(%s): %v", m.Name, err)
		}
		if !bytes.Equal(got, data[m.Name]) {
			t.Fatalf("StreamReader(%s): data differs", m.Name)
		}
		m.Checksum = nil
		walked = append(walked, *m)
	}
	for i := range want {
		want[i].Checksum = nil
	}
	if d := cmp.Diff(want, walked); d != "" {
		t.Fatalf("StreamReader members (-want +got):\n%s", d)
	}
}

// checkFrames verifies the frame rules: frames tile both streams, each stored
// frame decodes alone to its raw range, no frame exceeds the cap, and cuts
// only fall on headers, aligned data offsets or the trailer.
func checkFrames(t *testing.T, tarBytes, stored []byte, idx *archive.Index) {
	t.Helper()
	var raw, st int64
	cuts := map[int64]bool{}
	d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	defer d.Close()
	for i, f := range idx.Frames {
		if f.RawOffset != raw || f.StoredOffset != st {
			t.Fatalf("frame %d at %d/%d, want %d/%d", i, f.RawOffset, f.StoredOffset, raw, st)
		}
		if f.RawSize > int64(idx.FrameSize) {
			t.Fatalf("frame %d has %d bytes, cap %d", i, f.RawSize, idx.FrameSize)
		}
		seg := stored[f.StoredOffset : f.StoredOffset+f.StoredSize]
		if idx.Compression == archive.Zstd {
			got, err := d.DecodeAll(seg, nil)
			if err != nil || !bytes.Equal(got, tarBytes[f.RawOffset:f.RawOffset+f.RawSize]) {
				t.Fatalf("frame %d does not decode alone to its range: %v", i, err)
			}
		}
		raw += f.RawSize
		st += f.StoredSize
		if i > 0 {
			cuts[f.RawOffset] = true
		}
	}
	if raw != int64(len(tarBytes)) || st != int64(len(stored)) {
		t.Fatalf("frames cover %d/%d bytes, want %d/%d", raw, st, len(tarBytes), len(stored))
	}
	var trailer int64
	for _, m := range idx.Members {
		delete(cuts, m.HeaderOffset)
		for c := range cuts {
			if c > m.DataOffset && c < m.DataOffset+m.Size && (c-m.DataOffset)%int64(idx.DataAlign) == 0 {
				delete(cuts, c)
			}
		}
		trailer = m.DataOffset + (m.Size+511)/512*512
	}
	for c := range cuts {
		if c < trailer {
			t.Fatalf("frame cut at %d is not allowed", c)
		}
	}
}

func isCorrupt(err error) bool { return errors.Is(err, archive.ErrCorrupt) }
