package restore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/holdfast-backup/holdfast/internal/archive"
	"github.com/holdfast-backup/holdfast/internal/blob"
	"github.com/holdfast-backup/holdfast/internal/incremental"
	"github.com/holdfast-backup/holdfast/internal/manifest"
	"github.com/holdfast-backup/holdfast/internal/pglabel"
	"github.com/holdfast-backup/holdfast/internal/repo"
)

// chain rebuilds the newest backup of chain into the target.
func (w *writer) chain(ctx context.Context, r *repo.Repo, chain []repo.Entry, final *manifest.Manifest) error {
	// readers[i][archive name] gives random access to backup i's archives;
	// the WAL comes from the newest backup only.
	k := len(chain) - 1
	readers := make([]map[string]*archive.Reader, len(chain))
	for i, e := range chain {
		readers[i] = map[string]*archive.Reader{}
		for _, a := range e.Archives {
			if a.Name == "pg_wal.tar" && i < k {
				continue
			}
			ar, c, err := openReader(ctx, r, e, a)
			if err != nil {
				return fmt.Errorf("backup %s: %s: %w", e.ID, a.Object, err)
			}
			defer c.Close()
			readers[i][a.Name] = ar
		}
	}
	last := chain[k]
	alg := last.ChecksumAlgorithm
	out := &manifest.Manifest{Version: 2, SystemIdentifier: final.SystemIdentifier, WALRanges: final.WALRanges}
	for _, a := range last.Archives {
		ar := readers[k][a.Name]
		root := w.root(a)
		prefix := a.ManifestPrefix()
		isWAL := a.Name == "pg_wal.tar"
		for _, m := range ar.Members() {
			if err := ctx.Err(); err != nil {
				return err
			}
			if m.Type != archive.TypeReg {
				if err := w.member(root, a, m, nil); err != nil {
					return fmt.Errorf("backup %s: %s: %w", last.ID, a.Object, err)
				}
				continue
			}
			rel, err := cleanMember(m.Name)
			if err != nil {
				return err
			}
			if !isWAL && a.TablespaceID == 0 && insideTablespaceLink(rel) {
				return fmt.Errorf("%w: %q lies inside a tablespace link", ErrUnsafe, m.Name)
			}
			dir, base := path.Split(rel)
			var f manifest.File
			switch {
			case !isWAL && strings.HasPrefix(base, "INCREMENTAL.") && relationDir(dir, a.TablespaceID != 0):
				orig := dir + strings.TrimPrefix(base, "INCREMENTAL.")
				f, err = w.rebuild(root, orig, m, ar, a, readers, chain, alg)
			case !isWAL && rel == "backup_label" && a.TablespaceID == 0:
				f, err = w.rewriteLabel(root, rel, m, ar, alg)
			default:
				f, err = w.copyMember(root, rel, m, ar, alg)
			}
			if err != nil {
				return fmt.Errorf("backup %s: %s: %s: %w", last.ID, a.Object, m.Name, err)
			}
			if !isWAL {
				f.Path = prefix + f.Path
				out.Files = append(out.Files, f)
			}
		}
	}
	var buf bytes.Buffer
	if err := manifest.Encode(&buf, out); err != nil {
		return err
	}
	return w.writeFile("backup_manifest", buf.Bytes(), 0o600)
}

// relationDir reports directories whose INCREMENTAL.* files
// pg_combinebackup rebuilds: global, base/<db>, and a tablespace's
// PG_<version>/<db>.
func relationDir(dir string, tablespace bool) bool {
	dir = strings.TrimSuffix(dir, "/")
	if tablespace {
		return strings.Count(dir, "/") == 1 && strings.HasPrefix(dir, "PG_")
	}
	return dir == "global" || (strings.HasPrefix(dir, "base/") && strings.Count(dir, "/") == 1)
}

// openReader opens random access to a stored archive through its index;
// closing the returned closer releases the object.
func openReader(ctx context.Context, r *repo.Repo, e repo.Entry, a repo.Archive) (*archive.Reader, io.Closer, error) {
	idx, err := r.ReadIndex(ctx, e, a)
	if err != nil {
		return nil, nil, err
	}
	ra, err := blob.OpenReaderAt(ctx, r.Store(), e.Dir+a.Object)
	if err != nil {
		return nil, nil, err
	}
	ar, err := archive.NewReader(ra, a.StoredSize, idx)
	if err != nil {
		ra.Close()
		return nil, nil, err
	}
	return ar, ra, nil
}

func gmt(mtime int64) string {
	return time.Unix(mtime, 0).UTC().Format("2006-01-02 15:04:05 GMT")
}

// fileEntry writes one output file through fill, counting and hashing it
// for the new manifest.
func (w *writer) fileEntry(dst, rel string, mode, mtime int64, alg string, fill func(io.Writer) error) (manifest.File, error) {
	h, err := manifest.NewHash(alg)
	if err != nil {
		return manifest.File{}, err
	}
	var size int64
	err = w.createWith(dst, mode, mtime, func(f io.Writer) (int64, error) {
		hw := &hashingWriter{w: f, h: h}
		err := fill(hw)
		size = hw.n
		return hw.n, err
	}, -1)
	if err != nil {
		return manifest.File{}, err
	}
	f := manifest.File{Path: rel, Size: size, LastModified: gmt(mtime)}
	if !strings.EqualFold(alg, "NONE") && alg != "" {
		f.Algorithm = strings.ToUpper(alg)
		f.Checksum = h.Sum(nil)
	}
	return f, nil
}

func (w *writer) copyMember(root, rel string, m archive.Member, ar *archive.Reader, alg string) (manifest.File, error) {
	dst := filepath.Join(root, filepath.FromSlash(rel))
	return w.fileEntry(dst, rel, m.Mode, m.ModTime, alg, func(f io.Writer) error {
		_, err := w.copy(f, ar.Open(m))
		return err
	})
}

func (w *writer) rewriteLabel(root, rel string, m archive.Member, ar *archive.Reader, alg string) (manifest.File, error) {
	b, err := io.ReadAll(io.LimitReader(ar.Open(m), 64<<10))
	if err != nil {
		return manifest.File{}, err
	}
	if _, err := pglabel.Parse(b); err != nil {
		return manifest.File{}, err
	}
	b = pglabel.StripIncremental(b)
	dst := filepath.Join(root, rel)
	return w.fileEntry(dst, rel, m.Mode, m.ModTime, alg, func(f io.Writer) error {
		_, err := f.Write(b)
		return err
	})
}

// rebuild reconstructs relation file orig from its INCREMENTAL file m in the
// newest backup and the versions of the file in the older backups.
func (w *writer) rebuild(root, orig string, m archive.Member, ar *archive.Reader, a repo.Archive, readers []map[string]*archive.Reader, chain []repo.Entry, alg string) (manifest.File, error) {
	latest, err := incrementalSource(ar, m)
	if err != nil {
		return manifest.File{}, err
	}
	dir, base := path.Split(orig)
	incName := dir + "INCREMENTAL." + base
	var older []incremental.Source
	for j := len(chain) - 2; j >= 0; j-- {
		oar := readers[j][a.Name]
		if oar == nil {
			older = append(older, incremental.Source{Kind: incremental.Absent})
			continue
		}
		if pm, ok := oar.Lookup(orig); ok && pm.Type == archive.TypeReg {
			older = append(older, incremental.Source{Kind: incremental.Full, Size: pm.Size, Data: oar.MemberReaderAt(pm)})
			break
		}
		if im, ok := oar.Lookup(incName); ok && im.Type == archive.TypeReg {
			s, err := incrementalSource(oar, im)
			if err != nil {
				return manifest.File{}, fmt.Errorf("backup %s: %w", chain[j].ID, err)
			}
			older = append(older, s)
			continue
		}
		older = append(older, incremental.Source{Kind: incremental.Absent})
	}
	dst := filepath.Join(root, filepath.FromSlash(orig))
	return w.fileEntry(dst, orig, m.Mode, m.ModTime, alg, func(f io.Writer) error {
		return incremental.Reconstruct(f, latest, older)
	})
}

func incrementalSource(ar *archive.Reader, m archive.Member) (incremental.Source, error) {
	ra := ar.MemberReaderAt(m)
	h, err := incremental.ReadHeader(io.NewSectionReader(ra, 0, m.Size))
	if err != nil {
		return incremental.Source{}, fmt.Errorf("%s: %w", m.Name, err)
	}
	return incremental.Source{Kind: incremental.Incremental, Size: m.Size, Header: h, Data: ra}, nil
}
