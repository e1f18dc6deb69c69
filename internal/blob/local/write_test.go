package local

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// writeBehind only adds hints: what reaches the file is what was written,
// in pieces of any size around the writeback chunk.
func TestWriteBehindStoresEveryByte(t *testing.T) {
	for _, size := range []int{0, 1, writebackChunk - 1, writebackChunk, writebackChunk + 1, 3*writebackChunk + 4097} {
		f, err := os.Create(filepath.Join(t.TempDir(), "obj"))
		if err != nil {
			t.Fatal(err)
		}
		data := make([]byte, size)
		r := rand.New(rand.NewPCG(uint64(size), 7))
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		w := &writeBehind{f: f}
		for p := data; len(p) > 0; {
			n := min(len(p), 1+r.IntN(writebackChunk))
			if m, err := w.Write(p[:n]); err != nil || m != n {
				t.Fatalf("%d bytes: Write(%d) = %d, %v", size, n, m, err)
			}
			p = p[n:]
		}
		if w.noHint {
			t.Errorf("%d bytes: sync_file_range refused on %s", size, f.Name())
		}
		if want := int64(size) &^ (writebackChunk - 1); w.hinted != want {
			t.Errorf("%d bytes: writeback started for %d bytes, want %d", size, w.hinted, want)
		}
		f.Close()
		got, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Errorf("%d bytes: the file holds %d bytes that differ from what was written", size, len(got))
		}
	}
}

// A failing hint is dropped and the write still succeeds: a pipe takes
// writes but not sync_file_range (ESPIPE). A write error is the caller's.
func TestWriteBehindErrors(t *testing.T) {
	r, wp, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	go io.Copy(io.Discard, r)
	w := &writeBehind{f: wp}
	if n, err := w.Write(make([]byte, writebackChunk)); n != writebackChunk || err != nil {
		t.Fatalf("Write to a pipe = %d, %v", n, err)
	}
	if !w.noHint {
		t.Fatal("the refused hint was not dropped")
	}
	wp.Close()
	if _, err := w.Write(make([]byte, 10)); err == nil {
		t.Fatal("Write to a closed file succeeded")
	}
}
