package local

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/holdfast-backup/holdfast/internal/blob"
)

const (
	// TempPrefix starts the name of every file being written. List skips
	// such files, CleanTemp removes stale ones, and keys may not use it.
	TempPrefix = ".tmp-"

	filePerm = 0o640
	dirPerm  = 0o750

	// retries bounds how often Create and PutIfAbsent start over when a
	// concurrent Delete removes the directory they are about to write in.
	retries = 50
)

// ErrSymlink is returned for a key whose path in the store contains a
// symbolic link. The store never follows one: a link could point out of
// the repository.
var ErrSymlink = errors.New("local: path contains a symbolic link")

var errUploadDone = errors.New("upload already committed or aborted")

// Store is a blob.Store in a directory.
type Store struct {
	root      string
	rootFD    int // O_DIRECTORY; every path is resolved from it, never through a symbolic link
	noOpenat2 atomic.Bool
	cleanup   runtime.Cleanup // closes rootFD if Close is never called
	// durable holds directories (key prefixes) whose entry in their parent
	// this Store has flushed: later commits below them fsync only their
	// own directory, not every ancestor again. Its size is the number of
	// directories written to, a few per backup.
	durable sync.Map
}

var _ blob.Store = (*Store)(nil)

// Open opens the store rooted at root, an absolute path, creating the
// directory if needed. Close releases it.
func Open(root string) (*Store, error) {
	if !filepath.IsAbs(root) {
		return nil, fmt.Errorf("local: open %q: the repository path must be absolute", root)
	}
	root = filepath.Clean(root)
	if err := os.MkdirAll(root, dirPerm); err != nil {
		return nil, fmt.Errorf("local: open %s: %w", root, err)
	}
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("local: open %s: %w", root, &os.PathError{Op: "open", Path: root, Err: err})
	}
	s := &Store{root: root, rootFD: fd}
	// blob.Store has no Close, so callers holding one may never call
	// ours: the handle then goes with the Store. Every method keeps s
	// alive while it uses the raw descriptor, and so does every upload.
	s.cleanup = runtime.AddCleanup(s, func(fd int) { unix.Close(fd) }, fd)
	return s, nil
}

// Root returns the store's directory.
func (s *Store) Root() string { return s.root }

// Close releases the store's directory handle. Neither the store nor its
// open uploads may be used afterwards; open readers keep working. Without
// Close the handle is released once the Store is unreachable.
func (s *Store) Close() error {
	if s.rootFD < 0 {
		return nil
	}
	s.cleanup.Stop()
	err := unix.Close(s.rootFD)
	s.rootFD = -1
	return err
}

// checkKey is blob.CheckKey plus the store's own reserved names.
func checkKey(key string) error {
	if err := blob.CheckKey(key); err != nil {
		return err
	}
	for seg := range strings.SplitSeq(key, "/") {
		if strings.HasPrefix(seg, TempPrefix) {
			return blob.ErrBadKey
		}
	}
	return nil
}

// dirs is the chain of open directories from the root (fds[0], not owned)
// down to a key's parent.
type dirs struct {
	fds   []int
	names []string // names[i] is fds[i+1]'s name in fds[i]
}

func (d *dirs) parent() int { return d.fds[len(d.fds)-1] }

func (d *dirs) close() {
	for _, fd := range d.fds[1:] {
		unix.Close(fd)
	}
	d.fds = d.fds[:1]
	d.names = d.names[:0]
}

// sync flushes the key's parent directory (the new entry), then each
// ancestor whose entry for the directory below it is not yet known to be
// durable: a directory created for this object only survives a crash once
// its own parent is flushed. known records what has been flushed.
func (d *dirs) sync(known *sync.Map) error {
	last := len(d.fds) - 1
	if err := unix.Fsync(d.fds[last]); err != nil {
		return err
	}
	for i := last - 1; i >= 0; i-- {
		child := strings.Join(d.names[:i+1], "/")
		if _, ok := known.Load(child); ok {
			return nil
		}
		if err := unix.Fsync(d.fds[i]); err != nil {
			return err
		}
		known.Store(child, true)
	}
	return nil
}

// errVanished: a directory on the way was removed by a concurrent Delete
// (which removes directories it empties) while it was being opened.
var errVanished = errors.New("directory removed concurrently")

// openDirs opens the directories of the segments in segs, creating missing
// ones when create is set. It never follows a symbolic link.
func (s *Store) openDirs(segs []string, create bool) (*dirs, error) {
	for attempt := 0; ; attempt++ {
		d, err := s.openDirsOnce(segs, create)
		if err != errVanished || attempt == retries {
			return d, err
		}
	}
}

func (s *Store) openDirsOnce(segs []string, create bool) (*dirs, error) {
	d := &dirs{fds: []int{s.rootFD}}
	for _, name := range segs {
		fd, err := openDir(d.parent(), name, create)
		if err != nil {
			d.close()
			return nil, err
		}
		d.fds = append(d.fds, fd)
		d.names = append(d.names, name)
	}
	return d, nil
}

func openDir(parent int, name string, create bool) (int, error) {
	fd, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == unix.ENOENT && create {
		if err := unix.Mkdirat(parent, name, dirPerm); err != nil && err != unix.EEXIST {
			if err == unix.ENOENT {
				return -1, errVanished // parent removed since it was opened
			}
			return -1, err
		}
		fd, err = unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.ENOENT {
			return -1, errVanished // removed between mkdir and open
		}
	}
	switch {
	case err == nil:
		return fd, nil
	case err == unix.ENOENT:
		return -1, blob.ErrNotFound
	case err == unix.ENOTDIR || err == unix.ELOOP:
		var st unix.Stat_t
		if unix.Fstatat(parent, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return -1, ErrSymlink
		}
		if create {
			return -1, fmt.Errorf("%s is an object, not a directory: %w", name, unix.ENOTDIR)
		}
		return -1, blob.ErrNotFound
	default:
		return -1, err
	}
}

var errNoOpenat2 = errors.New("openat2 unavailable")

// openat2 opens key in one system call, refusing symbolic links anywhere
// on the path and any escape from the root: what openDirs does one segment
// at a time, for the read path, where the syscalls add up. It returns
// errNoOpenat2 on kernels (or sandboxes) without openat2(2), Linux < 5.6.
func (s *Store) openat2(key string, flags int) (int, error) {
	if s.noOpenat2.Load() {
		return -1, errNoOpenat2
	}
	how := unix.OpenHow{
		Flags:   uint64(flags),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	for {
		fd, err := unix.Openat2(s.rootFD, key, &how)
		switch err {
		case nil:
			return fd, nil
		case unix.EINTR, unix.EAGAIN:
			continue // EAGAIN: a concurrent rename on the way; try again
		case unix.ENOSYS, unix.EPERM:
			s.noOpenat2.Store(true)
			return -1, errNoOpenat2
		case unix.ENOTDIR:
			return -1, blob.ErrNotFound // an object where a directory would be
		case unix.ELOOP, unix.EXDEV:
			return -1, ErrSymlink
		}
		return -1, err
	}
}

// split returns key's directory segments and its last segment.
func split(key string) ([]string, string) {
	segs := strings.Split(key, "/")
	return segs[:len(segs)-1], segs[len(segs)-1]
}

func tempName() string {
	var b [8]byte
	rand.Read(b[:])
	return TempPrefix + hex.EncodeToString(b[:])
}

// createTemp creates a temporary file next to where key goes.
func (s *Store) createTemp(key string) (*dirs, string, *os.File, error) {
	segs, _ := split(key)
	for attempt := 0; ; attempt++ {
		d, err := s.openDirs(segs, true)
		if err != nil {
			return nil, "", nil, err
		}
		tmp := tempName()
		fd, err := unix.Openat(d.parent(), tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, filePerm)
		if err == nil {
			return d, tmp, os.NewFile(uintptr(fd), filepath.Join(s.root, filepath.Dir(key), tmp)), nil
		}
		d.close()
		// ENOENT: a concurrent Delete removed the (empty) directory after
		// it was opened. Start over.
		if err != unix.ENOENT || attempt == retries {
			return nil, "", nil, err
		}
	}
}

// Create implements blob.Writer. The object is written to a temporary file
// in its directory through a 1 MiB buffer, its writeback started as it
// grows (see writeBehind); Commit flushes and fsyncs it,
// renames it into place and fsyncs the directories.
func (s *Store) Create(ctx context.Context, key string) (blob.Upload, error) {
	defer runtime.KeepAlive(s)
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("local: create %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("local: create %s: %w", key, err)
	}
	d, tmp, f, err := s.createTemp(key)
	if err != nil {
		return nil, fmt.Errorf("local: create %s: %w", key, err)
	}
	_, base := split(key)
	return &upload{s: s, key: key, base: base, tmp: tmp, dirs: d, f: f, w: bufio.NewWriterSize(&writeBehind{f: f}, writeBufferSize), ctx: ctx}, nil
}

// upload keeps Create's ctx because the contract ties the upload's
// lifetime to it and Write has no ctx of its own.
type upload struct {
	s              *Store // keeps the root handle in dirs open
	key, base, tmp string
	dirs           *dirs
	f              *os.File
	w              *bufio.Writer
	ctx            context.Context
	err            error // sticky: set when the upload failed and was cleaned up
	done           bool  // committed or aborted
}

// fail records err and removes the temporary file at once, so a full
// file system gets its space back before the caller gets to Abort.
func (u *upload) fail(err error) error {
	if u.err == nil {
		u.err = err
		u.cleanup()
	}
	return u.err
}

func (u *upload) cleanup() {
	if u.f != nil {
		u.f.Close()
		u.f = nil
		unix.Unlinkat(u.dirs.parent(), u.tmp, 0)
	}
	u.w = nil
	u.dirs.close()
}

func (u *upload) Write(p []byte) (int, error) {
	defer runtime.KeepAlive(u.s)
	if u.done {
		return 0, fmt.Errorf("local: write %s: %w", u.key, errUploadDone)
	}
	if u.err != nil {
		return 0, u.err
	}
	if err := u.ctx.Err(); err != nil {
		return 0, u.fail(fmt.Errorf("local: write %s: %w", u.key, err))
	}
	n, err := u.w.Write(p)
	if err != nil {
		return n, u.fail(fmt.Errorf("local: write %s: %w", u.key, err))
	}
	return n, nil
}

func (u *upload) Commit(ctx context.Context) error {
	defer runtime.KeepAlive(u.s)
	if u.done {
		return fmt.Errorf("local: commit %s: %w", u.key, errUploadDone)
	}
	if u.err != nil {
		u.done = true
		return u.err
	}
	err := u.commit(ctx)
	u.done = true
	if err != nil {
		err = u.fail(fmt.Errorf("local: commit %s: %w", u.key, err))
	}
	u.cleanup()
	return err
}

func (u *upload) commit(ctx context.Context) error {
	if err := live(ctx, u.ctx); err != nil {
		return err
	}
	if err := u.w.Flush(); err != nil {
		return err
	}
	if err := u.f.Sync(); err != nil {
		return err
	}
	err := u.f.Close()
	u.f = nil
	if err != nil {
		unix.Unlinkat(u.dirs.parent(), u.tmp, 0)
		return err
	}
	// Last chance to back out: after the rename the object is visible.
	if err := live(ctx, u.ctx); err != nil {
		unix.Unlinkat(u.dirs.parent(), u.tmp, 0)
		return err
	}
	if err := unix.Renameat(u.dirs.parent(), u.tmp, u.dirs.parent(), u.base); err != nil {
		unix.Unlinkat(u.dirs.parent(), u.tmp, 0)
		if err == unix.EISDIR || err == unix.ENOTEMPTY || err == unix.EEXIST {
			return fmt.Errorf("%s is a directory: %w", u.base, err)
		}
		return err
	}
	// The object is visible now. If the directories cannot be flushed it
	// may not survive a crash, and the caller must be told.
	return u.dirs.sync(&u.s.durable)
}

func live(ctxs ...context.Context) error {
	for _, c := range ctxs {
		if err := c.Err(); err != nil {
			return err
		}
	}
	return nil
}

func (u *upload) Abort() error {
	defer runtime.KeepAlive(u.s)
	if u.done || u.err != nil {
		u.done = true
		return nil
	}
	u.done = true
	var err error
	if u.f != nil {
		u.f.Close()
		u.f = nil
		if e := unix.Unlinkat(u.dirs.parent(), u.tmp, 0); e != nil && e != unix.ENOENT {
			err = fmt.Errorf("local: abort %s: remove %s: %w", u.key, u.tmp, e)
		}
	}
	u.cleanup()
	return err
}

// PutIfAbsent implements blob.Writer: write and fsync a temporary file,
// link(2) it to the key, which fails atomically if the key exists, remove
// the temporary name and fsync the directories.
func (s *Store) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	defer runtime.KeepAlive(s)
	if err := checkKey(key); err != nil {
		return fmt.Errorf("local: put %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("local: put %s: %w", key, err)
	}
	if err := s.putIfAbsent(ctx, key, data); err != nil {
		return fmt.Errorf("local: put %s: %w", key, err)
	}
	return nil
}

func (s *Store) putIfAbsent(ctx context.Context, key string, data []byte) error {
	d, tmp, f, err := s.createTemp(key)
	if err != nil {
		return err
	}
	defer d.close()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		unix.Unlinkat(d.parent(), tmp, 0)
		return err
	}
	_, base := split(key)
	err = unix.Linkat(d.parent(), tmp, d.parent(), base, 0)
	// If this fails the temporary name outlives us, harmlessly: it is a
	// second name of the object, and CleanTemp removes it.
	unix.Unlinkat(d.parent(), tmp, 0)
	if err == unix.EEXIST {
		return blob.ErrExists
	}
	if err != nil {
		return err
	}
	return d.sync(&s.durable)
}

// openFile opens key for reading, refusing anything but a regular file.
func (s *Store) openFile(key string) (*os.File, unix.Stat_t, error) {
	var st unix.Stat_t
	// O_NONBLOCK: a FIFO planted in the store must not hang the open.
	fd, err := s.openat2(key, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC)
	if err == errNoOpenat2 {
		segs, base := split(key)
		d, derr := s.openDirs(segs, false)
		if derr != nil {
			return nil, st, derr
		}
		fd, err = unix.Openat(d.parent(), base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		d.close()
		if err == unix.ELOOP {
			err = ErrSymlink
		}
	}
	switch {
	case err == unix.ENOENT:
		return nil, st, blob.ErrNotFound
	case err != nil:
		return nil, st, err
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, st, err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		unix.Close(fd)
		return nil, st, blob.ErrNotFound
	default:
		unix.Close(fd)
		return nil, st, fmt.Errorf("not a regular file (mode %#o)", st.Mode)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, st, err
	}
	return os.NewFile(uintptr(fd), filepath.Join(s.root, key)), st, nil
}

// Open implements blob.Reader.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	return s.OpenRange(ctx, key, 0, -1)
}

// OpenRange implements blob.Reader. Reads are pread(2) calls at the
// caller's buffer size; nothing is buffered in between.
func (s *Store) OpenRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	f, st, err := s.openForRead(ctx, key)
	if err != nil {
		return nil, err
	}
	if off < 0 || off > st.Size {
		f.Close()
		return nil, fmt.Errorf("local: open %s: offset %d of %d bytes: %w", key, off, st.Size, blob.ErrRange)
	}
	if n < 0 || n > st.Size-off {
		n = st.Size - off
	}
	return &rangeReader{SectionReader: io.NewSectionReader(f, off, n), f: f}, nil
}

// OpenReaderAt implements blob.ReaderAtOpener: reads of the returned
// handle are pread(2) calls on one open file, which fail once ctx is done.
func (s *Store) OpenReaderAt(ctx context.Context, key string) (blob.ReadAtCloser, error) {
	f, _, err := s.openForRead(ctx, key)
	if err != nil {
		return nil, err
	}
	return &fileReaderAt{ctx: ctx, f: f}, nil
}

// openForRead checks key and ctx and opens the object's file (openFile),
// with errors worded for the caller.
func (s *Store) openForRead(ctx context.Context, key string) (*os.File, unix.Stat_t, error) {
	defer runtime.KeepAlive(s)
	if err := checkKey(key); err != nil {
		return nil, unix.Stat_t{}, fmt.Errorf("local: open %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, unix.Stat_t{}, fmt.Errorf("local: open %s: %w", key, err)
	}
	f, st, err := s.openFile(key)
	if err != nil {
		return nil, st, fmt.Errorf("local: open %s: %w", key, err)
	}
	return f, st, nil
}

type fileReaderAt struct {
	ctx context.Context
	f   *os.File
}

func (r *fileReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, fmt.Errorf("local: read %s: %w", r.f.Name(), err)
	}
	return r.f.ReadAt(p, off)
}

func (r *fileReaderAt) Close() error { return r.f.Close() }

type rangeReader struct {
	*io.SectionReader
	f *os.File
}

func (r *rangeReader) Close() error { return r.f.Close() }

// Stat implements blob.Reader.
func (s *Store) Stat(ctx context.Context, key string) (blob.Info, error) {
	defer runtime.KeepAlive(s)
	if err := checkKey(key); err != nil {
		return blob.Info{}, fmt.Errorf("local: stat %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return blob.Info{}, fmt.Errorf("local: stat %s: %w", key, err)
	}
	in, err := s.stat(key)
	if err != nil {
		return blob.Info{}, fmt.Errorf("local: stat %s: %w", key, err)
	}
	return in, nil
}

func (s *Store) stat(key string) (blob.Info, error) {
	segs, base := split(key)
	d, err := s.openDirs(segs, false)
	if err != nil {
		return blob.Info{}, err
	}
	defer d.close()
	return statAt(d.parent(), key, base)
}

func statAt(dirfd int, key, name string) (blob.Info, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return blob.Info{}, blob.ErrNotFound
		}
		return blob.Info{}, err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return blob.Info{Key: key, Size: st.Size, ModTime: time.Unix(st.Mtim.Unix())}, nil
	case unix.S_IFDIR:
		return blob.Info{}, blob.ErrNotFound
	case unix.S_IFLNK:
		return blob.Info{}, ErrSymlink
	default:
		return blob.Info{}, fmt.Errorf("not a regular file (mode %#o)", st.Mode)
	}
}

// Delete implements blob.Writer. The removal is fsynced, so a deleted
// commit record stays deleted after a crash; directories left empty are
// removed (best effort).
func (s *Store) Delete(ctx context.Context, key string) error {
	defer runtime.KeepAlive(s)
	if err := checkKey(key); err != nil {
		return fmt.Errorf("local: delete %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("local: delete %s: %w", key, err)
	}
	if err := s.delete(key); err != nil {
		return fmt.Errorf("local: delete %s: %w", key, err)
	}
	return nil
}

func (s *Store) delete(key string) error {
	segs, base := split(key)
	d, err := s.openDirs(segs, false)
	if err != nil {
		return err
	}
	defer d.close()
	// Only objects are deleted: not directories, not symbolic links.
	if _, err := statAt(d.parent(), key, base); err != nil {
		return err
	}
	if err := unix.Unlinkat(d.parent(), base, 0); err != nil {
		if err == unix.ENOENT {
			return blob.ErrNotFound
		}
		return err
	}
	if err := unix.Fsync(d.parent()); err != nil {
		return err
	}
	for i := len(d.fds) - 1; i >= 1; i-- {
		// Forget it first: a directory made again later is a new entry.
		s.durable.Delete(strings.Join(d.names[:i], "/"))
		if unix.Unlinkat(d.fds[i-1], d.names[i-1], unix.AT_REMOVEDIR) != nil {
			break
		}
	}
	return nil
}

// List implements blob.Reader. Keys come in byte-wise lexical order: the
// walk sorts each directory's names with a directory named d ordered as
// "d/". Temporary files, symbolic links and other non-regular files are
// not objects and are skipped.
func (s *Store) List(ctx context.Context, prefix string, fn func(blob.Info) error) error {
	defer runtime.KeepAlive(s)
	if err := blob.CheckPrefix(prefix); err != nil {
		return fmt.Errorf("local: list %q: %w", prefix, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("local: list %s: %w", prefix, err)
	}
	err := s.walk(ctx, prefix, func(dirfd int, dirKey, name string) error {
		if strings.HasPrefix(name, TempPrefix) {
			return nil
		}
		key := join(dirKey, name)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		in, err := statAt(dirfd, key, name)
		if err != nil {
			// Gone since the directory was read, or not an object.
			return nil
		}
		return fn(in)
	})
	return err
}

// CleanTemp removes the temporary files that crashed or killed writers
// left behind in directories at or under prefix, if they were last
// modified more than olderThan ago. olderThan must exceed the longest
// upload that can still be running. It returns how many it removed.
func (s *Store) CleanTemp(ctx context.Context, prefix string, olderThan time.Duration) (int, error) {
	defer runtime.KeepAlive(s)
	if err := blob.CheckPrefix(prefix); err != nil {
		return 0, fmt.Errorf("local: clean %q: %w", prefix, err)
	}
	cutoff := time.Now().Add(-olderThan)
	removed := 0
	err := s.walk(ctx, prefix, func(dirfd int, dirKey, name string) error {
		// A temporary name does not tell which key it was for: match its
		// directory ("" for the root, which only prefix "" matches).
		if !strings.HasPrefix(name, TempPrefix) || !strings.HasPrefix(dirKey+"/", prefix) {
			return nil
		}
		var st unix.Stat_t
		if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			return nil
		}
		if !time.Unix(st.Mtim.Unix()).Before(cutoff) {
			return nil
		}
		if err := unix.Unlinkat(dirfd, name, 0); err != nil && err != unix.ENOENT {
			return fmt.Errorf("local: clean %s: %w", join(dirKey, name), err)
		}
		removed++
		return nil
	})
	return removed, err
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// walk calls visit for every non-directory entry in the directories that
// can hold keys starting with prefix, in key order.
func (s *Store) walk(ctx context.Context, prefix string, visit func(dirfd int, dirKey, name string) error) error {
	dirKey := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dirKey = prefix[:i]
	}
	var segs []string
	if dirKey != "" {
		segs = strings.Split(dirKey, "/")
	}
	d, err := s.openDirs(segs, false)
	if errors.Is(err, blob.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("local: list %s: %w", prefix, err)
	}
	// A fresh handle: a dup of the root's would share its read offset.
	fd, err := unix.Openat(d.parent(), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	d.close()
	if err != nil {
		return fmt.Errorf("local: list %s: %w", prefix, err)
	}
	return s.walkDir(ctx, fd, dirKey, prefix, visit)
}

type entry struct {
	name string
	dir  bool
}

func (s *Store) walkDir(ctx context.Context, fd int, dirKey, prefix string, visit func(int, string, string) error) error {
	f := os.NewFile(uintptr(fd), filepath.Join(s.root, dirKey))
	defer f.Close()
	des, err := f.ReadDir(-1)
	if err != nil {
		return fmt.Errorf("local: list %s: %w", join(dirKey, ""), err)
	}
	ents := make([]entry, 0, len(des))
	for _, de := range des {
		e := entry{name: de.Name(), dir: de.IsDir()}
		if e.dir {
			sub := join(dirKey, e.name) + "/"
			if !strings.HasPrefix(sub, prefix) && !strings.HasPrefix(prefix, sub) {
				continue
			}
		}
		ents = append(ents, e)
	}
	sortKey := func(e entry) string {
		if e.dir {
			return e.name + "/"
		}
		return e.name
	}
	slices.SortFunc(ents, func(a, b entry) int { return strings.Compare(sortKey(a), sortKey(b)) })
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("local: list %s: %w", prefix, err)
		}
		if !e.dir {
			if err := visit(fd, dirKey, e.name); err != nil {
				return err
			}
			continue
		}
		sub, err := unix.Openat(fd, e.name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.ENOENT {
			continue // removed since the directory was read
		}
		if err != nil {
			return fmt.Errorf("local: list %s: %w", join(dirKey, e.name), err)
		}
		if err := s.walkDir(ctx, sub, join(dirKey, e.name), prefix, visit); err != nil {
			return err
		}
	}
	return nil
}
