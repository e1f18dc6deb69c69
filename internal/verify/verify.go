// Package verify re-reads backups from the repository and reports every
// problem it finds, not just the first: the stored objects against the
// digests in backup.json, the manifest against its own checksum, every file
// in every archive against the manifest, and an incremental backup's link to
// its parent.
package verify

import (
	"bytes"
	"context"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/holdfast-backup/holdfast/internal/archive"
	"github.com/holdfast-backup/holdfast/internal/manifest"
	"github.com/holdfast-backup/holdfast/internal/pglabel"
	"github.com/holdfast-backup/holdfast/internal/repo"
)

// Problem is one thing wrong with one backup.
type Problem struct {
	BackupID string
	Object   string // the stored object or manifest path concerned, if any
	Msg      string
}

func (p Problem) String() string {
	if p.Object != "" {
		return fmt.Sprintf("backup %s: %s: %s", p.BackupID, p.Object, p.Msg)
	}
	return fmt.Sprintf("backup %s: %s", p.BackupID, p.Msg)
}

// Backup verifies one backup. catalog holds the committed backups of the
// same disk, so an incremental backup's parent can be checked.
func Backup(ctx context.Context, r *repo.Repo, e repo.Entry, catalog []repo.Entry) []Problem {
	v := &verifier{r: r, e: e}
	v.run(ctx, catalog)
	v.scanBufs.Release()
	return v.problems
}

// copyBuffer is the read size while hashing files: large reads go straight
// from the store to the hash.
const copyBuffer = 1 << 20

type verifier struct {
	buf      []byte
	r        *repo.Repo
	e        repo.Entry
	problems []Problem
	label    []byte
	scanBufs archive.ScanBuffers // the archives' scans, one after another

	// The manifest, loaded by loadManifest; read them only after mfDone
	// is closed (files waits for it).
	mfDone     chan struct{}
	mf         *manifest.Manifest
	mfWant     map[string]*manifest.File
	mfErr      error
	mfReported bool
}

func (v *verifier) add(object, format string, a ...any) {
	v.problems = append(v.problems, Problem{BackupID: v.e.ID, Object: object, Msg: fmt.Sprintf(format, a...)})
}

func (v *verifier) run(ctx context.Context, catalog []repo.Entry) {
	// The manifest is read and parsed while the first archive's index is
	// read and its first frames decoded; files waits for it where a file is
	// first compared.
	v.mfDone = make(chan struct{})
	go v.loadManifest(ctx)
	seen := map[string]bool{}
	failed := map[string]bool{} // path prefixes whose archive could not be read whole
	for _, a := range v.e.Archives {
		if err := ctx.Err(); err != nil {
			v.files()
			v.add("", "cancelled: %v", err)
			return
		}
		prefix := a.ManifestPrefix()
		if !v.archive(ctx, a, prefix, seen) {
			failed[prefix] = true
		}
	}
	want := v.files()
	m := v.mf
	if want != nil {
		for _, f := range m.Files {
			if seen[f.Path] || failed[pathPrefix(f.Path)] {
				continue
			}
			v.add(f.Path, "in the manifest but in no archive")
		}
		if _, ok := want["global/pg_control"]; !ok {
			v.add("backup_manifest", "lists no global/pg_control")
		}
	}
	v.checkChain(catalog, m)
}

// loadManifest reads and parses the backup's manifest and closes mfDone.
// It runs on its own goroutine and touches nothing but the mf fields.
func (v *verifier) loadManifest(ctx context.Context) {
	defer close(v.mfDone)
	mb, err := v.r.ReadManifest(ctx, v.e)
	if err != nil {
		v.mfErr = err
		return
	}
	m, err := manifest.Parse(mb)
	if err != nil {
		v.mfErr = err
		return
	}
	want := make(map[string]*manifest.File, len(m.Files))
	for i := range m.Files {
		want[m.Files[i].Path] = &m.Files[i]
	}
	v.mf, v.mfWant = m, want
}

// files waits for the manifest and returns its files by path, nil if it
// could not be read or parsed. The first call reports that problem, first
// in the list, where it stood when the manifest was read up front.
func (v *verifier) files() map[string]*manifest.File {
	<-v.mfDone
	if v.mfErr != nil && !v.mfReported {
		v.mfReported = true
		p := Problem{BackupID: v.e.ID, Object: "backup_manifest", Msg: v.mfErr.Error()}
		v.problems = append([]Problem{p}, v.problems...)
	}
	return v.mfWant
}

// pathPrefix is the manifest path prefix of the archive a file lives in.
func pathPrefix(p string) string {
	if rest, ok := strings.CutPrefix(p, "pg_tblspc/"); ok {
		if oid, _, ok := strings.Cut(rest, "/"); ok {
			return "pg_tblspc/" + oid + "/"
		}
	}
	return ""
}

// archive checks one stored archive; it reports false if the archive could
// not be read to its end.
func (v *verifier) archive(ctx context.Context, a repo.Archive, prefix string, seen map[string]bool) bool {
	dir := v.e.Dir
	ok := true
	// Only an index that matches backup.json (size, SHA-256) is used.
	idx, err := v.r.ReadIndex(ctx, v.e, a)
	if err != nil {
		v.add(a.Index, "%v", err)
	}
	info, err := v.r.Store().Stat(ctx, dir+a.Object)
	if err != nil {
		v.add(a.Object, "%v", err)
		return false
	}
	if info.Size != a.StoredSize {
		v.add(a.Object, "size %d, backup.json says %d (truncated or overwritten)", info.Size, a.StoredSize)
	}
	// An archive whose index is good is checked frame by frame on all
	// cores; without one, the archive is read once, in order.
	if idx != nil && idx.StoredSize == a.StoredSize {
		return v.scanArchive(ctx, a, idx, prefix, seen)
	}
	rc, err := v.r.Store().Open(ctx, dir+a.Object)
	if err != nil {
		v.add(a.Object, "%v", err)
		return false
	}
	defer rc.Close()
	digest := newStoredDigest(a)
	comp := archive.None
	if a.Compression == "zstd" {
		comp = archive.Zstd
	}
	tee := io.TeeReader(rc, digest)
	sr, closeStream := archive.OpenStream(tee, comp, idx)
	defer closeStream()
	isWAL := a.Name == "pg_wal.tar"
	for {
		hd, err := sr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			v.add(a.Object, "%v", err)
			ok = false
			break
		}
		if isWAL || hd.Type != archive.TypeReg {
			continue
		}
		p := prefix + strings.TrimPrefix(hd.Name, "./")
		if p == "backup_label" && prefix == "" {
			v.label, err = io.ReadAll(io.LimitReader(sr, 64<<10))
			if err != nil {
				v.add(a.Object, "read backup_label: %v", err)
				ok = false
				break
			}
			v.compare(p, a.Name, hd.Size, dataDigest(v.label), seen)
			continue
		}
		var h hash.Hash
		if f := v.files()[p]; f != nil && f.Algorithm != "" {
			h, _ = manifest.NewHash(f.Algorithm)
		}
		if h == nil {
			h, _ = manifest.NewHash(manifest.AlgNone)
		}
		dst := io.Writer(h)
		if v.buf == nil {
			v.buf = make([]byte, copyBuffer)
		}
		n, err := io.CopyBuffer(dst, sr, v.buf)
		if err != nil {
			v.add(a.Object, "reading %s: %v", p, err)
			ok = false
			break
		}
		if n != hd.Size {
			v.add(a.Object, "%s: read %d bytes, header says %d", p, n, hd.Size)
		}
		if walSegmentPath(p) {
			continue
		}
		v.compare(p, a.Name, hd.Size, hashDigest(h), seen)
	}
	if ok {
		// Drain what follows the tar trailer so the digest covers the object.
		if _, err := io.Copy(io.Discard, tee); err != nil {
			v.add(a.Object, "%v", err)
			return false
		}
		v.checkStored(a, digest)
	}
	return ok
}

func walSegmentPath(p string) bool {
	name, ok := strings.CutPrefix(p, "pg_wal/")
	if !ok || len(name) != 24 {
		return false
	}
	for _, c := range name {
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// compare checks one file against its manifest entry. digest returns the
// file's checksum in an algorithm, or nil when it was not computed in that
// one.
func (v *verifier) compare(p, arch string, size int64, digest func(alg string) []byte, seen map[string]bool) {
	want := v.files()
	if want == nil {
		return
	}
	f := want[p]
	if f == nil {
		v.add(p, "in archive %s but not in the manifest", arch)
		return
	}
	if seen[p] {
		v.add(p, "appears more than once")
	}
	seen[p] = true
	if size != f.Size {
		v.add(p, "size %d in archive %s, manifest says %d", size, arch, f.Size)
		return
	}
	if f.Algorithm == "" {
		return
	}
	sum := digest(f.Algorithm)
	switch {
	case sum == nil:
		v.add(p, "not checked: the manifest gives a %s checksum, backup.json says the backup uses %s", f.Algorithm, v.e.ChecksumAlgorithm)
	case !bytes.Equal(sum, f.Checksum):
		v.add(p, "checksum mismatch in archive %s (%s %x, manifest says %x)", arch, f.Algorithm, sum, f.Checksum)
	}
}

// dataDigest hashes data in whatever algorithm is asked.
func dataDigest(data []byte) func(string) []byte {
	return func(alg string) []byte {
		h, err := manifest.NewHash(alg)
		if err != nil {
			return nil
		}
		h.Write(data)
		return h.Sum(nil)
	}
}

// hashDigest is h's sum, for the algorithm h was made for.
func hashDigest(h hash.Hash) func(string) []byte {
	return func(string) []byte { return h.Sum(nil) }
}

// checkChain checks an incremental backup against its parent.
func (v *verifier) checkChain(catalog []repo.Entry, m *manifest.Manifest) {
	if v.label == nil {
		v.add("backup_label", "not found in base archive")
		return
	}
	l, err := pglabel.Parse(v.label)
	if err != nil {
		v.add("backup_label", "%v", err)
		return
	}
	if l.StartLSN != v.e.StartLSN || l.StartTimeline != v.e.Timeline {
		v.add("backup_label", "starts at %s on timeline %d, backup.json says %s on timeline %d", l.StartLSN, l.StartTimeline, v.e.StartLSN, v.e.Timeline)
	}
	if m != nil && m.Version >= 2 && fmt.Sprint(m.SystemIdentifier) != v.e.SystemIdentifier {
		v.add("backup_manifest", "system identifier %d, backup.json says %s", m.SystemIdentifier, v.e.SystemIdentifier)
	}
	if v.e.Parent == nil {
		if l.Incremental {
			v.add("backup_label", "says incremental, backup.json says full")
		}
		return
	}
	if !l.Incremental {
		v.add("backup_label", "says full, backup.json says incremental")
		return
	}
	var parent *repo.Entry
	for i := range catalog {
		if catalog[i].ID == *v.e.Parent {
			parent = &catalog[i]
		}
	}
	if parent == nil {
		v.add("", "parent backup %s is missing: this incremental cannot be restored", *v.e.Parent)
		return
	}
	if parent.SystemIdentifier != v.e.SystemIdentifier {
		v.add("", "parent %s is of system %s, this backup of %s", parent.ID, parent.SystemIdentifier, v.e.SystemIdentifier)
	}
	if l.FromLSN != parent.StartLSN || l.FromTimeline != parent.Timeline {
		v.add("backup_label", "INCREMENTAL FROM %s on timeline %d, but parent %s starts at %s on timeline %d", l.FromLSN, l.FromTimeline, parent.ID, parent.StartLSN, parent.Timeline)
	}
}
