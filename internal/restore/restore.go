package restore

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/holdfast-backup/holdfast/internal/archive"
	"github.com/holdfast-backup/holdfast/internal/manifest"
	"github.com/holdfast-backup/holdfast/internal/repo"
)

// Options say where to restore.
type Options struct {
	Target string // the new data directory: absent or empty
	// Tablespaces maps a tablespace's original location to a new one.
	// Unmapped tablespaces go back to their original location.
	Tablespaces map[string]string
	// Owner, when set, chowns everything restored (uid, gid).
	Owner *Owner
	Log   *slog.Logger
}

// Owner is a numeric owner for restored files.
type Owner struct{ UID, GID int }

// Restore writes the data directory of the last backup of chain. chain runs
// from the full backup to the backup to restore, each the parent of the next.
func Restore(ctx context.Context, r *repo.Repo, chain []repo.Entry, opt Options) error {
	if len(chain) == 0 {
		return errors.New("restore: empty chain")
	}
	if chain[0].Level != repo.LevelFull {
		return fmt.Errorf("restore: chain starts with %s backup %s, not a full backup", chain[0].Level, chain[0].ID)
	}
	for i := 1; i < len(chain); i++ {
		if chain[i].Parent == nil || *chain[i].Parent != chain[i-1].ID {
			return fmt.Errorf("restore: backup %s does not build on %s", chain[i].ID, chain[i-1].ID)
		}
	}
	final := chain[len(chain)-1]
	w := &writer{opt: opt, dirs: map[string]time.Time{}}
	w.target = filepath.Clean(opt.Target)
	if err := prepareDir(w.target, 0o700); err != nil {
		return err
	}
	// Tablespace directories: decided and checked before anything is written.
	w.spc = map[uint32]string{}
	for _, a := range final.Archives {
		if a.TablespaceID == 0 {
			continue
		}
		dest := a.Location
		if m, ok := opt.Tablespaces[a.Location]; ok {
			dest = m
		}
		dest = filepath.Clean(dest)
		if !filepath.IsAbs(dest) {
			return fmt.Errorf("%w: tablespace %d goes to %q, which is not absolute; map it with --tablespace %s=/new/dir", ErrTarget, a.TablespaceID, dest, a.Location)
		}
		if dest == w.target || strings.HasPrefix(dest, w.target+"/") || strings.HasPrefix(w.target, dest+"/") {
			return fmt.Errorf("%w: tablespace directory %s overlaps the target %s", ErrTarget, dest, w.target)
		}
		if err := prepareDir(dest, 0o700); err != nil {
			return fmt.Errorf("tablespace %d: %w", a.TablespaceID, err)
		}
		w.spc[a.TablespaceID] = dest
	}
	for old := range opt.Tablespaces {
		found := false
		for _, a := range final.Archives {
			found = found || (a.TablespaceID != 0 && a.Location == old)
		}
		if !found {
			return fmt.Errorf("%w: --tablespace %s: the backup has no tablespace at %s", ErrTarget, old, old)
		}
	}

	mb, err := r.ReadManifest(ctx, final)
	if err != nil {
		return err
	}
	m, err := manifest.Parse(mb)
	if err != nil {
		return fmt.Errorf("backup %s: %w", final.ID, err)
	}
	if len(chain) == 1 {
		err = w.full(ctx, r, final)
		if err == nil {
			err = w.writeFile("backup_manifest", mb, 0o600)
		}
	} else {
		err = w.chain(ctx, r, chain, m)
	}
	if err != nil {
		return err
	}
	return w.finish()
}

// writer creates files under the target and the tablespace directories.
type writer struct {
	opt    Options
	target string
	spc    map[uint32]string
	dirs   map[string]time.Time // directory → mtime to set at the end
	buf    []byte
}

// root is where an archive's members go.
func (w *writer) root(a repo.Archive) string {
	switch {
	case a.TablespaceID != 0:
		return w.spc[a.TablespaceID]
	case a.Name == "pg_wal.tar":
		return filepath.Join(w.target, "pg_wal")
	}
	return w.target
}

// full extracts every archive of one backup, streaming.
func (w *writer) full(ctx context.Context, r *repo.Repo, e repo.Entry) error {
	for _, a := range e.Archives {
		if err := w.extract(ctx, r, e, a); err != nil {
			return fmt.Errorf("backup %s: %s: %w", e.ID, a.Object, err)
		}
	}
	return nil
}

func compressionOf(a repo.Archive) archive.Compression {
	if a.Compression == "zstd" {
		return archive.Zstd
	}
	return archive.None
}

func (w *writer) extract(ctx context.Context, r *repo.Repo, e repo.Entry, a repo.Archive) error {
	// The index, when intact, lets the frames decompress in parallel.
	idx, _ := r.ReadIndex(ctx, e, a)
	rc, err := r.Store().Open(ctx, e.Dir+a.Object)
	if err != nil {
		return err
	}
	defer rc.Close()
	sr, closeStream := archive.OpenStream(rc, compressionOf(a), idx)
	defer closeStream()
	root := w.root(a)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, err := sr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := w.member(root, a, *m, sr); err != nil {
			return err
		}
	}
}

// member creates one archive member under root.
func (w *writer) member(root string, a repo.Archive, m archive.Member, data io.Reader) error {
	rel, err := cleanMember(m.Name)
	if err != nil {
		return err
	}
	if a.TablespaceID == 0 && a.Name != "pg_wal.tar" && insideTablespaceLink(rel) {
		return fmt.Errorf("%w: %q lies inside a tablespace link", ErrUnsafe, m.Name)
	}
	dst := filepath.Join(root, filepath.FromSlash(rel))
	switch m.Type {
	case archive.TypeDir:
		return w.mkdir(dst, m)
	case archive.TypeSymlink:
		oid, ok := tablespaceLink(rel)
		if !ok || a.TablespaceID != 0 || a.Name == "pg_wal.tar" {
			return fmt.Errorf("%w: symbolic link %q (only pg_tblspc/<oid> links are restored)", ErrUnsafe, m.Name)
		}
		dest, ok := w.spc[oid]
		if !ok {
			return fmt.Errorf("restore: pg_tblspc/%d links to a tablespace that has no archive in this backup", oid)
		}
		if err := os.Symlink(dest, dst); err != nil {
			return err
		}
		return w.chown(dst, true)
	case archive.TypeReg:
		return w.create(dst, m, data)
	}
	return fmt.Errorf("%w: %q has type %q", ErrUnsafe, m.Name, m.Type)
}

func (w *writer) mkdir(dst string, m archive.Member) error {
	mode := os.FileMode(m.Mode&0o7777) | 0o700
	if err := os.Mkdir(dst, mode); err != nil {
		if !errors.Is(err, os.ErrExist) {
			return err
		}
		fi, lerr := os.Lstat(dst)
		if lerr != nil || !fi.IsDir() {
			return fmt.Errorf("%w: %s exists and is not a directory", ErrUnsafe, dst)
		}
	}
	if err := os.Chmod(dst, mode); err != nil {
		return err
	}
	w.dirs[dst] = time.Unix(m.ModTime, 0)
	return w.chown(dst, false)
}

// create writes one regular file; it never follows a symlink and never
// replaces an existing file.
func (w *writer) create(dst string, m archive.Member, data io.Reader) error {
	return w.createWith(dst, m.Mode, m.ModTime, func(f io.Writer) (int64, error) {
		return w.copy(f, data)
	}, m.Size)
}

func (w *writer) createWith(dst string, mode, mtime int64, fill func(io.Writer) (int64, error), size int64) error {
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, os.FileMode(mode&0o7777)|0o600)
	if err != nil {
		return err
	}
	n, err := fill(f)
	if err == nil && size >= 0 && n != size {
		err = fmt.Errorf("restore: %s: wrote %d bytes, expected %d", dst, n, size)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	t := time.Unix(mtime, 0)
	if err := os.Chtimes(dst, t, t); err != nil {
		return err
	}
	return w.chown(dst, false)
}

// copyBuffer is the copy buffer for file data.
const copyBuffer = 1 << 20

func (w *writer) copy(dst io.Writer, src io.Reader) (int64, error) {
	if w.buf == nil {
		w.buf = make([]byte, copyBuffer)
	}
	return io.CopyBuffer(dst, src, w.buf)
}

func (w *writer) writeFile(rel string, data []byte, mode int64) error {
	dst := filepath.Join(w.target, rel)
	return w.createWith(dst, mode, time.Now().Unix(), func(f io.Writer) (int64, error) {
		n, err := f.Write(data)
		return int64(n), err
	}, int64(len(data)))
}

func (w *writer) chown(p string, link bool) error {
	if w.opt.Owner == nil {
		return nil
	}
	if link {
		return os.Lchown(p, w.opt.Owner.UID, w.opt.Owner.GID)
	}
	return os.Chown(p, w.opt.Owner.UID, w.opt.Owner.GID)
}

// finish sets directory times (after their contents were written), makes
// sure pg_wal's status directories exist, and flushes everything to disk.
func (w *writer) finish() error {
	for _, d := range []string{"pg_wal", "pg_wal/archive_status"} {
		p := filepath.Join(w.target, d)
		if err := os.MkdirAll(p, 0o700); err != nil {
			return err
		}
		if err := w.chown(p, false); err != nil {
			return err
		}
	}
	for d, t := range w.dirs {
		_ = os.Chtimes(d, t, t)
	}
	return syncTree(append([]string{w.target}, values(w.spc)...))
}

func values(m map[uint32]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// syncTree makes the restored files durable: one syncfs per file system
// instead of an fsync per file.
func syncTree(roots []string) error {
	for _, r := range roots {
		f, err := os.Open(r)
		if err != nil {
			return err
		}
		err = unix.Syncfs(int(f.Fd()))
		f.Close()
		if err != nil {
			return fmt.Errorf("sync %s: %w", r, err)
		}
	}
	return nil
}

// hashingWriter counts and hashes what it writes, for the manifest entry
// of a file it rebuilds.
type hashingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (h *hashingWriter) Write(p []byte) (int, error) {
	n, err := h.w.Write(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}
