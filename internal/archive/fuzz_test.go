package archive_test

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/holdfast-backup/holdfast/internal/archive"
)

// fuzzOptions use the smallest frames so that fuzz inputs cross frames.
var fuzzOptions = archive.Options{Compression: archive.Zstd, FrameSize: archive.MinFrameSize, Concurrency: 2, Hash: crc32c}

// seedArchive is a small valid stored archive for seeds.
func seedArchive(f *testing.F, c archive.Compression, withHash bool) ([]byte, *archive.Result, []byte) {
	tb := buildTar(f, []entry{
		{name: "backup_label", typ: tar.TypeReg, mode: 0o600, data: []byte("START WAL LOCATION: 0/2000028\n")},
		{name: "base/", typ: tar.TypeDir, mode: 0o700},
		{name: "base/1/1259", typ: tar.TypeReg, mode: 0o600, data: content(rand.New(rand.NewPCG(1, 2)), 40000)},
		{name: "pg_tblspc/16384/", typ: tar.TypeSymlink, mode: 0o777, link: "/srv/ts"},
		{name: "global/pg_control", typ: tar.TypeReg, mode: 0o600, data: bytes.Repeat([]byte{1}, 8192)},
	})
	opt := fuzzOptions
	opt.Compression = c
	if !withHash {
		opt.Hash = nil
	}
	res, stored := store(f, tb, opt)
	return tb, res, stored
}

// patternReaderAt serves size bytes that repeat data.
type patternReaderAt struct {
	data []byte
	size int64
}

func (p patternReaderAt) ReadAt(b []byte, off int64) (int, error) {
	n := 0
	for n < len(b) && off+int64(n) < p.size && len(p.data) > 0 {
		b[n] = p.data[(off+int64(n))%int64(len(p.data))]
		n++
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func FuzzParseIndex(f *testing.F) {
	_, res, stored := seedArchive(f, archive.Zstd, true)
	_, resNone, _ := seedArchive(f, archive.None, false)
	f.Add(res.Index)
	f.Add(resNone.Index)
	f.Add([]byte("HFTARIDX\x01\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b, fixCRC(b)} {
			idx, err := archive.ParseIndex(in)
			if err != nil {
				continue
			}
			out, err := idx.MarshalBinary()
			if err != nil || !bytes.Equal(out, in) {
				t.Fatalf("accepted index does not re-encode to itself: %v", err)
			}
			if idx.FrameSize > 256<<10 {
				continue // keep reads cheap
			}
			r, err := archive.NewReader(patternReaderAt{stored, idx.StoredSize}, idx.StoredSize, idx)
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range r.Members() {
				if i > 20 {
					break
				}
				io.Copy(io.Discard, io.LimitReader(r.Open(m), 1<<20))
				r.ReadAt(m, make([]byte, 8192), m.Size/2)
			}
		}
	})
}

func FuzzStreamReader(f *testing.F) {
	tb, _, stored := seedArchive(f, archive.Zstd, false)
	f.Add(stored, true)
	f.Add(stored[:len(stored)/2], true)
	f.Add(tb, false)
	f.Add(tb[:1536], false)
	f.Add(make([]byte, 1024), false)
	f.Fuzz(func(t *testing.T, b []byte, compressed bool) {
		c := archive.None
		if compressed {
			c = archive.Zstd
		}
		err := walk(bytes.NewReader(b), c)
		if err != nil && !isCorrupt(err) {
			t.Fatalf("error does not wrap ErrCorrupt: %v", err)
		}
		if c == archive.None {
			// The Writer and the StreamReader agree on what a tar is.
			w := archive.NewWriter(io.Discard, archive.Options{Compression: archive.None})
			w.Write(b)
			_, werr := w.Close()
			if (err == nil) != (werr == nil) {
				t.Fatalf("StreamReader: %v, Writer: %v", err, werr)
			}
		}
	})
}

// FuzzWriter writes arbitrary bytes, and a valid tar built from them, in an
// arbitrary chunking. Arbitrary bytes must fail cleanly or store a tar that
// reads back; the valid tar must always round-trip.
func FuzzWriter(f *testing.F) {
	tb, _, _ := seedArchive(f, archive.None, false)
	f.Add(tb, uint64(1))
	f.Add(tb[:2000], uint64(2))
	f.Add([]byte("\x03\x40\x01\x02\x05hello"), uint64(3))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, seed>>7))
		chunks := make([]int, 1+rng.IntN(8))
		for i := range chunks {
			chunks[i] = 1 + rng.IntN(2000)
		}

		res, stored, err := storeErr(data, chunks)
		if err != nil {
			if !isCorrupt(err) {
				t.Fatalf("arbitrary bytes: %v, want ErrCorrupt", err)
			}
		} else {
			checkAccepted(t, data, res, stored)
		}

		valid := tarFromBytes(t, data)
		res, stored, err = storeErr(valid, chunks)
		if err != nil {
			t.Fatalf("valid tar refused: %v", err)
		}
		checkStored(t, valid, fuzzOptions, res, stored)
	})
}

func storeErr(data []byte, chunks []int) (*archive.Result, []byte, error) {
	var out bytes.Buffer
	w := archive.NewWriter(&out, fuzzOptions)
	writeChunked(w, data, chunks...)
	res, err := w.Close()
	return res, out.Bytes(), err
}

// checkAccepted checks an arbitrary input the Writer accepted without
// relying on archive/tar, which has its own opinions about odd headers.
func checkAccepted(t *testing.T, data []byte, res *archive.Result, stored []byte) {
	if got := decompressAll(t, stored); !bytes.Equal(got, data) {
		t.Fatal("stored archive does not decompress to the input")
	}
	idx, err := archive.ParseIndex(res.Index)
	if err != nil {
		t.Fatalf("ParseIndex of a written index: %v", err)
	}
	if d := cmp.Diff(res.Members, idx.Members); d != "" {
		t.Fatalf("index members differ:\n%s", d)
	}
	checkFrames(t, data, stored, idx)
	sr := archive.NewStreamReader(bytes.NewReader(stored), archive.Zstd)
	var walked []archive.Member
	for {
		m, err := sr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("StreamReader on an accepted archive: %v", err)
		}
		walked = append(walked, *m)
	}
	want := make([]archive.Member, len(res.Members))
	for i, m := range res.Members {
		m.Checksum = nil
		want[i] = m
	}
	if d := cmp.Diff(want, walked); d != "" {
		t.Fatalf("StreamReader members differ:\n%s", d)
	}
}

// tarFromBytes builds a valid tar whose shape comes from b: member kinds,
// sizes up to 64 KiB, contents.
func tarFromBytes(t *testing.T, b []byte) []byte {
	var es []entry
	for i := 0; i+3 <= len(b) && len(es) < 50; i += 3 {
		name := fmt.Sprintf("base/%d/%d", i, b[i])
		switch b[i] % 4 {
		case 0:
			es = append(es, entry{name: name + "/", typ: tar.TypeDir, mode: 0o700})
		case 1:
			es = append(es, entry{name: name + "/", typ: tar.TypeSymlink, mode: 0o777, link: "/ts"})
		default:
			size := int(b[i+1])<<8 | int(b[i+2])
			data := make([]byte, size)
			for j := range data {
				data[j] = b[(i+j)%len(b)]
			}
			es = append(es, entry{name: name, typ: tar.TypeReg, mode: 0o600, data: data})
		}
	}
	return buildTar(t, es)
}

// FuzzScan feeds Scan damaged stored bytes and damaged (but parseable)
// indexes: it must never panic or hang, must fail with ErrCorrupt when it
// fails on its own, and when it succeeds with the stored bytes intact it
// must give the Writer's digests.
func FuzzScan(f *testing.F) {
	_, res, stored := seedArchive(f, archive.Zstd, true)
	_, resNone, storedNone := seedArchive(f, archive.None, true)
	f.Add(stored, res.Index, true)
	f.Add(storedNone, resNone.Index, false)
	f.Add(stored[:len(stored)/2], res.Index, true)
	f.Fuzz(func(t *testing.T, b, ib []byte, crcMode bool) {
		idx, err := archive.ParseIndex(fixCRC(ib))
		if err != nil || idx.FrameSize > 256<<10 || len(idx.Frames) > 64 {
			return
		}
		opt := archive.ScanOptions{Hash: crc32c, Workers: 2}
		if crcMode {
			opt = archive.ScanOptions{CRC32C: func(c uint32) []byte { return binary.BigEndian.AppendUint32(nil, c) }, Workers: 2, ReadPieces: true}
		}
		var storedCRC uint32
		opt.StoredCRC32C = &storedCRC
		var sums [][]byte
		err = archive.Scan(bytes.NewReader(b), idx, opt, func(m *archive.Member, sum []byte) error {
			sums = append(sums, sum)
			return nil
		})
		if err != nil {
			if !isCorrupt(err) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if len(sums) != len(idx.Members) {
			t.Fatalf("visited %d of %d members", len(sums), len(idx.Members))
		}
		if want := crc32.Checksum(b[:idx.StoredSize], crc32.MakeTable(crc32.Castagnoli)); storedCRC != want {
			t.Fatalf("StoredCRC32C %08x, the stored bytes have %08x", storedCRC, want)
		}
		if bytes.Equal(b, stored) && bytes.Equal(ib, res.Index) {
			for i, m := range res.Members {
				if !bytes.Equal(sums[i], m.Checksum) {
					t.Fatalf("member %q: digest %x, want %x", m.Name, sums[i], m.Checksum)
				}
			}
		}
	})
}
