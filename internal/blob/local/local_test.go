package local_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/holdfast-backup/holdfast/internal/blob"
	"github.com/holdfast-backup/holdfast/internal/blob/blobtest"
	"github.com/holdfast-backup/holdfast/internal/blob/local"
	"github.com/holdfast-backup/holdfast/internal/envtest"
)

func open(t testing.TB, root string) *local.Store {
	t.Helper()
	s, err := local.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// modes are the two ways the store resolves paths for reading: openat2(2)
// in one call, and openat(2) one segment at a time (older kernels).
var modes = []struct {
	name  string
	setup func(*local.Store)
}{
	{"openat2", func(*local.Store) {}},
	{"openat", local.DisableOpenat2},
}

func TestConformance(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { conformance(t, m.setup) })
	}
}

func conformance(t *testing.T, setup func(*local.Store)) {
	blobtest.Run(t, func(t *testing.T) blob.Store {
		root := t.TempDir()
		s := open(t, root)
		setup(s)
		t.Cleanup(func() {
			if t.Failed() {
				return
			}
			// Whatever the test did, no temporary file may be left.
			if temps := findTemps(t, root); len(temps) != 0 {
				t.Errorf("temporary files left behind: %q", temps)
			}
		})
		return s
	})
}

func findTemps(t testing.TB, root string) []string {
	t.Helper()
	var temps []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), local.TempPrefix) {
			temps = append(temps, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return temps
}

func TestOpenRoot(t *testing.T) {
	if _, err := local.Open("relative/repo"); err == nil {
		t.Error("Open of a relative path succeeded")
	}
	root := filepath.Join(t.TempDir(), "new", "repo")
	s := open(t, root)
	if s.Root() != root {
		t.Errorf("Root() = %q, want %q", s.Root(), root)
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		t.Errorf("root not created: %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := local.Open(file); err == nil {
		t.Error("Open of a regular file succeeded")
	}
}

func TestLayout(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	ctx := context.Background()
	u, err := s.Create(ctx, "cfg/host/disk/id/base.tar.zst")
	if err != nil {
		t.Fatal(err)
	}
	u.Write([]byte("data"))
	// The temporary file lives in the target directory, under a temp name.
	temps := findTemps(t, root)
	if len(temps) != 1 || filepath.Dir(temps[0]) != filepath.Join(root, "cfg/host/disk/id") {
		t.Fatalf("temporary files: %q", temps)
	}
	if err := u.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "cfg/host/disk/id/base.tar.zst"))
	if err != nil || string(b) != "data" {
		t.Errorf("file = %q, %v", b, err)
	}
	if temps := findTemps(t, root); len(temps) != 0 {
		t.Errorf("temporary files after Commit: %q", temps)
	}
	// Delete removes directories it leaves empty, and only those.
	blobtest.Put(t, s, "cfg/other", nil)
	if err := s.Delete(ctx, "cfg/host/disk/id/base.tar.zst"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "cfg/host")); !os.IsNotExist(err) {
		t.Errorf("empty directories left: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "cfg/other")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(root); err != nil {
		t.Errorf("root removed: %v", err)
	}
}

func TestTempNamesAreNotKeys(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := context.Background()
	for _, k := range []string{".tmp-x", "a/.tmp-x", ".tmp-/b"} {
		if _, err := s.Create(ctx, k); !errors.Is(err, blob.ErrBadKey) {
			t.Errorf("Create(%q) = %v, want ErrBadKey", k, err)
		}
		if err := s.PutIfAbsent(ctx, k, nil); !errors.Is(err, blob.ErrBadKey) {
			t.Errorf("PutIfAbsent(%q) = %v, want ErrBadKey", k, err)
		}
	}
	// Look-alikes are fine.
	blobtest.Put(t, s, "a/.tmpx", nil)
	blobtest.Put(t, s, "a/tmp-x", nil)
}

func TestSymlinks(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { testSymlinks(t, m.setup) })
	}
}

func testSymlinks(t *testing.T, setup func(*local.Store)) {
	root := t.TempDir()
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600)
	os.Mkdir(filepath.Join(root, "real"), 0o750)
	os.WriteFile(filepath.Join(root, "real", "obj"), []byte("obj"), 0o600)
	must(t, os.Symlink(outside, filepath.Join(root, "escape")))
	must(t, os.Symlink("real", filepath.Join(root, "inside")))
	must(t, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "real", "link")))
	must(t, os.Symlink("obj", filepath.Join(root, "real", "rel")))
	s := open(t, root)
	setup(s)
	ctx := context.Background()

	for _, key := range []string{"escape/secret", "inside/obj", "real/link", "real/rel", "escape/new/x"} {
		if rc, err := s.Open(ctx, key); !errors.Is(err, local.ErrSymlink) {
			if err == nil {
				rc.Close()
			}
			t.Errorf("Open(%q) = %v, want ErrSymlink", key, err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, local.ErrSymlink) {
			t.Errorf("Stat(%q) = %v, want ErrSymlink", key, err)
		}
		if err := s.Delete(ctx, key); !errors.Is(err, local.ErrSymlink) {
			t.Errorf("Delete(%q) = %v, want ErrSymlink", key, err)
		}
	}
	for _, key := range []string{"escape/planted", "inside/planted", "escape/deep/planted"} {
		if _, err := s.Create(ctx, key); !errors.Is(err, local.ErrSymlink) {
			t.Errorf("Create(%q) = %v, want ErrSymlink", key, err)
		}
		if err := s.PutIfAbsent(ctx, key, []byte("x")); !errors.Is(err, local.ErrSymlink) {
			t.Errorf("PutIfAbsent(%q) = %v, want ErrSymlink", key, err)
		}
	}
	// Replacing a symbolic link with an object replaces the link, never its target.
	blobtest.Put(t, s, "real/link", []byte("replaced"))
	if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "secret" {
		t.Errorf("file outside the store changed: %q", b)
	}
	if err := s.PutIfAbsent(ctx, "real/rel", []byte("x")); !errors.Is(err, blob.ErrExists) {
		t.Errorf("PutIfAbsent over a symbolic link = %v, want ErrExists", err)
	}
	ents, _ := os.ReadDir(outside)
	if len(ents) != 1 {
		t.Errorf("files appeared outside the store: %v", ents)
	}
	// List shows objects only and does not descend into links.
	if diff := cmp.Diff([]string{"real/link", "real/obj"}, blobtest.Keys(t, s, "")); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	if err := s.List(ctx, "escape/", func(blob.Info) error { return nil }); !errors.Is(err, local.ErrSymlink) {
		t.Errorf("List(escape/) = %v, want ErrSymlink", err)
	}
}

func TestNonRegularFiles(t *testing.T) {
	root := t.TempDir()
	must(t, syscall.Mkfifo(filepath.Join(root, "fifo"), 0o600))
	s := open(t, root)
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		rc, err := s.Open(ctx, "fifo")
		if err == nil {
			rc.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Open(fifo) = %v, want a 'not a regular file' error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Open(fifo) hangs")
	}
	if diff := cmp.Diff([]string{}, blobtest.Keys(t, s, "")); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
}

func TestCreateOverObjectDirectory(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := context.Background()
	blobtest.Put(t, s, "a/b", []byte("x"))
	if _, err := s.Create(ctx, "a/b/c"); err == nil || !strings.Contains(err.Error(), "a/b/c") {
		t.Errorf("Create under an object = %v, want an error naming the key", err)
	}
	blobtest.Put(t, s, "d/e/f", []byte("x"))
	u, err := s.Create(ctx, "d/e")
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(ctx); err == nil {
		t.Error("Commit over a directory of keys succeeded")
	}
	if diff := cmp.Diff([]string{"a/b", "d/e/f"}, blobtest.Keys(t, s, "")); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
}

func TestCleanTemp(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	ctx := context.Background()
	blobtest.Put(t, s, "a/b/obj", []byte("x"))
	old := time.Now().Add(-2 * time.Hour)
	for _, p := range []string{".tmp-root", "a/.tmp-1", "a/b/.tmp-2", "a/b/.tmp-new"} {
		must(t, os.WriteFile(filepath.Join(root, p), nil, 0o600))
		if !strings.HasSuffix(p, "new") {
			must(t, os.Chtimes(filepath.Join(root, p), old, old))
		}
	}
	// A live upload is younger than the cutoff and survives.
	u, err := s.Create(ctx, "a/b/live")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Abort()
	n, err := s.CleanTemp(ctx, "a/b/", time.Hour)
	if err != nil || n != 1 {
		t.Errorf("CleanTemp(a/b/) = %d, %v; want 1", n, err)
	}
	n, err = s.CleanTemp(ctx, "", time.Hour)
	if err != nil || n != 2 {
		t.Errorf("CleanTemp(\"\") = %d, %v; want 2", n, err)
	}
	temps := findTemps(t, root)
	if len(temps) != 2 {
		t.Errorf("left %q, want .tmp-new and the live upload", temps)
	}
	u.Write([]byte("still fine"))
	if err := u.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentDeleteAndCreate races Delete, which removes directories it
// empties, against writers into the same directories.
func TestConcurrentDeleteAndCreate(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := context.Background()
	done := make(chan struct{})
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	defer func() {
		select {
		case <-done:
		default:
			close(done)
		}
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(errc)
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := s.Delete(ctx, "x/y/z/del"); err != nil && !errors.Is(err, blob.ErrNotFound) {
				errc <- err
				return
			}
			s.PutIfAbsent(ctx, "x/y/z/del", nil)
		}
	}()
	for i := range 300 {
		key := "x/y/z/keep"
		if i%2 == 0 {
			err := s.PutIfAbsent(ctx, "x/y/z/p", nil)
			if err != nil && !errors.Is(err, blob.ErrExists) {
				t.Fatal(err)
			}
			s.Delete(ctx, "x/y/z/p")
			continue
		}
		blobtest.Put(t, s, key, []byte("k"))
		s.Delete(ctx, key)
	}
	close(done)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestWriteErrorsWrapKey(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := context.Background()
	u, err := s.Create(ctx, "k/base.tar.zst")
	if err != nil {
		t.Fatal(err)
	}
	u.Commit(ctx)
	_, err = u.Write([]byte("x"))
	if err == nil || !strings.HasPrefix(err.Error(), "local: write k/base.tar.zst: ") {
		t.Errorf("Write after Commit = %v", err)
	}
}

// TestFullFileSystem runs the store on a 1 MiB tmpfs: ENOSPC must reach
// the caller from Write or Commit, and nothing may be left behind.
func TestFullFileSystem(t *testing.T) {
	dir := mountTmpfs(t, "1m")
	s := open(t, dir)
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<17) // 2 MiB

	for _, chunk := range []int{len(data), 4096, 3 << 20} {
		u, err := s.Create(ctx, "cfg/host/disk/id/base.tar.zst")
		if err != nil {
			t.Fatal(err)
		}
		var werr error
		for off := 0; off < len(data) && werr == nil; off += chunk {
			_, werr = u.Write(data[off:min(off+chunk, len(data))])
		}
		cerr := u.Commit(ctx)
		if !errors.Is(werr, syscall.ENOSPC) && !errors.Is(cerr, syscall.ENOSPC) {
			t.Errorf("chunk %d: Write = %v, Commit = %v; want ENOSPC from one of them", chunk, werr, cerr)
		}
		if cerr == nil {
			t.Errorf("chunk %d: Commit succeeded on a full file system", chunk)
		}
		if err := u.Abort(); err != nil {
			t.Errorf("Abort: %v", err)
		}
		if !strings.Contains(cerr.Error(), "cfg/host/disk/id/base.tar.zst") {
			t.Errorf("error does not name the key: %v", cerr)
		}
		if temps := findTemps(t, dir); len(temps) != 0 {
			t.Fatalf("temporary files left on the full file system: %q", temps)
		}
	}
	if err := s.PutIfAbsent(ctx, "cfg/backup.json", data); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("PutIfAbsent = %v, want ENOSPC", err)
	}
	if temps := findTemps(t, dir); len(temps) != 0 {
		t.Errorf("temporary files left: %q", temps)
	}
	if diff := cmp.Diff([]string{}, blobtest.Keys(t, s, "")); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	// The space came back: a small object fits.
	blobtest.Put(t, s, "cfg/small", []byte("fits"))
	// Abort on a nearly full file system frees the space too.
	u, err := s.Create(ctx, "cfg/partial")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write(data[:700<<10]); err != nil {
		t.Fatal(err)
	}
	if err := u.Abort(); err != nil {
		t.Fatal(err)
	}
	blobtest.Put(t, s, "cfg/again", data[:700<<10])
}

// mountTmpfs mounts a tmpfs of the given size, when the test runs as root;
// otherwise it skips, or fails when CI=true (envtest.Missing).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		envtest.Missing(t, "a full file system: mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		envtest.Missing(t, "a full file system: mount tmpfs on %s: %v: %s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func BenchmarkCommit256MiB(b *testing.B) {
	s := open(b, b.TempDir())
	blobtest.BenchCommit(b, s)
}

func BenchmarkOpenRange8KiB(b *testing.B) {
	s := open(b, b.TempDir())
	blobtest.BenchOpenRange(b, s, 64<<20)
}

// TestUnclosedStoresDoNotLeak: callers that hold a blob.Store cannot call
// Close; a long-running server opening a store per request must not run
// out of file descriptors.
func TestUnclosedStoresDoNotLeak(t *testing.T) {
	root := t.TempDir()
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip(err)
		}
		return len(ents)
	}
	runtime.GC()
	before := fds()
	for range 200 {
		s, err := local.Open(root)
		if err != nil {
			t.Fatal(err)
		}
		blobtest.Put(t, s, "k", []byte("x"))
	}
	for range 10 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
		if fds() < before+20 {
			return
		}
	}
	t.Errorf("%d descriptors open after 200 unclosed stores, %d before", fds(), before)
}
