// Package blob is Holdfast's storage contract: named objects in a flat key
// space, written once and read by range. A local directory and S3-compatible
// object storage both implement it, and every implementation passes the
// conformance suite in blobtest.
//
// Keys are slash-separated, relative, and made only of names the repository
// has validated; stores still refuse keys that could escape their root.
package blob

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"
)

// Sentinel errors; stores wrap them so callers can use errors.Is.
var (
	ErrNotFound = errors.New("blob: object not found")
	ErrExists   = errors.New("blob: object already exists")
	ErrBadKey   = errors.New("blob: invalid key")
	// ErrRange is returned by OpenRange for an offset that is negative or
	// past the end of the object.
	ErrRange = errors.New("blob: range outside object")
)

// Info describes one stored object.
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// Reader is the read side: what verify and restore get, so they cannot
// delete or overwrite anything.
type Reader interface {
	// Open returns a reader over the whole object.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// OpenRange returns a reader over n bytes starting at off (n < 0: to the end).
	// A range that runs past the end stops at the end (the reader yields
	// fewer than n bytes); off == size gives an empty reader; off < 0 or
	// off > size fails with ErrRange.
	OpenRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error)
	Stat(ctx context.Context, key string) (Info, error)
	// List calls fn for every object whose key starts with prefix, in
	// lexical key order.
	List(ctx context.Context, prefix string, fn func(Info) error) error
}

// Upload is an object being written. Nothing is visible under its key until
// Commit returns nil; Abort (or a failed Commit) leaves nothing behind.
type Upload interface {
	io.Writer
	// Commit makes the object durable and visible under its key.
	Commit(ctx context.Context) error
	// Abort discards what was written. Safe to call after Commit (no-op).
	Abort() error
}

// Writer is the write side.
type Writer interface {
	// Create starts a new object; an existing object at key is replaced on
	// Commit. ctx bounds the whole upload, not just this call: once it is
	// done, Write and Commit fail and nothing becomes visible.
	Create(ctx context.Context, key string) (Upload, error)
	// PutIfAbsent writes small data atomically and durably, failing with
	// ErrExists if the key exists. It is the repository's commit primitive.
	PutIfAbsent(ctx context.Context, key string, data []byte) error
	Delete(ctx context.Context, key string) error
}

// Store is a full store.
type Store interface {
	Reader
	Writer
}

// CheckKey validates a key's shape: relative, slash-separated, no empty,
// "." or ".." segments, no NUL or backslash.
func CheckKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.ContainsAny(key, "\x00\\") {
		return ErrBadKey
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return ErrBadKey
		}
	}
	return nil
}

// CheckPrefix validates a List prefix: empty, a key, or a key followed by
// "/". The last segment may be partial ("a/b" lists "a/bc" too), so it only
// has to have a key's shape.
func CheckPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return CheckKey(strings.TrimSuffix(prefix, "/"))
}

// ReadAtCloser is random access to one object until Close.
type ReadAtCloser interface {
	io.ReaderAt
	io.Closer
}

// ReaderAtOpener is implemented by stores that serve ranged reads of an
// object from one open handle (a local file: one pread per call).
type ReaderAtOpener interface {
	OpenReaderAt(ctx context.Context, key string) (ReadAtCloser, error)
}

// OpenReaderAt returns random access to the object key: the store's own
// handle when it has one (ReaderAtOpener), else ReaderAt.
func OpenReaderAt(ctx context.Context, r Reader, key string) (ReadAtCloser, error) {
	if o, ok := r.(ReaderAtOpener); ok {
		return o.OpenReaderAt(ctx, key)
	}
	return nopCloser{ReaderAt(ctx, r, key)}, nil
}

type nopCloser struct{ io.ReaderAt }

func (nopCloser) Close() error { return nil }

// ReaderAt reads ranges of the object key through r.OpenRange, one request
// per call: what random access to an archive needs (restore, verify).
func ReaderAt(ctx context.Context, r Reader, key string) io.ReaderAt {
	return &readerAt{ctx: ctx, r: r, key: key}
}

type readerAt struct {
	ctx context.Context
	r   Reader
	key string
}

func (b *readerAt) ReadAt(p []byte, off int64) (int, error) {
	rc, err := b.r.OpenRange(b.ctx, b.key, off, int64(len(p)))
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := io.ReadFull(rc, p)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}
