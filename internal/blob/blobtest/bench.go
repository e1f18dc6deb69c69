package blobtest

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/holdfast-backup/holdfast/internal/blob"
)

// BenchCommit measures writing and committing a 256 MiB object in 1 MiB
// writes, the way the backup engine streams an archive.
func BenchCommit(b *testing.B, s blob.Store) {
	ctx := context.Background()
	chunk := bytes.Repeat([]byte{0x5a}, 1<<20)
	const size = 256 << 20
	b.SetBytes(size)
	for b.Loop() {
		u, err := s.Create(ctx, "bench/base.tar.zst")
		if err != nil {
			b.Fatal(err)
		}
		for range size / len(chunk) {
			if _, err := u.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
		if err := u.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchOpenRange measures reading 8 KiB blocks at scattered offsets of an
// object of the given size, the way chain restore reads pages.
func BenchOpenRange(b *testing.B, s blob.Store, size int64) {
	ctx := context.Background()
	const key = "cfg/host/disk/id/base.tar.zst"
	Put(b, s, key, bytes.Repeat([]byte{1}, int(size)))
	buf := make([]byte, 8192)
	off := int64(0)
	for b.Loop() {
		rc, err := s.OpenRange(ctx, key, off, int64(len(buf)))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(rc, buf); err != nil {
			b.Fatal(err)
		}
		rc.Close()
		off = (off + 1<<20 + 4096) % (size - int64(len(buf)))
	}
}
