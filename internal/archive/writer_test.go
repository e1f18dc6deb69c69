package archive_test

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/holdfast-backup/holdfast/internal/archive"
	"github.com/holdfast-backup/holdfast/internal/envtest"
)

func TestRoundTrip(t *testing.T) {
	for _, c := range []archive.Compression{archive.Zstd, archive.None} {
		for seed := range uint64(4) {
			t.Run(fmt.Sprintf("%s/seed%d", c, seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 42))
				tb := buildTar(t, randomEntries(rng, testFrameSize))
				opt := archive.Options{Compression: c, FrameSize: testFrameSize, Concurrency: 3, Hash: sha256.New}
				res, stored := store(t, tb, opt, 1+rng.IntN(70000))
				checkStored(t, tb, opt, res, stored)
			})
		}
	}
}

// TestDefaultFrames uses the production frame size, so in-member cuts fall on
// 1 MiB data offsets.
func TestDefaultFrames(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	tb := buildTar(t, []entry{
		{name: "base/1/", typ: tar.TypeDir, mode: 0o700},
		{name: "base/1/small", typ: tar.TypeReg, mode: 0o600, data: content(rng, 3<<20+100)},
		{name: "base/1/16384", typ: tar.TypeReg, mode: 0o600, data: content(rng, 6<<20+8192)},
		{name: "global/pg_control", typ: tar.TypeReg, mode: 0o600, data: content(rng, 8192)},
	})
	opt := archive.Options{Compression: archive.Zstd, Hash: crc32c}
	res, stored := store(t, tb, opt)
	checkStored(t, tb, opt, res, stored)
	idx, _ := archive.ParseIndex(res.Index)
	if idx.FrameSize != archive.DefaultFrameSize || idx.DataAlign != 1<<20 {
		t.Fatalf("frame size %d, align %d", idx.FrameSize, idx.DataAlign)
	}
	big := idx.Members[2]
	inside := 0
	for _, f := range idx.Frames {
		if f.RawOffset > big.DataOffset && f.RawOffset < big.DataOffset+big.Size {
			inside++
		}
	}
	if inside == 0 {
		t.Fatalf("no frame starts inside %s: %+v", big.Name, idx.Frames)
	}
}

func TestChunkings(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	tb := buildTar(t, randomEntries(rng, testFrameSize))
	opt := archive.Options{Compression: archive.Zstd, FrameSize: testFrameSize, Concurrency: 2, Hash: crc32c}
	for _, sizes := range [][]int{{1}, {511}, {512}, {513}, {32768}, {1, 1023, 7, 4096, 100000}} {
		t.Run(fmt.Sprint(sizes), func(t *testing.T) {
			res, stored := store(t, tb, opt, sizes...)
			checkStored(t, tb, opt, res, stored)
		})
	}
	readers := map[string]func(io.Reader) io.Reader{
		"OneByte": iotest.OneByteReader,
		"Half":    iotest.HalfReader,
		"DataErr": iotest.DataErrReader,
	}
	for name, wrap := range readers {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			w := archive.NewWriter(&out, opt)
			if _, err := io.Copy(w, wrap(bytes.NewReader(tb))); err != nil {
				t.Fatal(err)
			}
			res, err := w.Close()
			if err != nil {
				t.Fatal(err)
			}
			checkStored(t, tb, opt, res, out.Bytes())
		})
	}
}

// TestPostgresHeaders feeds headers written the way PostgreSQL writes them,
// including a base-256 size field, which Go's archive/tar would not emit for
// a small size.
func TestPostgresHeaders(t *testing.T) {
	var tb bytes.Buffer
	tb.Write(pgHeader("PG_17_202406281/", '5', 0, ""))
	h := pgHeader("PG_17_202406281/5/1259", '0', 0, "")
	h[124] = 0x80 // size 1000 in base-256
	for i := 125; i < 136; i++ {
		h[i] = 0
	}
	h[134], h[135] = 0x03, 0xe8
	setChecksum(h)
	tb.Write(h)
	tb.Write(bytes.Repeat([]byte{'x'}, 1000))
	tb.Write(make([]byte, 24))
	tb.Write(pgHeader("pg_tblspc/16385/", '2', 0, "/srv/ts"))
	tb.Write(make([]byte, 1024))

	opt := archive.Options{Compression: archive.Zstd, FrameSize: testFrameSize, Hash: sha256.New}
	res, stored := store(t, tb.Bytes(), opt, 100)
	checkStored(t, tb.Bytes(), opt, res, stored)
	if m := res.Members[1]; m.Size != 1000 || m.Mode != 0o600 || m.ModTime != 1700000000 {
		t.Fatalf("base-256 member = %+v", m)
	}
}

func TestLargeSizeHeader(t *testing.T) {
	// An 8 GiB+1 member: the header is read, and the truncated stream
	// reports how far the member got.
	const size = 1<<33 + 1
	var out bytes.Buffer
	w := archive.NewWriter(&out, archive.Options{Compression: archive.Zstd, FrameSize: testFrameSize})
	w.Write(pgHeader("base/1/big", '0', size, ""))
	w.Write(make([]byte, 100000))
	_, err := w.Close()
	if !isCorrupt(err) || !strings.Contains(err.Error(), fmt.Sprintf("100000 of %d", size)) {
		t.Fatalf("Close = %v", err)
	}
}

func TestMalformed(t *testing.T) {
	good := buildTar(t, []entry{
		{name: "a", typ: tar.TypeReg, mode: 0o600, data: []byte("hello")},
		{name: "d/", typ: tar.TypeDir, mode: 0o700},
	})
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 1
		return b
	}
	pax := pgHeader("PaxHeaders/a", 'x', 0, "")
	sizedDir := pgHeader("d/", '5', 5, "")
	tests := map[string][]byte{
		"empty":              nil,
		"no trailer":         good[:1024+512],
		"half trailer":       good[:len(good)-512],
		"partial block":      good[:len(good)-100],
		"truncated member":   good[:600],
		"truncated header":   good[:300],
		"bad checksum":       flip(0),
		"bad size digit":     func() []byte { b := bytes.Clone(good); b[124] = '9'; setChecksum(b[:512]); return b }(),
		"single zero block":  append(append(append([]byte{}, good[:1024]...), make([]byte, 512)...), good[1024:]...),
		"data after trailer": append(bytes.Clone(good), append(make([]byte, 511), 1)...),
		"pax header":         append(pax, make([]byte, 1024)...),
		"dir with size":      append(sizedDir, make([]byte, 1024+512)...),
		"garbage":            bytes.Repeat([]byte("garbage!"), 200),
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			for _, c := range []archive.Compression{archive.Zstd, archive.None} {
				w := archive.NewWriter(io.Discard, archive.Options{Compression: c, FrameSize: testFrameSize})
				_, werr := w.Write(b)
				_, err := w.Close()
				if !isCorrupt(err) {
					t.Fatalf("%s: Close = %v (Write: %v), want ErrCorrupt", c, err, werr)
				}
				if _, err2 := w.Write([]byte{0}); err2 == nil {
					t.Fatal("Write after failed Close succeeded")
				}
			}
		})
	}
}

// TestTrailingZeros accepts the zero padding GNU tar adds to a record.
func TestTrailingZeros(t *testing.T) {
	tb := buildTar(t, []entry{{name: "a", typ: tar.TypeReg, mode: 0o600, data: []byte("x")}})
	tb = append(tb, make([]byte, 10240-len(tb))...)
	opt := archive.Options{Compression: archive.Zstd, FrameSize: archive.MinFrameSize}
	res, stored := store(t, tb, opt, 512)
	checkStored(t, tb, opt, res, stored)
}

type failWriter struct{ n int }

var errDisk = errors.New("disk full")

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errDisk
	}
	f.n--
	return len(p), nil
}

func TestDestinationError(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	tb := buildTar(t, randomEntries(rng, testFrameSize))
	for _, c := range []archive.Compression{archive.Zstd, archive.None} {
		w := archive.NewWriter(&failWriter{n: 2}, archive.Options{Compression: c, FrameSize: testFrameSize, Concurrency: 2})
		werr := writeChunked(w, tb, 4096)
		_, err := w.Close()
		if !errors.Is(err, errDisk) || isCorrupt(err) {
			t.Fatalf("%s: Close = %v (Write: %v), want the destination's error", c, err, werr)
		}
	}
}

func TestOptions(t *testing.T) {
	_, err := archive.NewWriter(io.Discard, archive.Options{Compression: 7}).Close()
	if err == nil {
		t.Fatal("unknown compression accepted")
	}
	tb := buildTar(t, []entry{{name: "a", typ: tar.TypeReg, data: []byte("abc")}})
	for _, opt := range []archive.Options{
		{Compression: archive.Zstd, Level: 19, FrameSize: 1},
		{Compression: archive.Zstd, Level: 3, FrameSize: 1 << 30},
	} {
		res, stored := store(t, tb, opt)
		checkStored(t, tb, opt, res, stored)
	}
}

// TestZstdTool checks the stored archive with the real tools when the machine
// has them: `zstd -t`, and `tar --zstd -t` listing every member.
func TestZstdTool(t *testing.T) {
	for _, tool := range []string{"tar", "zstd"} {
		if _, err := exec.LookPath(tool); err != nil {
			envtest.Missing(t, "%s (scripts/setup-testenv.sh installs it)", tool)
		}
	}
	rng := rand.New(rand.NewPCG(9, 9))
	es := randomEntries(rng, testFrameSize)
	tb := buildTar(t, es)
	_, stored := store(t, tb, archive.Options{Compression: archive.Zstd, FrameSize: testFrameSize}, 777)
	path := filepath.Join(t.TempDir(), "base.tar.zst")
	if err := os.WriteFile(path, stored, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("zstd", "-q", "-t", path).CombinedOutput(); err != nil {
		t.Fatalf("zstd -t: %v\n%s", err, out)
	}
	if out, err := exec.Command("zstd", "-q", "-d", "-c", path).Output(); err != nil || !bytes.Equal(out, tb) {
		t.Fatalf("zstd -d does not give back the tar (%d bytes, want %d): %v", len(out), len(tb), err)
	}
	out, err := exec.Command("tar", "--zstd", "-tf", path).CombinedOutput()
	if err != nil {
		t.Fatalf("tar --zstd -tf: %v\n%s", err, out)
	}
	var want []string
	for _, e := range es {
		want = append(want, e.name)
	}
	if got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("tar lists:\n%s\nwant:\n%s", got, want)
	}
	dir := t.TempDir()
	if out, err := exec.Command("tar", "--zstd", "-xf", path, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar --zstd -xf: %v\n%s", err, out)
	}
	for _, e := range es {
		if e.typ != tar.TypeReg {
			continue
		}
		if got, err := os.ReadFile(filepath.Join(dir, e.name)); err != nil || !bytes.Equal(got, e.data) {
			t.Fatalf("extracted %s differs: %v", e.name, err)
		}
	}
}

// TestNoLeak checks that Close stops every goroutine, also after errors.
func TestNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	tb := buildTar(t, []entry{{name: "a", typ: tar.TypeReg, data: []byte("abc")}})
	for i := range 20 {
		w := archive.NewWriter(&failWriter{n: i % 2}, archive.Options{Compression: archive.Zstd, Concurrency: 4})
		w.Write(tb[:len(tb)-i*100])
		w.Close()
	}
	for range 100 {
		if runtime.NumGoroutine() <= before {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%d goroutines before, %d after", before, runtime.NumGoroutine())
}
