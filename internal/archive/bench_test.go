package archive_test

import (
	"archive/tar"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/holdfast-backup/holdfast/internal/archive"
)

// benchTar is a synthetic 256 MiB base.tar: 200 small catalog-like files
// and three relation segments (1 GiB segments scaled down), whose 8 KiB pages
// are a mix of what a cluster holds: 10% empty pages, 55% heap pages (page
// header, line pointers, tuples with repeated structure and random ints),
// 15% half-full pages, 20% incompressible pages (TOAST-compressed data).
var benchTar = sync.OnceValue(func() []byte {
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	var es []entry
	total := 0
	for i := range 200 {
		n := rng.IntN(96 << 10)
		es = append(es, entry{name: fmt.Sprintf("base/5/%d", 1000+i), typ: tar.TypeReg, mode: 0o600, data: relationPages(rng, n)})
		total += n
	}
	left := 256<<20 - total - 300*512
	for i := range 3 {
		n := left / 3 &^ 8191
		es = append(es, entry{name: fmt.Sprintf("base/5/%d", 16384+i), typ: tar.TypeReg, mode: 0o600, data: relationPages(rng, n)})
	}
	return buildTar(&testing.T{}, es)
})

func relationPages(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for off := 0; off < n; off += 8192 {
		p := b[off:min(off+8192, n)]
		switch x := rng.IntN(100); {
		case x < 10:
		case x < 65:
			heapPage(rng, p, len(p))
		case x < 80:
			heapPage(rng, p, len(p)/2)
		default:
			for i := 0; i+8 <= len(p); i += 8 {
				binary.LittleEndian.PutUint64(p[i:], rng.Uint64())
			}
		}
	}
	return b
}

// heapPage fills the last fill bytes of p with 64-byte tuples: a fixed
// header, a counter, two small random ints and some text.
func heapPage(rng *rand.Rand, p []byte, fill int) {
	id := rng.Uint32()
	for t := len(p) - 64; t >= len(p)-fill && t >= 0; t -= 64 {
		tup := p[t : t+64]
		copy(tup, "\x02\x00\x00\x00\x18\x00\x03\x08")
		binary.LittleEndian.PutUint32(tup[8:], id)
		id++
		binary.LittleEndian.PutUint32(tup[12:], rng.Uint32()%1000)
		binary.LittleEndian.PutUint32(tup[16:], rng.Uint32())
		copy(tup[20:], "customer-name-and-address-text-0123456789")
	}
}

func BenchmarkWriter(b *testing.B) {
	tb := benchTar()
	for _, bc := range []struct {
		name string
		opt  archive.Options
	}{
		{"none-crc32c", archive.Options{Compression: archive.None, Hash: crc32c}},
		{"zstd1-crc32c", archive.Options{Compression: archive.Zstd, Level: 1, Hash: crc32c}},
		{"zstd3-crc32c", archive.Options{Compression: archive.Zstd, Level: 3, Hash: crc32c}},
		{"zstd1-sha256", archive.Options{Compression: archive.Zstd, Level: 1, Hash: sha256.New}},
		{"zstd1-crc32c-1MiB", archive.Options{Compression: archive.Zstd, Level: 1, FrameSize: 1 << 20, Hash: crc32c}},
		{"zstd1-crc32c-1cpu", archive.Options{Compression: archive.Zstd, Level: 1, Concurrency: 1, Hash: crc32c}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tb)))
			var stored int64
			defer reportCPU(b, int64(len(tb)))()
			for b.Loop() {
				w := archive.NewWriter(io.Discard, bc.opt)
				if err := writeChunked(w, tb, 32<<10); err != nil {
					b.Fatal(err)
				}
				res, err := w.Close()
				if err != nil {
					b.Fatal(err)
				}
				stored = res.StoredSize
			}
			b.ReportMetric(float64(len(tb))/float64(stored), "ratio")
		})
	}
}

// reportCPU reports throughput per CPU second (user+system time of the whole
// process), which unlike MB/s does not depend on how busy the machine is.
// Call it after the setup and defer the function it returns.
func reportCPU(b *testing.B, bytesPerOp int64) func() {
	start := cpuTime()
	return func() {
		if used := cpuTime() - start; used > 0 {
			b.ReportMetric(float64(bytesPerOp)*float64(b.N)/1e6/used.Seconds(), "MB/cpu-s")
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchStored(b *testing.B, c archive.Compression, frameSize int) ([]byte, *archive.Index) {
	tb := benchTar()
	var out bytes.Buffer
	w := archive.NewWriter(&out, archive.Options{Compression: c, FrameSize: frameSize})
	w.Write(tb)
	res, err := w.Close()
	if err != nil {
		b.Fatal(err)
	}
	idx, err := archive.ParseIndex(res.Index)
	if err != nil {
		b.Fatal(err)
	}
	return out.Bytes(), idx
}

func BenchmarkStreamReader(b *testing.B) {
	for _, c := range []archive.Compression{archive.Zstd, archive.None} {
		b.Run(c.String(), func(b *testing.B) {
			stored, _ := benchStored(b, c, 0)
			b.SetBytes(int64(len(benchTar())))
			defer reportCPU(b, int64(len(benchTar())))()
			for b.Loop() {
				if err := walk(bytes.NewReader(stored), c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReadAt reads random 8 KiB blocks of the relation segments; with
// zstd, almost every read misses the 4-frame cache and decodes a whole
// frame.
func BenchmarkReadAt(b *testing.B) {
	for _, bc := range []struct {
		c         archive.Compression
		frameSize int
	}{{archive.Zstd, 0}, {archive.Zstd, 1 << 20}, {archive.None, 0}} {
		b.Run(fmt.Sprintf("%s-frame%dKiB", bc.c, cmp.Or(bc.frameSize, archive.DefaultFrameSize)>>10), func(b *testing.B) {
			stored, idx := benchStored(b, bc.c, bc.frameSize)
			r, err := archive.NewReader(bytes.NewReader(stored), int64(len(stored)), idx)
			if err != nil {
				b.Fatal(err)
			}
			ms := r.Members()
			big := ms[len(ms)-3:]
			rng := rand.New(rand.NewPCG(1, 1))
			p := make([]byte, 8192)
			b.SetBytes(8192)
			for b.Loop() {
				m := big[rng.IntN(len(big))]
				if _, err := r.ReadAt(m, p, rng.Int64N(m.Size/8192)*8192); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpen reads every member sequentially, as a restore does.
func BenchmarkOpen(b *testing.B) {
	stored, idx := benchStored(b, archive.Zstd, 0)
	r, _ := archive.NewReader(bytes.NewReader(stored), int64(len(stored)), idx)
	b.SetBytes(int64(len(benchTar())))
	for b.Loop() {
		for _, m := range r.Members() {
			if _, err := io.Copy(io.Discard, r.Open(m)); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// TestWriterMemoryNoRace checks that the Writer's allocations do not grow
// with the archive: 32 MiB through 256 KiB frames allocates a few frames'
// worth. The race detector's runtime drops sync.Pool items at random, so
// the property only holds without it: scripts/test.sh runs the NoRace
// tests in its pass without -race.
func TestWriterMemoryNoRace(t *testing.T) {
	if raceEnabled {
		t.Skip("needs a build without -race (scripts/test.sh runs it so)")
	}
	rng := rand.New(rand.NewPCG(1, 1))
	tb := buildTar(t, []entry{{name: "base/5/16384", typ: tar.TypeReg, mode: 0o600, data: relationPages(rng, 32<<20)}})
	opt := archive.Options{Compression: archive.Zstd, FrameSize: 256 << 10, Concurrency: 2, Hash: crc32c}
	run := func() uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		w := archive.NewWriter(io.Discard, opt)
		writeChunked(w, tb, 32<<10)
		if _, err := w.Close(); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	run() // warm the encoder pool
	if got := run(); got > 8<<20 {
		t.Fatalf("writing 32 MiB allocated %d MiB", got>>20)
	}
}
