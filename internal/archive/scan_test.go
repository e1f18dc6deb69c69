package archive_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/holdfast-backup/holdfast/internal/archive"
)

// crcLE is the CRC in PostgreSQL's manifest byte order; crcBE the one of
// hash/crc32's Sum, which the Writer's digests here use.
func crcLE(crc uint32) []byte { return binary.LittleEndian.AppendUint32(nil, crc) }
func crcBE(crc uint32) []byte { return binary.BigEndian.AppendUint32(nil, crc) }

type scanned struct {
	name string
	sum  []byte
}

func scanAll(stored []byte, idx *archive.Index, opt archive.ScanOptions) ([]scanned, error) {
	var got []scanned
	err := archive.Scan(bytes.NewReader(stored), idx, opt, func(m *archive.Member, sum []byte) error {
		got = append(got, scanned{m.Name, sum})
		return nil
	})
	return got, err
}

// Scan visits every member in order with the digest the Writer computed,
// in both hashing modes, whatever the frames and compression.
func TestScanDigests(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	small := buildTar(t, randomEntries(rng, archive.MinFrameSize))
	// Members of up to a few MiB: an uncompressed frame is read in
	// several pieces, and members and headers fall anywhere among them.
	large := buildTar(t, randomEntries(rng, 1<<20))
	for _, c := range []archive.Compression{archive.None, archive.Zstd} {
		for _, fs := range []int{archive.MinFrameSize, 64 << 10, archive.DefaultFrameSize, -archive.DefaultFrameSize} {
			tb := small
			if fs < 0 {
				tb, fs = large, -fs
			}
			res, stored := store(t, tb, archive.Options{Compression: c, FrameSize: fs, Hash: crc32c})
			idx, err := archive.ParseIndex(res.Index)
			if err != nil {
				t.Fatal(err)
			}
			// CRC-32C pieces combined (in the workers' own buffers, or in
			// frames handed to Stored), or one hash fed in order.
			modes := map[string]archive.ScanOptions{
				"crc32c":        {CRC32C: crcBE, Workers: 3},
				"crc32c-pieces": {CRC32C: crcBE, Workers: 2, ReadPieces: true},
				"crc32c+stored": {CRC32C: crcBE, Workers: 2, Stored: xxhash.New()},
				"hash":          {Hash: crc32c, Workers: 1, Stored: xxhash.New()},
			}
			for mode, opt := range modes {
				var storedCRC uint32
				opt.StoredCRC32C = &storedCRC
				got, err := scanAll(stored, idx, opt)
				if err != nil {
					t.Fatalf("%v, frames %d, %s: %v", c, fs, mode, err)
				}
				if len(got) != len(res.Members) {
					t.Fatalf("%v, frames %d, %s: visited %d members, want %d", c, fs, mode, len(got), len(res.Members))
				}
				for i, m := range res.Members {
					if got[i].name != m.Name || !bytes.Equal(got[i].sum, m.Checksum) {
						t.Fatalf("%v, frames %d, %s: member %d is %q %x, want %q %x", c, fs, mode, i, got[i].name, got[i].sum, m.Name, m.Checksum)
					}
				}
				if d, ok := opt.Stored.(*xxhash.Digest); ok && d.Sum64() != xxhash.Sum64(stored) {
					t.Errorf("%v, frames %d, %s: the stored bytes Scan passed on digest to %x, want %x", c, fs, mode, d.Sum64(), xxhash.Sum64(stored))
				}
				if storedCRC != res.StoredCRC32C {
					t.Errorf("%v, frames %d, %s: StoredCRC32C %08x, want %08x", c, fs, mode, storedCRC, res.StoredCRC32C)
				}
			}
		}
	}
}

// Skipped members and members that are not files carry no digest; the
// stored object's CRC still covers them.
func TestScanSkip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	tb := buildTar(t, randomEntries(rng, archive.MinFrameSize))
	for _, c := range []archive.Compression{archive.None, archive.Zstd} {
		t.Run(c.String(), func(t *testing.T) { testScanSkip(t, tb, c) })
	}
}

func testScanSkip(t *testing.T, tb []byte, c archive.Compression) {
	res, stored := store(t, tb, archive.Options{Compression: c, FrameSize: archive.MinFrameSize, Hash: crc32c})
	idx, _ := archive.ParseIndex(res.Index)
	skip := func(m *archive.Member) bool { return len(m.Name)%2 == 0 }
	var storedCRC uint32
	got, err := scanAll(stored, idx, archive.ScanOptions{CRC32C: crcBE, Skip: skip, StoredCRC32C: &storedCRC})
	if err != nil {
		t.Fatal(err)
	}
	if storedCRC != res.StoredCRC32C {
		t.Errorf("StoredCRC32C %08x, want %08x", storedCRC, res.StoredCRC32C)
	}
	hashed, skipped := 0, 0
	for i, m := range res.Members {
		switch {
		case m.Type != archive.TypeReg || skip(&m):
			if got[i].sum != nil {
				t.Errorf("%q (type %c, skipped %v) has a digest", m.Name, m.Type, skip(&m))
			}
			if m.Type == archive.TypeReg {
				skipped++
			}
		case !bytes.Equal(got[i].sum, m.Checksum):
			t.Errorf("%q: digest %x, want %x", m.Name, got[i].sum, m.Checksum)
		default:
			hashed++
		}
	}
	if hashed == 0 || skipped == 0 {
		t.Errorf("%d files hashed, %d skipped; the test needs some of each", hashed, skipped)
	}
}

// Damage to the stored bytes is an ErrCorrupt, or leaves the content
// intact (then the stored digest differs); damage to what the index says
// is found in the tar headers; a short object is found.
func TestScanDamage(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	tb := buildTar(t, randomEntries(rng, archive.MinFrameSize))
	for _, c := range []archive.Compression{archive.None, archive.Zstd} {
		res, stored := store(t, tb, archive.Options{Compression: c, FrameSize: archive.MinFrameSize, Hash: crc32c})
		idx, _ := archive.ParseIndex(res.Index)
		// Without a digest of the stored bytes, Scan itself must notice:
		// an error, or a file whose digest changed. What it may miss is
		// what no member covers: tar padding of an uncompressed archive,
		// and zstd bits that do not change what a frame decodes to.
		covered := func(off int64) bool {
			for _, m := range idx.Members {
				if off >= m.HeaderOffset && off < m.DataOffset+m.Size {
					return true
				}
			}
			return false
		}
		for i := 0; i < len(stored); i += 1 + len(stored)/200 {
			b := bytes.Clone(stored)
			b[i] ^= 0x04
			// With the stored object's CRC, every flip is noticed.
			var crc uint32
			if _, err := scanAll(b, idx, archive.ScanOptions{CRC32C: crcBE, StoredCRC32C: &crc}); err == nil && crc == res.StoredCRC32C {
				t.Fatalf("%v, byte %d flipped: the stored CRC-32C is unchanged", c, i)
			}
			got, err := scanAll(b, idx, archive.ScanOptions{CRC32C: crcBE})
			if err != nil {
				if !isCorrupt(err) {
					t.Fatalf("%v, byte %d flipped: %v, want ErrCorrupt", c, i, err)
				}
				continue
			}
			same := true
			for k, m := range res.Members {
				same = same && bytes.Equal(got[k].sum, m.Checksum)
			}
			if !same {
				continue
			}
			if c == archive.None && covered(int64(i)) {
				t.Fatalf("none, byte %d flipped inside a member: nothing noticed", i)
			}
			if c == archive.Zstd && !bytes.Equal(decompressAll(t, b), tb) {
				t.Fatalf("zstd, byte %d flipped: the content changed and nothing noticed", i)
			}
		}
		if _, err := scanAll(stored[:len(stored)-1], idx, archive.ScanOptions{}); !isCorrupt(err) {
			t.Errorf("%v, object one byte short: %v, want ErrCorrupt", c, err)
		}
		// An index whose member names differ from the tar's headers.
		bad, _ := archive.ParseIndex(res.Index)
		bad.Members[len(bad.Members)/2].Name += "x"
		if _, err := scanAll(stored, bad, archive.ScanOptions{}); !isCorrupt(err) {
			t.Errorf("%v, index naming another member: %v, want ErrCorrupt", c, err)
		}
		// An index whose frames do not cover the archive.
		bad, _ = archive.ParseIndex(res.Index)
		bad.Frames[1].RawOffset++
		if _, err := scanAll(stored, bad, archive.ScanOptions{}); !isCorrupt(err) {
			t.Errorf("%v, frames out of order: %v, want ErrCorrupt", c, err)
		}
	}
}

// visit's error stops the scan and is returned as is.
func TestScanVisitError(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	tb := buildTar(t, randomEntries(rng, archive.MinFrameSize))
	res, stored := store(t, tb, archive.Options{Compression: archive.Zstd, FrameSize: archive.MinFrameSize, Hash: crc32c})
	idx, _ := archive.ParseIndex(res.Index)
	stop := errors.New("stop")
	n := 0
	err := archive.Scan(bytes.NewReader(stored), idx, archive.ScanOptions{Hash: crc32c}, func(*archive.Member, []byte) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	})
	if err != stop || n != 3 {
		t.Fatalf("Scan = %v after %d visits, want the visitor's error after 3", err, n)
	}
}

// Keep hands over the data of small members that lie in one frame, with or
// without hashing; a member spread over frames is not kept.
func TestScanKeep(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	es := randomEntries(rng, archive.MinFrameSize)
	tb := buildTar(t, es)
	data := map[string][]byte{}
	for _, e := range es {
		data[e.name] = e.data
	}
	res, stored := store(t, tb, archive.Options{Compression: archive.Zstd, FrameSize: archive.MinFrameSize, Hash: crc32c})
	idx, _ := archive.ParseIndex(res.Index)
	for _, hashing := range []bool{false, true} {
		kept := map[string][]byte{}
		opt := archive.ScanOptions{
			Keep: func(m *archive.Member) bool { return true },
			Kept: func(m *archive.Member, b []byte) { kept[m.Name] = b },
		}
		if hashing {
			opt.CRC32C = crcLE
		}
		if _, err := scanAll(stored, idx, opt); err != nil {
			t.Fatal(err)
		}
		spread := 0
		for _, m := range idx.Members {
			if m.Type != archive.TypeReg {
				continue
			}
			b, ok := kept[m.Name]
			frameOf := func(off int64) int {
				for i, f := range idx.Frames {
					if off < f.RawOffset+f.RawSize {
						return i
					}
				}
				return -1
			}
			inOne := m.Size == 0 || frameOf(m.DataOffset) == frameOf(m.DataOffset+m.Size-1)
			switch {
			case ok && !bytes.Equal(b, data[m.Name]):
				t.Errorf("hashing %v: %q kept with different data", hashing, m.Name)
			case ok != inOne:
				t.Errorf("hashing %v: %q (in one frame: %v) kept: %v", hashing, m.Name, inOne, ok)
			case !ok:
				spread++
			}
		}
		if len(kept) == 0 || spread == 0 {
			t.Errorf("hashing %v: %d members kept, %d spread over frames; want some of each", hashing, len(kept), spread)
		}
	}
}

// Stopping scans and closing decoders early leaves no goroutine behind:
// a frame queued but never handed to a worker used to block the drain.
func TestStoppedPipelinesLeaveNoGoroutines(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	tb := buildTar(t, randomEntries(rng, archive.MinFrameSize))
	res, stored := store(t, tb, archive.Options{Compression: archive.Zstd, FrameSize: archive.MinFrameSize, Hash: crc32c})
	idx, _ := archive.ParseIndex(res.Index)
	before := runtime.NumGoroutine()
	stop := errors.New("stop")
	for range 200 {
		archive.Scan(bytes.NewReader(stored), idx, archive.ScanOptions{Workers: 2}, func(*archive.Member, []byte) error { return stop })
		d := archive.NewParallelDecoder(bytes.NewReader(stored), idx.Frames, 2)
		d.Read(make([]byte, 10))
		d.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+4 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after 200 stopped scans and decoders:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestScanReusesBuffers checks that a second scan given the same
// ScanBuffers decodes into the buffers the first left there (verify scans
// the base archive, then the WAL archive): it allocates far less than one
// frame per worker.
func TestScanReusesBuffers(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	tb := buildTar(t, randomEntries(rng, 1<<20))
	const frame = 1 << 20
	res, stored := store(t, tb, archive.Options{Compression: archive.Zstd, FrameSize: frame, Hash: crc32c})
	idx, err := archive.ParseIndex(res.Index)
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Frames) < 4 {
		t.Fatalf("test archive has %d frames, want at least 4", len(idx.Frames))
	}
	var bufs archive.ScanBuffers
	defer bufs.Release()
	scan := func() uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if _, err := scanAll(stored, idx, archive.ScanOptions{CRC32C: crcBE, Workers: 2, Buffers: &bufs}); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	scan()
	if got := scan(); got >= frame {
		t.Fatalf("a second scan of %d frames of %d KiB on 2 workers allocated %d KiB", len(idx.Frames), frame>>10, got>>10)
	}
}
