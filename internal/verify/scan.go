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
func (v *verifier) scanArchive(ctx context.Context, a repo.Archive, idx *archive.Index, prefix string, want map[string]*manifest.File, seen map[string]bool) bool {
	ra, err := blob.OpenReaderAt(ctx, v.r.Store(), v.e.Dir+a.Object)
	if err != nil {
		v.add(a.Object, "%v", err)
		return false
	}
	defer ra.Close()
	isWAL := a.Name == "pg_wal.tar"
	_, local := v.r.Store().(blob.ReaderAtOpener)
	var xxh *xxhash.Digest
	var storedCRC uint32
	opt := archive.ScanOptions{
		ReadPieces: local,
		Skip: func(m *archive.Member) bool {
			return isWAL || walSegmentPath(prefix+strings.TrimPrefix(m.Name, "./"))
		},
		Keep: func(m *archive.Member) bool {
			return !isWAL && prefix == "" && strings.TrimPrefix(m.Name, "./") == "backup_label" && m.Size <= 64<<10
		},
		Kept: func(m *archive.Member, data []byte) { v.label = data },
	}
	if a.CRC32C == "" && a.XXH64 != "" {
		xxh = xxhash.New() // a backup from before the stored CRC-32C
		opt.Stored = xxh
	} else {
		opt.StoredCRC32C = &storedCRC
	}
	alg, algErr := manifest.CanonicalAlgorithm(v.e.ChecksumAlgorithm)
	switch {
	case want == nil || algErr != nil || alg == manifest.AlgNone:
		// Nothing to compare checksums with: sizes and names only.
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
			}, want, seen)
		}
		return nil
	})
	if err != nil {
		v.add(a.Object, "%v", err)
		return false
	}
	if label != nil {
		if !v.readLabel(a, ra, idx, label, want, seen) {
			return false
		}
	}
	if xxh != nil {
		v.checkStored(a, "", xxh.Sum64())
	} else {
		v.checkStored(a, fmt.Sprintf("%08x", storedCRC), 0)
	}
	return true
}

// checkStored compares the digest of an archive's stored bytes with
// backup.json's: crc when backup.json gives a CRC-32C, else xxh.
func (v *verifier) checkStored(a repo.Archive, crc string, xxh uint64) {
	switch {
	case a.CRC32C != "":
		if crc != a.CRC32C {
			v.add(a.Object, "stored bytes have CRC-32C %s, backup.json says %s (the object was damaged or replaced)", crc, a.CRC32C)
		}
	case a.XXH64 != "":
		if got := fmt.Sprintf("%016x", xxh); got != a.XXH64 {
			v.add(a.Object, "stored bytes have XXH64 %s, backup.json says %s (the object was damaged or replaced)", got, a.XXH64)
		}
	default:
		v.add(a.Object, "backup.json gives no digest of the stored bytes")
	}
}

// readLabel reads backup_label, which the chain check needs whole.
func (v *verifier) readLabel(a repo.Archive, ra io.ReaderAt, idx *archive.Index, m *archive.Member, want map[string]*manifest.File, seen map[string]bool) bool {
	r, err := archive.NewReader(ra, a.StoredSize, idx)
	if err == nil {
		v.label, err = io.ReadAll(io.LimitReader(r.Open(*m), 64<<10))
	}
	if err != nil {
		v.add(a.Object, "read backup_label: %v", err)
		return false
	}
	v.compare("backup_label", a.Name, m.Size, dataDigest(v.label), want, seen)
	return true
}
