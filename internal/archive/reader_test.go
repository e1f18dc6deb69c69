package archive_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/holdfast-backup/holdfast/internal/archive"
	"github.com/klauspost/compress/zstd"
)

// smallArchive stores a few hundred KiB of members across many frames.
func smallArchive(t *testing.T, c archive.Compression) ([]byte, *archive.Result, []byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(11, 11))
	var es []entry
	for i := range 12 {
		es = append(es, entry{name: fmt.Sprintf("base/1/%d", i), typ: tar.TypeReg, mode: 0o600, data: content(rng, rng.IntN(60000))})
	}
	tb := buildTar(t, es)
	res, stored := store(t, tb, archive.Options{Compression: c, FrameSize: archive.MinFrameSize, Hash: crc32c})
	return tb, res, stored
}

// walk reads a stored archive through a StreamReader and returns the first
// error other than the final io.EOF.
func walk(r io.Reader, c archive.Compression) error {
	sr := archive.NewStreamReader(r, c)
	defer sr.Close()
	for {
		_, err := sr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, sr); err != nil {
			return err
		}
	}
}

func TestStreamReaderCorruption(t *testing.T) {
	tb, _, stored := smallArchive(t, archive.Zstd)
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for i := 0; i < len(stored); i += 1 + len(stored)/300 {
		b := bytes.Clone(stored)
		b[i] ^= 0x10
		err := walk(bytes.NewReader(b), archive.Zstd)
		if isCorrupt(err) {
			continue
		}
		// Some bits of a zstd frame do not change what it decodes to
		// (libzstd writes such frames): then the content must be intact.
		// The stored-object digest is what notices such a flip.
		if got, derr := dec.DecodeAll(b, nil); err != nil || derr != nil || !bytes.Equal(got, tb) {
			t.Fatalf("byte %d of %d flipped: StreamReader = %v and the content changed, want ErrCorrupt", i, len(stored), err)
		}
	}
	for _, n := range []int{0, 1, 100, len(stored) / 2, len(stored) - 5, len(stored) - 1} {
		if err := walk(bytes.NewReader(stored[:n]), archive.Zstd); !isCorrupt(err) {
			t.Fatalf("truncated to %d: StreamReader = %v, want ErrCorrupt", n, err)
		}
	}
	if err := walk(bytes.NewReader(append(bytes.Clone(stored), "junk"...)), archive.Zstd); !isCorrupt(err) {
		t.Fatalf("trailing junk: StreamReader = %v, want ErrCorrupt", err)
	}
}

func TestStreamReaderUncompressed(t *testing.T) {
	tb, _, stored := smallArchive(t, archive.None)
	if err := walk(iotest.OneByteReader(bytes.NewReader(stored)), archive.None); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 511, 512, 1000, len(tb) - 1024, len(tb) - 512, len(tb) - 1} {
		if err := walk(bytes.NewReader(tb[:n]), archive.None); !isCorrupt(err) {
			t.Fatalf("truncated to %d: StreamReader = %v, want ErrCorrupt", n, err)
		}
	}
	b := bytes.Clone(tb)
	b[0] ^= 1
	if err := walk(bytes.NewReader(b), archive.None); !isCorrupt(err) {
		t.Fatalf("bad header: %v", err)
	}
}

func TestStreamReaderSourceError(t *testing.T) {
	errNet := errors.New("connection reset")
	for _, c := range []archive.Compression{archive.Zstd, archive.None} {
		_, _, stored := smallArchive(t, c)
		r := io.MultiReader(bytes.NewReader(stored[:len(stored)/2]), iotest.ErrReader(errNet))
		err := walk(iotest.HalfReader(r), c)
		if !errors.Is(err, errNet) || isCorrupt(err) {
			t.Fatalf("%s: StreamReader = %v, want the source's error", c, err)
		}
	}
}

func TestStreamReaderSticky(t *testing.T) {
	_, _, stored := smallArchive(t, archive.Zstd)
	sr := archive.NewStreamReader(bytes.NewReader(stored[:len(stored)/2]), archive.Zstd)
	var first error
	for first == nil {
		if _, first = sr.Next(); first == nil {
			_, first = io.Copy(io.Discard, sr)
		}
	}
	if _, err := sr.Next(); err != first {
		t.Fatalf("Next after %v = %v", first, err)
	}
	if _, err := sr.Read(make([]byte, 1)); err != first {
		t.Fatalf("Read after %v = %v", first, err)
	}
}

// TestReaderCorruption flips bytes of the stored data: every member read
// either returns the right data or fails with ErrCorrupt, and some fail.
func TestReaderCorruption(t *testing.T) {
	tb, res, stored := smallArchive(t, archive.Zstd)
	_, data := wantMembers(t, tb, nil)
	idx, err := archive.ParseIndex(res.Index)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(stored); i += 1 + len(stored)/100 {
		b := bytes.Clone(stored)
		b[i] ^= 0x04
		r, err := archive.NewReader(bytes.NewReader(b), int64(len(b)), idx)
		if err != nil {
			t.Fatal(err)
		}
		failed := false
		for _, m := range r.Members() {
			got, err := io.ReadAll(r.Open(m))
			switch {
			case err != nil && !isCorrupt(err):
				t.Fatalf("byte %d: Open(%s) = %v, want ErrCorrupt", i, m.Name, err)
			case err != nil:
				failed = true
			case !bytes.Equal(got, data[m.Name]):
				t.Fatalf("byte %d: Open(%s) returned wrong data without an error", i, m.Name)
			}
		}
		if !failed {
			t.Fatalf("byte %d flipped: no read failed", i)
		}
	}
}

func TestReaderShortObject(t *testing.T) {
	_, res, stored := smallArchive(t, archive.Zstd)
	idx, _ := archive.ParseIndex(res.Index)
	if _, err := archive.NewReader(bytes.NewReader(stored), int64(len(stored))-1, idx); !isCorrupt(err) {
		t.Fatalf("NewReader with wrong size = %v", err)
	}
	r, _ := archive.NewReader(bytes.NewReader(stored[:len(stored)/2]), int64(len(stored)), idx)
	ms := r.Members()
	last := ms[len(ms)-1]
	if _, err := io.ReadAll(r.Open(last)); !isCorrupt(err) {
		t.Fatalf("Open on a short object = %v", err)
	}
	if _, err := r.ReadAt(last, make([]byte, 10), 0); !isCorrupt(err) {
		t.Fatalf("ReadAt on a short object = %v", err)
	}
}

// TestReaderIndexMismatch opens members through an index that describes
// another archive of the same size.
func TestReaderIndexMismatch(t *testing.T) {
	a := buildTar(t, []entry{{name: "base/aaa", typ: tar.TypeReg, mode: 0o600, data: []byte("hello")}})
	b := buildTar(t, []entry{{name: "base/bbb", typ: tar.TypeReg, mode: 0o600, data: []byte("hello")}})
	opt := archive.Options{Compression: archive.None}
	resA, _ := store(t, a, opt)
	idx, _ := archive.ParseIndex(resA.Index)
	r, err := archive.NewReader(bytes.NewReader(b), int64(len(b)), idx)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := r.Lookup("base/aaa")
	if !ok {
		t.Fatal("Lookup failed")
	}
	if _, err := io.ReadAll(r.Open(m)); !isCorrupt(err) {
		t.Fatalf("Open through the wrong index = %v", err)
	}
	// A member that is not in the archive at all.
	m.Size = 1 << 20
	if _, err := r.ReadAt(m, make([]byte, 10), 0); err == nil {
		t.Fatal("ReadAt of a member outside the archive succeeded")
	}
}

func TestLookup(t *testing.T) {
	tb := buildTar(t, []entry{
		{name: "./pg_wal/archive_status/", typ: tar.TypeDir, mode: 0o700},
		{name: "pg_tblspc/16384/", typ: tar.TypeSymlink, mode: 0o777, link: "/ts"},
		{name: "dup", typ: tar.TypeReg, data: []byte("one")},
		{name: "dup", typ: tar.TypeReg, data: []byte("two")},
	})
	res, stored := store(t, tb, archive.Options{Compression: archive.Zstd})
	idx, _ := archive.ParseIndex(res.Index)
	r, _ := archive.NewReader(bytes.NewReader(stored), int64(len(stored)), idx)
	for name, want := range map[string]string{
		"pg_wal/archive_status":    "./pg_wal/archive_status/",
		"./pg_wal/archive_status/": "./pg_wal/archive_status/",
		"pg_tblspc/16384":          "pg_tblspc/16384/",
		"dup":                      "dup",
	} {
		m, ok := r.Lookup(name)
		if !ok || m.Name != want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", name, m.Name, ok, want)
		}
	}
	m, _ := r.Lookup("dup")
	if got, _ := io.ReadAll(r.Open(m)); string(got) != "two" {
		t.Errorf("Lookup(dup) reads %q, want the later member", got)
	}
	if _, ok := r.Lookup("missing"); ok {
		t.Error("Lookup(missing) succeeded")
	}
}

func TestReaderConcurrent(t *testing.T) {
	for _, c := range []archive.Compression{archive.Zstd, archive.None} {
		tb, res, stored := smallArchive(t, c)
		_, data := wantMembers(t, tb, nil)
		idx, _ := archive.ParseIndex(res.Index)
		r, _ := archive.NewReader(bytes.NewReader(stored), int64(len(stored)), idx)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(g), 1))
				ms := r.Members()
				for range 200 {
					m := ms[rng.IntN(len(ms))]
					if m.Size == 0 {
						continue
					}
					off := rng.Int64N(m.Size)
					p := make([]byte, 1+rng.IntN(20000))
					n, err := r.ReadAt(m, p, off)
					if err != nil && err != io.EOF {
						t.Error(err)
						return
					}
					if !bytes.Equal(p[:n], data[m.Name][off:off+int64(n)]) {
						t.Errorf("ReadAt(%s, %d): data differs", m.Name, off)
						return
					}
				}
			})
		}
		wg.Wait()
	}
}
