package verify

import (
	"context"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/cespare/xxhash/v2"
	"github.com/holdfast-backup/holdfast/internal/archive"
	"github.com/holdfast-backup/holdfast/internal/blob"
	"github.com/holdfast-backup/holdfast/internal/crc32c"
	"github.com/holdfast-backup/holdfast/internal/manifest"
	"github.com/holdfast-backup/holdfast/internal/repo"
)

// scanArchive checks a stored archive whose index matches backup.json
// with archive.Scan: frames are read, decoded and checksummed on all
// cores, CRC-32C pieces of a file in different frames are combined, and
// the stored bytes are digested in order. It checks what the sequential
// walk checks: the digest of the stored object, every frame, every tar
// header (against the index, itself checked against backup.json), and
// every file against the manifest.
func (v *verifier) scanArchive(ctx context.Context, a repo.Archive, idx *archive.Index, prefix string, seen map[string]bool) bool {
	ra, err := blob.OpenReaderAt(ctx, v.r.Store(), v.e.Dir+a.Object)
	if err != nil {
		v.add(a.Object, "%v", err)
		return false
	}
	defer ra.Close()
	isWAL := a.Name == "pg_wal.tar"
	_, local := v.r.Store().(blob.ReaderAtOpener)
	stored := newStoredDigest(a)
	opt := archive.ScanOptions{
		ReadPieces: local,
		Buffers:    &v.scanBufs,
		Skip: func(m *archive.Member) bool {
			return isWAL || walSegmentPath(prefix+strings.TrimPrefix(m.Name, "./"))
		},
		Keep: func(m *archive.Member) bool {
			return !isWAL && prefix == "" && strings.TrimPrefix(m.Name, "./") == "backup_label" && m.Size <= 64<<10
		},
		Kept: func(m *archive.Member, data []byte) { v.label = data },
	}
	if stored.xxh != nil {
		opt.Stored = stored // in order, on Scan's goroutine
	} else {
		opt.StoredCRC32C = &stored.crc // combined from the frames'
	}
	alg, algErr := manifest.CanonicalAlgorithm(v.e.ChecksumAlgorithm)
	switch {
	case algErr != nil || alg == manifest.AlgNone:
		// Nothing to compare checksums with: sizes and names only. (The
		// manifest may still be loading: files are digested whether or
		// not it turns out readable.)
	case alg == manifest.AlgCRC32C:
		opt.CRC32C = manifest.CRC32CSum
	default:
		opt.Hash = func() hash.Hash {
			h, _ := manifest.NewHash(alg)
			return h
		}
	}
	var label *archive.Member
	err = archive.Scan(ra, idx, opt, func(m *archive.Member, sum []byte) error {
		if isWAL || m.Type != archive.TypeReg {
			return nil
		}
		p := prefix + strings.TrimPrefix(m.Name, "./")
		if p == "backup_label" && prefix == "" && v.label == nil {
			lm := *m
			label = &lm // not kept (too large, or in two frames): read after the scan
			return nil
		}
		switch {
		case walSegmentPath(p):
			// WAL fetched into base.tar: not in the manifest.
		default:
			v.compare(p, a.Name, m.Size, func(fileAlg string) []byte {
				if c, err := manifest.CanonicalAlgorithm(fileAlg); err != nil || c != alg {
					return nil
				}
				return sum
			}, seen)
		}
		return nil
	})
	if err != nil {
		v.add(a.Object, "%v", err)
		return false
	}
	if label != nil {
		if !v.readLabel(a, ra, idx, label, seen) {
			return false
		}
	}
	v.checkStored(a, stored)
	return true
}

// storedDigest is the digest backup.json gives of an archive's stored
// bytes: their CRC-32C, or their XXH64 in backup format 1 (ParseMeta makes
// sure a record carries the one of its format). Written to, it digests.
type storedDigest struct {
	want, name string
	xxh        *xxhash.Digest // format 1
	crc        uint32
}

func newStoredDigest(a repo.Archive) *storedDigest {
	if a.XXH64 != "" {
		return &storedDigest{want: a.XXH64, name: "XXH64", xxh: xxhash.New()}
	}
	return &storedDigest{want: a.CRC32C, name: "CRC-32C"}
}

func (d *storedDigest) Write(p []byte) (int, error) {
	if d.xxh != nil {
		return d.xxh.Write(p)
	}
	d.crc = crc32c.Update(d.crc, p)
	return len(p), nil
}

// checkStored compares the digest of an archive's stored bytes with
// backup.json's.
func (v *verifier) checkStored(a repo.Archive, d *storedDigest) {
	got := fmt.Sprintf("%08x", d.crc)
	if d.xxh != nil {
		got = fmt.Sprintf("%016x", d.xxh.Sum64())
	}
	if got != d.want {
		v.add(a.Object, "stored bytes have %s %s, backup.json says %s (the object was damaged or replaced)", d.name, got, d.want)
	}
}

// readLabel reads backup_label, which the chain check needs whole.
func (v *verifier) readLabel(a repo.Archive, ra io.ReaderAt, idx *archive.Index, m *archive.Member, seen map[string]bool) bool {
	r, err := archive.NewReader(ra, a.StoredSize, idx)
	if err == nil {
		v.label, err = io.ReadAll(io.LimitReader(r.Open(*m), 64<<10))
	}
	if err != nil {
		v.add(a.Object, "read backup_label: %v", err)
		return false
	}
	v.compare("backup_label", a.Name, m.Size, dataDigest(v.label), seen)
	return true
}
