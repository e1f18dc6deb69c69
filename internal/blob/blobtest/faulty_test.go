package blobtest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/holdfast-backup/holdfast/internal/blob"
	"github.com/holdfast-backup/holdfast/internal/blob/blobtest"
)

func TestFaultyWriteENOSPC(t *testing.T) {
	ctx := context.Background()
	f := blobtest.NewFaulty(blobtest.NewMem())
	f.FailFrom(blobtest.OpWrite, 3, syscall.ENOSPC)
	u, err := f.Create(ctx, "a/base.tar.zst")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := u.Write([]byte("ok")); err != nil {
			t.Fatalf("write %d: %v", i+1, err)
		}
	}
	if _, err := u.Write([]byte("full")); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("third write = %v, want ENOSPC", err)
	}
	if _, err := u.Write([]byte("again")); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("write after failure = %v, want ENOSPC", err)
	}
	if err := u.Commit(ctx); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Commit = %v, want ENOSPC", err)
	}
	if keys := blobtest.Keys(t, f, ""); len(keys) != 0 {
		t.Errorf("left %q", keys)
	}
	if got := f.Calls(blobtest.OpWrite); got != 3 { // a poisoned upload does not reach the store
		t.Errorf("Calls(OpWrite) = %d, want 3", got)
	}
}

func TestFaultyCommit(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("boom")
	f := blobtest.NewFaulty(blobtest.NewMem())
	f.FailNth(blobtest.OpCommit, 2, boom)
	blobtest.Put(t, f, "one", []byte("1"))
	u, _ := f.Create(ctx, "two")
	u.Write([]byte("2"))
	if err := u.Commit(ctx); !errors.Is(err, boom) {
		t.Fatalf("Commit = %v, want boom", err)
	}
	blobtest.Put(t, f, "three", []byte("3"))
	if diff := cmp.Diff([]string{"one", "three"}, blobtest.Keys(t, f, "")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestFaultyAfter(t *testing.T) {
	ctx := context.Background()
	lost := errors.New("connection reset")
	f := blobtest.NewFaulty(blobtest.NewMem())
	f.Add(blobtest.Fault{Op: blobtest.OpPutIfAbsent, Prefix: "c/", Nth: 1, Err: lost, After: true})
	if err := f.PutIfAbsent(ctx, "other", nil); err != nil {
		t.Fatal(err)
	}
	if err := f.PutIfAbsent(ctx, "c/backup.json", []byte("x")); !errors.Is(err, lost) {
		t.Fatalf("PutIfAbsent = %v, want the injected error", err)
	}
	if got := blobtest.Get(t, f, "c/backup.json"); string(got) != "x" {
		t.Errorf("After fault did not perform the put: %q", got)
	}
	if err := f.PutIfAbsent(ctx, "c/backup.json", []byte("x")); !errors.Is(err, blob.ErrExists) {
		t.Errorf("retry = %v, want ErrExists", err)
	}
}

func TestFaultyRead(t *testing.T) {
	ctx := context.Background()
	f := blobtest.NewFaulty(blobtest.NewMem())
	data := bytes.Repeat([]byte("abcdefgh"), 100)
	blobtest.Put(t, f, "obj", data)

	f.Add(blobtest.Fault{Op: blobtest.OpRead, Nth: 1, Corrupt: true})
	rc, err := f.Open(ctx, "obj")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || len(got) != len(data) || bytes.Equal(got, data) || got[0] != 'a'^0xff {
		t.Errorf("corrupt read: %v, first byte %#x", err, got[0])
	}

	f.Reset()
	f.FailNth(blobtest.OpRead, 2, io.ErrUnexpectedEOF)
	rc, err = f.OpenRange(ctx, "obj", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := rc.Read(buf); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Read(buf); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("second read = %v, want the injected error", err)
	}
	rc.Close()

	f.FailNth(blobtest.OpOpen, 1, blob.ErrNotFound)
	if _, err := f.Open(ctx, "obj"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Open = %v, want the injected error", err)
	}
	if _, err := f.Open(ctx, "obj"); err != nil {
		t.Errorf("second Open: %v", err)
	}
}
