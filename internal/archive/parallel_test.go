package archive_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"

	"github.com/holdfast-backup/holdfast/internal/archive"
)

func TestParallelDecoder(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	tarBytes := buildTar(t, randomEntries(rng, archive.MinFrameSize))
	res, stored := store(t, tarBytes, archive.Options{Compression: archive.Zstd, FrameSize: archive.MinFrameSize})
	idx, err := archive.ParseIndex(res.Index)
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Frames) < 3 {
		t.Fatalf("only %d frames; the test wants several", len(idx.Frames))
	}
	for _, workers := range []int{1, 2, 5} {
		for name, r := range map[string]io.Reader{
			"whole":    bytes.NewReader(stored),
			"one byte": iotest.OneByteReader(bytes.NewReader(stored)),
			"half":     iotest.HalfReader(bytes.NewReader(stored)),
		} {
			d := archive.NewParallelDecoder(r, idx.Frames, workers)
			got, err := io.ReadAll(iotest.OneByteReader(d))
			d.Close()
			if err != nil || !bytes.Equal(got, tarBytes) {
				t.Fatalf("workers %d, %s: %d bytes, %v; want the %d tar bytes", workers, name, len(got), err, len(tarBytes))
			}
		}
	}
	// The tar walk on top of it sees every member.
	sr := archive.NewStreamReader(archive.NewParallelDecoder(bytes.NewReader(stored), idx.Frames, 2), archive.None)
	n := 0
	for {
		_, err := sr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != len(res.Members) {
		t.Fatalf("walked %d members, want %d", n, len(res.Members))
	}
}

func TestParallelDecoderDamage(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	tarBytes := buildTar(t, randomEntries(rng, archive.MinFrameSize))
	res, stored := store(t, tarBytes, archive.Options{Compression: archive.Zstd, FrameSize: archive.MinFrameSize})
	idx, err := archive.ParseIndex(res.Index)
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), stored...)
	flipped[len(flipped)/2] ^= 0x40
	for name, data := range map[string][]byte{
		"truncated": stored[:len(stored)*2/3],
		"flipped":   flipped,
	} {
		d := archive.NewParallelDecoder(bytes.NewReader(data), idx.Frames, 2)
		_, err := io.ReadAll(d)
		d.Close()
		if !isCorrupt(err) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	// Closing early releases everything without reading to the end.
	d := archive.NewParallelDecoder(bytes.NewReader(stored), idx.Frames, 2)
	buf := make([]byte, 100)
	if _, err := d.Read(buf); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, err := d.Read(buf); err == nil {
		t.Fatal("Read after Close succeeded")
	}
}
