package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/holdfast-backup/holdfast/internal/blob"
)

// LargeSize is the size of the object the suite streams in odd-sized
// writes: big enough to span several multipart parts of the S3 store at its
// minimum part size.
const LargeSize = 20<<20 + 12345

// Run is the conformance suite every blob.Store passes. newStore returns a
// fresh, empty store for each subtest; it registers its own cleanup.
func Run(t *testing.T, newStore func(t *testing.T) blob.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s blob.Store)
	}{
		{"CreateCommitRead", testCreateCommitRead},
		{"EmptyObject", testEmptyObject},
		{"InvisibleBeforeCommit", testInvisibleBeforeCommit},
		{"Abort", testAbort},
		{"UploadAfterEnd", testUploadAfterEnd},
		{"Overwrite", testOverwrite},
		{"ConcurrentCreateSameKey", testConcurrentCreate},
		{"PutIfAbsent", testPutIfAbsent},
		{"PutIfAbsentConcurrent", testPutIfAbsentConcurrent},
		{"OpenRange", testOpenRange},
		{"OpenReaderAt", testOpenReaderAt},
		{"Stat", testStat},
		{"List", testList},
		{"ListCallbackError", testListCallbackError},
		{"KeyCharacters", testKeyCharacters},
		{"BadKeys", testBadKeys},
		{"Delete", testDelete},
		{"ContextCanceled", testContextCanceled},
		{"UploadContextCanceled", testUploadContextCanceled},
		{"Large", testLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// Put writes data under key with Create, Write and Commit.
func Put(t testing.TB, s blob.Writer, key string, data []byte) {
	t.Helper()
	ctx := context.Background()
	u, err := s.Create(ctx, key)
	if err != nil {
		t.Fatalf("Create(%q): %v", key, err)
	}
	if _, err := u.Write(data); err != nil {
		u.Abort()
		t.Fatalf("Write(%q): %v", key, err)
	}
	if err := u.Commit(ctx); err != nil {
		t.Fatalf("Commit(%q): %v", key, err)
	}
}

// Get reads the whole object at key.
func Get(t testing.TB, s blob.Reader, key string) []byte {
	t.Helper()
	rc, err := s.Open(context.Background(), key)
	if err != nil {
		t.Fatalf("Open(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return b
}

// Keys lists the keys under prefix, in the order List gives them.
func Keys(t testing.TB, s blob.Reader, prefix string) []string {
	t.Helper()
	keys := []string{}
	err := s.List(context.Background(), prefix, func(in blob.Info) error {
		keys = append(keys, in.Key)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return keys
}

func wantNotFound(t *testing.T, s blob.Reader, key string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Stat(ctx, key); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat(%q) = %v, want ErrNotFound", key, err)
	}
	if rc, err := s.Open(ctx, key); !errors.Is(err, blob.ErrNotFound) {
		if err == nil {
			rc.Close()
		}
		t.Errorf("Open(%q) = %v, want ErrNotFound", key, err)
	}
}

func wantEmpty(t *testing.T, s blob.Reader) {
	t.Helper()
	if keys := Keys(t, s, ""); len(keys) != 0 {
		t.Errorf("List(\"\") = %q, want nothing", keys)
	}
}

// pattern returns n deterministic bytes that differ at every offset
// within a few MiB, so a misplaced range shows.
func pattern(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 1})
	r.Read(b)
	return b
}

func testCreateCommitRead(t *testing.T, s blob.Store) {
	ctx := context.Background()
	data := pattern(1, 100_000)
	u, err := s.Create(ctx, "a/b/obj")
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(data); off += 7777 {
		chunk := data[off:min(off+7777, len(data))]
		n, err := u.Write(chunk)
		if err != nil || n != len(chunk) {
			t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(chunk))
		}
	}
	before := time.Now().Add(-time.Hour)
	if err := u.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := Get(t, s, "a/b/obj"); !bytes.Equal(got, data) {
		t.Errorf("read back %d bytes, differs from the %d written", len(got), len(data))
	}
	in, err := s.Stat(ctx, "a/b/obj")
	if err != nil {
		t.Fatal(err)
	}
	if in.Key != "a/b/obj" || in.Size != int64(len(data)) || in.ModTime.Before(before) {
		t.Errorf("Stat = %+v, want key a/b/obj, size %d, a recent time", in, len(data))
	}
	if diff := cmp.Diff([]string{"a/b/obj"}, Keys(t, s, "")); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
}

func testEmptyObject(t *testing.T, s blob.Store) {
	ctx := context.Background()
	Put(t, s, "empty", nil)
	if got := Get(t, s, "empty"); len(got) != 0 {
		t.Errorf("read %d bytes, want 0", len(got))
	}
	in, err := s.Stat(ctx, "empty")
	if err != nil || in.Size != 0 {
		t.Errorf("Stat = %+v, %v; want size 0", in, err)
	}
	for _, r := range [][2]int64{{0, -1}, {0, 0}, {0, 10}} {
		rc, err := s.OpenRange(ctx, "empty", r[0], r[1])
		if err != nil {
			t.Errorf("OpenRange(%d, %d): %v", r[0], r[1], err)
			continue
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || len(b) != 0 {
			t.Errorf("OpenRange(%d, %d) read %d bytes, %v; want 0", r[0], r[1], len(b), err)
		}
	}
	if err := s.PutIfAbsent(ctx, "empty2", nil); err != nil {
		t.Fatal(err)
	}
	if got := Get(t, s, "empty2"); len(got) != 0 {
		t.Errorf("read %d bytes, want 0", len(got))
	}
}

func testInvisibleBeforeCommit(t *testing.T, s blob.Store) {
	ctx := context.Background()
	u, err := s.Create(ctx, "d/new")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Abort()
	if _, err := u.Write(pattern(2, 5000)); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, s, "d/new")
	wantEmpty(t, s)

	// An existing object stays as it was until the replacement commits.
	Put(t, s, "d/old", []byte("old"))
	u2, err := s.Create(ctx, "d/old")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u2.Write([]byte("new contents")); err != nil {
		t.Fatal(err)
	}
	if got := Get(t, s, "d/old"); string(got) != "old" {
		t.Errorf("before commit: %q, want %q", got, "old")
	}
	if diff := cmp.Diff([]string{"d/old"}, Keys(t, s, "")); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	if err := u2.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := Get(t, s, "d/old"); string(got) != "new contents" {
		t.Errorf("after commit: %q, want %q", got, "new contents")
	}
}

func testAbort(t *testing.T, s blob.Store) {
	ctx := context.Background()
	u, err := s.Create(ctx, "x/y/aborted")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write(pattern(3, 300_000)); err != nil {
		t.Fatal(err)
	}
	if err := u.Abort(); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	if err := u.Abort(); err != nil {
		t.Errorf("second Abort: %v", err)
	}
	if err := u.Commit(ctx); err == nil {
		t.Error("Commit after Abort succeeded")
	}
	wantNotFound(t, s, "x/y/aborted")
	wantEmpty(t, s)

	// Abort of an upload that replaces an object keeps the old one.
	Put(t, s, "kept", []byte("v1"))
	u, err = s.Create(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	u.Write([]byte("v2"))
	if err := u.Abort(); err != nil {
		t.Fatal(err)
	}
	if got := Get(t, s, "kept"); string(got) != "v1" {
		t.Errorf("after Abort: %q, want v1", got)
	}

	// Abort with nothing written.
	u, err = s.Create(ctx, "never")
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Abort(); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, s, "never")
}

func testUploadAfterEnd(t *testing.T, s blob.Store) {
	ctx := context.Background()
	u, err := s.Create(ctx, "done")
	if err != nil {
		t.Fatal(err)
	}
	u.Write([]byte("abc"))
	if err := u.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := u.Abort(); err != nil {
		t.Errorf("Abort after Commit: %v", err)
	}
	if _, err := u.Write([]byte("more")); err == nil {
		t.Error("Write after Commit succeeded")
	}
	if err := u.Commit(ctx); err == nil {
		t.Error("second Commit succeeded")
	}
	if got := Get(t, s, "done"); string(got) != "abc" {
		t.Errorf("got %q, want abc", got)
	}
}

func testOverwrite(t *testing.T, s blob.Store) {
	Put(t, s, "o", pattern(4, 70_000))
	want := []byte("short")
	Put(t, s, "o", want)
	if got := Get(t, s, "o"); !bytes.Equal(got, want) {
		t.Errorf("got %d bytes, want %q", len(got), want)
	}
	if in, err := s.Stat(context.Background(), "o"); err != nil || in.Size != int64(len(want)) {
		t.Errorf("Stat = %+v, %v; want size %d", in, err, len(want))
	}
}

// testConcurrentCreate: uploads racing to one key leave exactly one of them,
// whole.
func testConcurrentCreate(t *testing.T, s blob.Store) {
	const n = 4
	ctx := context.Background()
	datas := make([][]byte, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		datas[i] = pattern(uint64(100+i), 50_000+i)
		wg.Go(func() {
			u, err := s.Create(ctx, "race")
			if err != nil {
				errs[i] = err
				return
			}
			for off := 0; off < len(datas[i]); off += 1000 {
				if _, err := u.Write(datas[i][off:min(off+1000, len(datas[i]))]); err != nil {
					u.Abort()
					errs[i] = err
					return
				}
			}
			errs[i] = u.Commit(ctx)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("upload %d: %v", i, err)
		}
	}
	got := Get(t, s, "race")
	found := false
	for _, d := range datas {
		found = found || bytes.Equal(got, d)
	}
	if !found {
		t.Errorf("object is %d bytes and matches none of the uploads", len(got))
	}
	if diff := cmp.Diff([]string{"race"}, Keys(t, s, "")); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
}

func testPutIfAbsent(t *testing.T, s blob.Store) {
	ctx := context.Background()
	if err := s.PutIfAbsent(ctx, "c/commit.json", []byte("first")); err != nil {
		t.Fatal(err)
	}
	err := s.PutIfAbsent(ctx, "c/commit.json", []byte("second"))
	if !errors.Is(err, blob.ErrExists) {
		t.Errorf("second PutIfAbsent = %v, want ErrExists", err)
	}
	if got := Get(t, s, "c/commit.json"); string(got) != "first" {
		t.Errorf("got %q, want first", got)
	}
	Put(t, s, "c/created", []byte("x"))
	if err := s.PutIfAbsent(ctx, "c/created", []byte("y")); !errors.Is(err, blob.ErrExists) {
		t.Errorf("PutIfAbsent over a created object = %v, want ErrExists", err)
	}
	if err := s.Delete(ctx, "c/commit.json"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutIfAbsent(ctx, "c/commit.json", []byte("third")); err != nil {
		t.Errorf("PutIfAbsent after Delete: %v", err)
	}
	if got := Get(t, s, "c/commit.json"); string(got) != "third" {
		t.Errorf("got %q, want third", got)
	}
	if diff := cmp.Diff([]string{"c/commit.json", "c/created"}, Keys(t, s, "")); diff != "" {
		t.Errorf("List shows leftovers (-want +got):\n%s", diff)
	}
}

func testPutIfAbsentConcurrent(t *testing.T, s blob.Store) {
	const n = 8
	ctx := context.Background()
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = s.PutIfAbsent(ctx, "race/backup.json", fmt.Appendf(nil, "writer %d", i))
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("writers %d and %d both won", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, blob.ErrExists):
			t.Errorf("writer %d: %v, want nil or ErrExists", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer won")
	}
	if got, want := string(Get(t, s, "race/backup.json")), fmt.Sprintf("writer %d", winner); got != want {
		t.Errorf("stored %q, want the winner's %q", got, want)
	}
	if diff := cmp.Diff([]string{"race/backup.json"}, Keys(t, s, "")); diff != "" {
		t.Errorf("List shows leftovers (-want +got):\n%s", diff)
	}
}

func testOpenRange(t *testing.T, s blob.Store) {
	ctx := context.Background()
	data := pattern(5, 1000)
	Put(t, s, "r", data)
	tests := []struct {
		off, n int64
		want   []byte // nil: ErrRange
	}{
		{0, -1, data},
		{0, 0, []byte{}},
		{0, 10, data[:10]},
		{0, 1000, data},
		{1, 1, data[1:2]},
		{500, 100, data[500:600]},
		{990, -1, data[990:]},
		{990, 10, data[990:]},
		{990, 100, data[990:]}, // runs past the end: stops there
		{999, 1, data[999:]},
		{1000, -1, []byte{}},
		{1000, 5, []byte{}},
		{1000, 0, []byte{}},
		{1001, 1, nil},
		{1001, -1, nil},
		{5000, 0, nil},
		{-1, 5, nil},
		{-1, -1, nil},
	}
	for _, tc := range tests {
		rc, err := s.OpenRange(ctx, "r", tc.off, tc.n)
		if tc.want == nil {
			if !errors.Is(err, blob.ErrRange) {
				t.Errorf("OpenRange(%d, %d) = %v, want ErrRange", tc.off, tc.n, err)
			}
			if err == nil {
				rc.Close()
			}
			continue
		}
		if err != nil {
			t.Errorf("OpenRange(%d, %d): %v", tc.off, tc.n, err)
			continue
		}
		got, err := io.ReadAll(rc)
		if cerr := rc.Close(); cerr != nil {
			t.Errorf("OpenRange(%d, %d): Close: %v", tc.off, tc.n, cerr)
		}
		if err != nil {
			t.Errorf("OpenRange(%d, %d): read: %v", tc.off, tc.n, err)
		}
		if !bytes.Equal(got, tc.want) {
			t.Errorf("OpenRange(%d, %d) read %d bytes, want %d (or different bytes)", tc.off, tc.n, len(got), len(tc.want))
		}
	}
	if _, err := s.OpenRange(ctx, "missing", 0, 1); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("OpenRange(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.OpenRange(ctx, "missing", 0, 0); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("OpenRange(missing, 0, 0) = %v, want ErrNotFound", err)
	}
	// A reader closed before its end releases its resources and does not fail.
	rc, err := s.OpenRange(ctx, "r", 10, -1)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if _, err := io.ReadFull(rc, buf); err != nil || !bytes.Equal(buf, data[10:13]) {
		t.Errorf("partial read: %v", err)
	}
	if err := rc.Close(); err != nil {
		t.Errorf("Close before the end: %v", err)
	}
}

// testOpenReaderAt checks blob.OpenReaderAt, which uses the store's own
// handle when it has one: io.ReaderAt semantics at every offset, the
// missing object, and reads after the context is done.
func testOpenReaderAt(t *testing.T, s blob.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	data := pattern(6, 1000)
	Put(t, s, "r", data)
	ra, err := blob.OpenReaderAt(ctx, s, "r")
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	for _, tc := range []struct {
		off, n int
		want   int // bytes read; fewer than n only with io.EOF
	}{{0, 1000, 1000}, {0, 10, 10}, {500, 100, 100}, {990, 100, 10}, {999, 1, 1}} {
		buf := make([]byte, tc.n)
		n, err := ra.ReadAt(buf, int64(tc.off))
		if n != tc.want || !bytes.Equal(buf[:n], data[tc.off:tc.off+n]) {
			t.Errorf("ReadAt(%d bytes at %d) = %d bytes (or different bytes), want %d", tc.n, tc.off, n, tc.want)
		}
		if n < tc.n && !errors.Is(err, io.EOF) || n == tc.n && err != nil && !errors.Is(err, io.EOF) {
			t.Errorf("ReadAt(%d bytes at %d): %v", tc.n, tc.off, err)
		}
	}
	if n, err := ra.ReadAt(make([]byte, 5), 1000); n != 0 || err == nil {
		t.Errorf("ReadAt at the end = %d, %v; want 0 and an error", n, err)
	}
	if m, err := blob.OpenReaderAt(ctx, s, "missing"); err == nil {
		// A store without its own handle finds out at the first read.
		if _, err := m.ReadAt(make([]byte, 1), 0); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("ReadAt of a missing object: %v, want ErrNotFound", err)
		}
		m.Close()
	} else if !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("OpenReaderAt(missing) = %v, want ErrNotFound", err)
	}
	cancel()
	if _, err := ra.ReadAt(make([]byte, 5), 0); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadAt after cancel = %v, want context.Canceled", err)
	}
}

func testStat(t *testing.T, s blob.Store) {
	ctx := context.Background()
	for i, size := range []int{0, 1, 4095, 4096, 4097, 65536, 1 << 20} {
		Put(t, s, fmt.Sprintf("s/%d", i), pattern(uint64(i), size))
		in, err := s.Stat(ctx, fmt.Sprintf("s/%d", i))
		if err != nil || in.Size != int64(size) {
			t.Errorf("Stat(s/%d) = %+v, %v; want size %d", i, in, err, size)
		}
	}
	// Only objects exist; a prefix of keys is not one.
	wantNotFound(t, s, "s")
	wantNotFound(t, s, "nothing/here")
}

func testList(t *testing.T, s blob.Store) {
	// Keys chosen so that a directory walk in name order would get them
	// wrong: '-' and '.' sort before '/', '0' after it.
	keys := []string{
		"a/b/c", "a/b/d", "a/bc", "a/b-c", "a/b.c", "a/a", "b",
		"a/b0/x", "c/d/e/f", "a/b/e/f/g",
	}
	sizes := map[string]int64{}
	for i, k := range keys {
		Put(t, s, k, pattern(uint64(i), i*10))
		sizes[k] = int64(i * 10)
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", []string{"a/a", "a/b-c", "a/b.c", "a/b/c", "a/b/d", "a/b/e/f/g", "a/b0/x", "a/bc", "b", "c/d/e/f"}},
		{"a", []string{"a/a", "a/b-c", "a/b.c", "a/b/c", "a/b/d", "a/b/e/f/g", "a/b0/x", "a/bc"}},
		{"a/", []string{"a/a", "a/b-c", "a/b.c", "a/b/c", "a/b/d", "a/b/e/f/g", "a/b0/x", "a/bc"}},
		{"a/b", []string{"a/b-c", "a/b.c", "a/b/c", "a/b/d", "a/b/e/f/g", "a/b0/x", "a/bc"}},
		{"a/b/", []string{"a/b/c", "a/b/d", "a/b/e/f/g"}},
		{"a/bc", []string{"a/bc"}},
		{"a/b/c", []string{"a/b/c"}},
		{"a/b/e", []string{"a/b/e/f/g"}},
		{"c/d/e/f", []string{"c/d/e/f"}},
		{"c/d/e/f/", []string{}},
		{"b", []string{"b"}},
		{"b/", []string{}},
		{"zzz", []string{}},
		{"zzz/", []string{}},
		{"a/zzz/yyy", []string{}},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, Keys(t, s, tc.prefix)); diff != "" {
			t.Errorf("List(%q) (-want +got):\n%s", tc.prefix, diff)
		}
	}
	err := s.List(context.Background(), "", func(in blob.Info) error {
		if in.Size != sizes[in.Key] || in.ModTime.IsZero() {
			t.Errorf("List gave %+v, want size %d and a time", in, sizes[in.Key])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"../", "/a", "a//", "a/./", "a/../b", "\x00"} {
		if err := s.List(context.Background(), p, func(blob.Info) error { return nil }); !errors.Is(err, blob.ErrBadKey) {
			t.Errorf("List(%q) = %v, want ErrBadKey", p, err)
		}
	}
}

func testListCallbackError(t *testing.T, s blob.Store) {
	for _, k := range []string{"l/1", "l/2", "l/3"} {
		Put(t, s, k, []byte(k))
	}
	stop := errors.New("stop")
	var seen []string
	err := s.List(context.Background(), "l/", func(in blob.Info) error {
		seen = append(seen, in.Key)
		if len(seen) == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Errorf("List = %v, want the callback's error", err)
	}
	if diff := cmp.Diff([]string{"l/1", "l/2"}, seen); diff != "" {
		t.Errorf("List kept calling after an error (-want +got):\n%s", diff)
	}
	// The callback may write to the store.
	err = s.List(context.Background(), "l/", func(in blob.Info) error {
		return s.Delete(context.Background(), in.Key)
	})
	if err != nil {
		t.Fatal(err)
	}
	wantEmpty(t, s)
}

func testKeyCharacters(t *testing.T, s blob.Store) {
	keys := []string{
		"with space/x y", "utf8/üñí-çødé", "sym/a+b=c@d,e;f", "dots/..x/x..", "dots/.hidden",
		"pct/%41%2F", "q/a?b#c&d", "caps/ABC", "tilde/~x", "n/0123456789",
	}
	for i, k := range keys {
		Put(t, s, k, []byte(k))
		if got := Get(t, s, k); string(got) != k {
			t.Errorf("Get(%q) = %q", k, got)
		}
		if err := s.PutIfAbsent(context.Background(), k+"-p", []byte{byte(i)}); err != nil {
			t.Errorf("PutIfAbsent(%q): %v", k+"-p", err)
		}
	}
	got := Keys(t, s, "")
	if len(got) != 2*len(keys) {
		t.Errorf("List gave %d keys, want %d: %q", len(got), 2*len(keys), got)
	}
	for i := 1; i < len(got); i++ {
		if got[i-1] >= got[i] {
			t.Errorf("List out of order: %q before %q", got[i-1], got[i])
		}
	}
	for _, k := range keys {
		if err := s.Delete(context.Background(), k); err != nil {
			t.Errorf("Delete(%q): %v", k, err)
		}
	}
}

// BadKeys are keys every store refuses with ErrBadKey.
var BadKeys = []string{
	"", "/", "/abs", "../x", "a/../x", "..", ".", "a//b", "a/./b", "a/", "./a",
	"a\x00b", "a\\b", "a/..", "//",
}

func testBadKeys(t *testing.T, s blob.Store) {
	ctx := context.Background()
	for _, k := range BadKeys {
		check := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, blob.ErrBadKey) {
				t.Errorf("%s(%q) = %v, want ErrBadKey", op, k, err)
			}
		}
		u, err := s.Create(ctx, k)
		if err == nil {
			u.Abort()
		}
		check("Create", err)
		check("PutIfAbsent", s.PutIfAbsent(ctx, k, []byte("x")))
		rc, err := s.Open(ctx, k)
		if err == nil {
			rc.Close()
		}
		check("Open", err)
		rc, err = s.OpenRange(ctx, k, 0, 1)
		if err == nil {
			rc.Close()
		}
		check("OpenRange", err)
		_, err = s.Stat(ctx, k)
		check("Stat", err)
		check("Delete", s.Delete(ctx, k))
	}
	wantEmpty(t, s)
}

func testDelete(t *testing.T, s blob.Store) {
	ctx := context.Background()
	Put(t, s, "a/b/c", []byte("c"))
	Put(t, s, "a/b/d", []byte("d"))
	if err := s.Delete(ctx, "a/b/c"); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, s, "a/b/c")
	if diff := cmp.Diff([]string{"a/b/d"}, Keys(t, s, "")); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	if err := s.Delete(ctx, "a/b/c"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "never/was"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Delete(never/was) = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "a/b"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Delete(a/b), a prefix of a key = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "a/b/d"); err != nil {
		t.Fatal(err)
	}
	wantEmpty(t, s)
	// The key space is usable again after everything under a prefix went.
	Put(t, s, "a/b/c", []byte("again"))
	if got := Get(t, s, "a/b/c"); string(got) != "again" {
		t.Errorf("got %q", got)
	}
}

func testContextCanceled(t *testing.T, s blob.Store) {
	Put(t, s, "k", []byte("data"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context = %v, want context.Canceled", op, err)
		}
	}
	u, err := s.Create(ctx, "new")
	if err == nil {
		u.Abort()
	}
	check("Create", err)
	check("PutIfAbsent", s.PutIfAbsent(ctx, "new2", []byte("x")))
	rc, err := s.Open(ctx, "k")
	if err == nil {
		rc.Close()
	}
	check("Open", err)
	rc, err = s.OpenRange(ctx, "k", 1, 2)
	if err == nil {
		rc.Close()
	}
	check("OpenRange", err)
	_, err = s.Stat(ctx, "k")
	check("Stat", err)
	check("List", s.List(ctx, "", func(blob.Info) error { return nil }))
	check("Delete", s.Delete(ctx, "k"))
	if diff := cmp.Diff([]string{"k"}, Keys(t, s, "")); diff != "" {
		t.Errorf("canceled calls changed the store (-want +got):\n%s", diff)
	}

	// Commit with a canceled context makes nothing visible.
	u, err = s.Create(context.Background(), "c")
	if err != nil {
		t.Fatal(err)
	}
	u.Write([]byte("abc"))
	check("Commit", u.Commit(ctx))
	if err := u.Abort(); err != nil {
		t.Errorf("Abort after a failed Commit: %v", err)
	}
	wantNotFound(t, s, "c")

	// A canceled List stops.
	for i := range 5 {
		Put(t, s, fmt.Sprintf("m/%d", i), nil)
	}
	lctx, lcancel := context.WithCancel(context.Background())
	defer lcancel()
	calls := 0
	err = s.List(lctx, "m/", func(blob.Info) error {
		calls++
		lcancel()
		return nil
	})
	check("List canceled midway", err)
	if calls != 1 {
		t.Errorf("List called fn %d times after its context was canceled, want 1", calls)
	}
}

func testUploadContextCanceled(t *testing.T, s blob.Store) {
	for _, big := range []bool{false, true} {
		t.Run(fmt.Sprintf("big=%v", big), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			u, err := s.Create(ctx, "up")
			if err != nil {
				t.Fatal(err)
			}
			size := 1000
			if big {
				size = 6 << 20 // past a minimal S3 part
			}
			if _, err := u.Write(pattern(6, size)); err != nil {
				t.Fatal(err)
			}
			cancel()
			// Writes may still be buffered; by Commit the upload must fail.
			u.Write([]byte("more"))
			if err := u.Commit(context.Background()); !errors.Is(err, context.Canceled) {
				t.Errorf("Commit after Create's context was canceled = %v, want context.Canceled", err)
			}
			if err := u.Abort(); err != nil {
				t.Errorf("Abort: %v", err)
			}
			wantNotFound(t, s, "up")
			wantEmpty(t, s)
		})
	}
}

func testLarge(t *testing.T, s blob.Store) {
	if testing.Short() {
		t.Skip("short")
	}
	ctx := context.Background()
	data := pattern(7, LargeSize)
	want := sha256.Sum256(data)
	u, err := s.Create(ctx, "big/base.tar.zst")
	if err != nil {
		t.Fatal(err)
	}
	// Odd sizes around the usual buffer boundaries.
	sizes := []int{1, 7, 4093, 65537, 1<<20 + 3, 0, 333_333, 5<<20 + 1}
	off := 0
	for i := 0; off < len(data); i++ {
		n := min(sizes[i%len(sizes)], len(data)-off)
		w, err := u.Write(data[off : off+n])
		if err != nil || w != n {
			u.Abort()
			t.Fatalf("Write at %d = %d, %v", off, w, err)
		}
		off += n
	}
	if err := u.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Open(ctx, "big/base.tar.zst")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, rc)
	rc.Close()
	if err != nil || n != LargeSize {
		t.Fatalf("read %d bytes, %v; want %d", n, err, LargeSize)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
		t.Error("read back different bytes")
	}
	// Ranges across 5 MiB boundaries, where S3 parts may meet.
	for _, r := range [][2]int64{{5<<20 - 10, 20}, {16<<20 - 1, 2}, {LargeSize - 5, -1}, {3, 10 << 20}} {
		rc, err := s.OpenRange(ctx, "big/base.tar.zst", r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		end := int64(LargeSize)
		if r[1] >= 0 {
			end = r[0] + r[1]
		}
		if err != nil || !bytes.Equal(got, data[r[0]:end]) {
			t.Errorf("OpenRange(%d, %d): %d bytes, %v; want the %d written", r[0], r[1], len(got), err, end-r[0])
		}
	}
	in, err := s.Stat(ctx, "big/base.tar.zst")
	if err != nil || in.Size != LargeSize {
		t.Errorf("Stat = %+v, %v; want size %d", in, err, LargeSize)
	}
}
