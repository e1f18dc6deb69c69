package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/holdfast-backup/holdfast/internal/blob"
)

// Part sizes. S3 allows at most MaxParts parts per object, so PartSize
// also caps the size of one object: MaxParts × PartSize.
const (
	MinPartSize     = 5 << 20
	MaxPartSize     = 5 << 30
	DefaultPartSize = 32 << 20 // objects up to 312.5 GiB; 64 MiB of buffers per upload
	MaxParts        = 10000
)

// Secret is a credential. It prints, logs and marshals as "[redacted]";
// Reveal returns the value for the one place that needs it.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret itself.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer.
func (Secret) String() string { return redacted }

// GoString implements fmt.GoStringer.
func (Secret) GoString() string { return `"` + redacted + `"` }

// Format implements fmt.Formatter, so no verb prints the value.
func (Secret) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText implements encoding.TextMarshaler, for JSON and other
// encoders: a configuration printed back never shows the secret.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Options configure a Store.
type Options struct {
	// Endpoint is host[:port], or a URL whose scheme (http or https)
	// decides TLS instead of UseTLS.
	Endpoint string
	Bucket   string
	// Prefix, if set, puts every key under Prefix + "/" so one bucket can
	// hold several repositories.
	Prefix    string
	AccessKey string
	SecretKey Secret
	Region    string
	UseTLS    bool
	// PartSize is the multipart part size, MinPartSize..MaxPartSize;
	// 0 means DefaultPartSize. Each upload holds at most two parts in
	// memory, and an object can be at most MaxParts parts.
	PartSize int64
	// Transport, if set, carries the requests (a custom CA pool, tests).
	Transport http.RoundTripper
}

// Store is a blob.Store in an S3 bucket.
type Store struct {
	client *minio.Client // retries what minio deems safe: see doc.go
	once   *minio.Client // no retries: conditional writes
	core   minio.Core
	bucket string
	prefix string // "" or ends in "/"
	part   int64
	where  string // endpoint and bucket, for messages
}

var _ blob.Store = (*Store)(nil)

// Open connects to the bucket and checks that it exists. It creates
// nothing.
func Open(ctx context.Context, o Options) (*Store, error) {
	host, secure, err := endpoint(o)
	if err != nil {
		return nil, err
	}
	if o.Bucket == "" {
		return nil, errors.New("s3: no bucket configured")
	}
	prefix := strings.Trim(o.Prefix, "/")
	if prefix != "" {
		if err := blob.CheckKey(prefix); err != nil {
			return nil, fmt.Errorf("s3: prefix %q: %w", o.Prefix, err)
		}
		prefix += "/"
	}
	part := o.PartSize
	if part == 0 {
		part = DefaultPartSize
	}
	if part < MinPartSize || part > MaxPartSize {
		return nil, fmt.Errorf("s3: part size %d: must be between %d (5 MiB) and %d (5 GiB)", part, MinPartSize, MaxPartSize)
	}
	tr := o.Transport
	if tr == nil {
		tr, err = minio.DefaultTransport(secure)
		if err != nil {
			return nil, fmt.Errorf("s3: %w", err)
		}
	}
	mo := func(retries int) *minio.Options {
		return &minio.Options{
			Creds:      credentials.NewStaticV4(o.AccessKey, o.SecretKey.Reveal(), ""),
			Secure:     secure,
			Region:     o.Region,
			Transport:  tr,
			MaxRetries: retries,
		}
	}
	s := &Store{bucket: o.Bucket, prefix: prefix, part: part, where: fmt.Sprintf("bucket %s at %s", o.Bucket, host)}
	if s.client, err = minio.New(host, mo(0)); err != nil {
		return nil, fmt.Errorf("s3: %s: %w", s.where, err)
	}
	if s.once, err = minio.New(host, mo(1)); err != nil {
		return nil, fmt.Errorf("s3: %s: %w", s.where, err)
	}
	s.core = minio.Core{Client: s.client}
	ok, err := s.client.BucketExists(ctx, o.Bucket)
	if err != nil {
		return nil, fmt.Errorf("s3: open %s: %w", s.where, err)
	}
	if !ok {
		return nil, fmt.Errorf("s3: open %s: the bucket does not exist: create it first", s.where)
	}
	return s, nil
}

func endpoint(o Options) (host string, secure bool, err error) {
	if o.Endpoint == "" {
		return "", false, errors.New("s3: no endpoint configured")
	}
	if !strings.Contains(o.Endpoint, "://") {
		return o.Endpoint, o.UseTLS, nil
	}
	u, err := url.Parse(o.Endpoint)
	if err != nil {
		return "", false, fmt.Errorf("s3: endpoint %q: %w", o.Endpoint, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.User != nil {
		return "", false, fmt.Errorf("s3: endpoint %q: want host[:port] or http(s)://host[:port]", o.Endpoint)
	}
	return u.Host, u.Scheme == "https", nil
}

// PartSize returns the multipart part size in use.
func (s *Store) PartSize() int64 { return s.part }

func (s *Store) object(key string) string { return s.prefix + key }

// errorCode classifies an error from minio: the HTTP status and S3 code,
// zeros when no response was received.
func errorCode(err error) (int, string) {
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		return er.StatusCode, er.Code
	}
	return 0, ""
}

func isNotFound(err error) bool {
	status, code := errorCode(err)
	return code == "NoSuchKey" || (status == http.StatusNotFound && code != "NoSuchBucket" && code != "NoSuchUpload")
}

// wrap turns a minio error into the store's: ErrNotFound for a missing
// object, the context's error when it ended.
func wrap(ctx context.Context, op, key string, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("s3: %s %s: %w", op, key, ctx.Err())
	case isNotFound(err):
		return fmt.Errorf("s3: %s %s: %w", op, key, blob.ErrNotFound)
	}
	return fmt.Errorf("s3: %s %s: %w", op, key, err)
}

func check(ctx context.Context, op, key string) error {
	if err := blob.CheckKey(key); err != nil {
		return fmt.Errorf("s3: %s %q: %w", op, key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3: %s %s: %w", op, key, err)
	}
	return nil
}

// Stat implements blob.Reader.
func (s *Store) Stat(ctx context.Context, key string) (blob.Info, error) {
	if err := check(ctx, "stat", key); err != nil {
		return blob.Info{}, err
	}
	oi, err := s.client.StatObject(ctx, s.bucket, s.object(key), minio.StatObjectOptions{})
	if err != nil {
		return blob.Info{}, wrap(ctx, "stat", key, err)
	}
	return blob.Info{Key: key, Size: oi.Size, ModTime: oi.LastModified}, nil
}

// Open implements blob.Reader.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	return s.OpenRange(ctx, key, 0, -1)
}

// OpenRange implements blob.Reader with one ranged GET. The request is
// made before OpenRange returns, so a missing object fails here rather
// than at the first Read. A read that breaks mid-stream is resumed from
// where it stopped, pinned to the object's ETag.
func (s *Store) OpenRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if err := check(ctx, "open", key); err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("s3: open %s: offset %d: %w", key, off, blob.ErrRange)
	}
	if n == 0 {
		// Nothing to GET, but the object must exist and hold off.
		in, err := s.Stat(ctx, key)
		if err != nil {
			return nil, err
		}
		if off > in.Size {
			return nil, fmt.Errorf("s3: open %s: offset %d of %d bytes: %w", key, off, in.Size, blob.ErrRange)
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	end := int64(-1)
	if n > 0 {
		end = off + n
	}
	r := &reader{s: s, ctx: ctx, key: key, pos: off, end: end}
	if err := r.open(); err != nil {
		status, _ := errorCode(err)
		if status != http.StatusRequestedRangeNotSatisfiable || ctx.Err() != nil {
			return nil, wrap(ctx, "open", key, err)
		}
		// The range starts at or past the end. At the end is an empty
		// read, past it an error: only the size tells which.
		in, serr := s.Stat(ctx, key)
		if serr != nil {
			return nil, serr
		}
		if off > in.Size {
			return nil, fmt.Errorf("s3: open %s: offset %d of %d bytes: %w", key, off, in.Size, blob.ErrRange)
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	return r, nil
}

// readResumes bounds how often one reader re-requests its range after
// the connection broke.
const readResumes = 3

// reader reads [pos, end) of an object, end < 0 meaning to its end. It
// keeps OpenRange's ctx: reads belong to that call's lifetime.
type reader struct {
	s        *Store
	ctx      context.Context
	key      string
	etag     string
	pos, end int64
	body     io.ReadCloser
	resumes  int
	closed   bool
}

func (r *reader) open() error {
	var opts minio.GetObjectOptions
	if r.etag != "" {
		if err := opts.SetMatchETag(r.etag); err != nil {
			return err
		}
	}
	switch {
	case r.end > 0:
		if err := opts.SetRange(r.pos, r.end-1); err != nil {
			return err
		}
	case r.pos > 0:
		if err := opts.SetRange(r.pos, 0); err != nil {
			return err
		}
	}
	ranged := opts.Header().Get("Range") != ""
	body, oi, h, err := r.s.core.GetObject(r.ctx, r.s.bucket, r.s.object(r.key), opts)
	if err != nil {
		return err
	}
	if ranged {
		// A server that ignored the Range header would send the object
		// from its start: bytes from the wrong place, silently.
		var start, last, total int64
		if _, err := fmt.Sscanf(h.Get("Content-Range"), "bytes %d-%d/%d", &start, &last, &total); err != nil || start != r.pos {
			body.Close()
			return fmt.Errorf("%s answered a ranged GET from byte %d with Content-Range %q", r.s.where, r.pos, h.Get("Content-Range"))
		}
	}
	r.body = body
	r.etag = oi.ETag
	// The response's length is what is left of the range, clipped to the
	// object: from now on the end is known.
	r.end = r.pos + oi.Size
	return nil
}

func (r *reader) Read(p []byte) (int, error) {
	for {
		if r.closed {
			return 0, fmt.Errorf("s3: read %s: %w", r.key, os.ErrClosed)
		}
		if r.pos >= r.end {
			return 0, io.EOF
		}
		if r.body == nil {
			if err := r.open(); err != nil {
				if status, _ := errorCode(err); status == http.StatusPreconditionFailed {
					return 0, fmt.Errorf("s3: read %s: the object changed while it was read", r.key)
				}
				return 0, wrap(r.ctx, "read", r.key, err)
			}
		}
		n, err := r.body.Read(p)
		r.pos += int64(n)
		if err == nil || (err == io.EOF && r.pos >= r.end) {
			if err == io.EOF && n > 0 {
				err = nil
			}
			return n, err
		}
		// The stream broke, or ended early: a GET is safe to repeat, so
		// ask for the rest, unless the caller's context is over.
		r.body.Close()
		r.body = nil
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if r.ctx.Err() != nil || r.resumes == readResumes {
			return n, wrap(r.ctx, "read", r.key, err)
		}
		r.resumes++
		if n > 0 {
			return n, nil
		}
	}
}

func (r *reader) Close() error {
	r.closed = true
	if r.body == nil {
		return nil
	}
	err := r.body.Close()
	r.body = nil
	return err
}

// List implements blob.Reader with ListObjectsV2, which returns keys in
// byte order. The order is checked, not trusted: a server that lists out
// of order makes List fail rather than mislead the catalog.
func (s *Store) List(ctx context.Context, prefix string, fn func(blob.Info) error) error {
	if err := blob.CheckPrefix(prefix); err != nil {
		return fmt.Errorf("s3: list %q: %w", prefix, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3: list %s: %w", prefix, err)
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	last := ""
	for oi := range s.client.ListObjectsIter(lctx, s.bucket, minio.ListObjectsOptions{Prefix: s.object(prefix), Recursive: true}) {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("s3: list %s: %w", prefix, err)
		}
		if oi.Err != nil {
			return wrap(ctx, "list", prefix, oi.Err)
		}
		key, ok := strings.CutPrefix(oi.Key, s.prefix)
		if !ok || blob.CheckKey(key) != nil {
			continue // not one of ours: a directory marker, a foreign name
		}
		if key <= last && last != "" {
			return fmt.Errorf("s3: list %s: %s: the server listed %q after %q, out of order", prefix, s.where, key, last)
		}
		last = key
		if err := fn(blob.Info{Key: key, Size: oi.Size, ModTime: oi.LastModified}); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3: list %s: %w", prefix, err)
	}
	return nil
}

// Delete implements blob.Writer. S3 deletes missing objects without
// complaint, so Delete asks first: ErrNotFound is best effort under
// concurrent deletes.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := check(ctx, "delete", key); err != nil {
		return err
	}
	if _, err := s.Stat(ctx, key); err != nil {
		if errors.Is(err, blob.ErrNotFound) {
			return fmt.Errorf("s3: delete %s: %w", key, blob.ErrNotFound)
		}
		return err
	}
	if err := s.client.RemoveObject(ctx, s.bucket, s.object(key), minio.RemoveObjectOptions{}); err != nil {
		return wrap(ctx, "delete", key, err)
	}
	return nil
}

// putAttempts bounds PutIfAbsent's tries; putBackoff is the first pause.
const (
	putAttempts = 4
	putBackoff  = 200 * time.Millisecond
)

// PutIfAbsent implements blob.Writer with one PUT carrying
// "If-None-Match: *"; 412 Precondition Failed means the key exists.
//
// minio's automatic retries are off for it: if a first attempt took effect
// but its reply was lost, a blind retry would get 412 and report
// ErrExists for an object this call created. PutIfAbsent retries itself,
// and once an attempt has ended without a reply, a 412 is settled by
// reading the object back: the same bytes mean this call wrote them.
func (s *Store) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	if err := check(ctx, "put", key); err != nil {
		return err
	}
	ambiguous := false
	var err error
	for attempt := range putAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return wrap(ctx, "put", key, err)
			case <-time.After(putBackoff << (attempt - 1)):
			}
		}
		opts := minio.PutObjectOptions{DisableMultipart: true, SendContentMd5: true}
		opts.SetMatchETagExcept("*")
		_, err = s.once.PutObject(ctx, s.bucket, s.object(key), bytes.NewReader(data), int64(len(data)), opts)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return wrap(ctx, "put", key, err)
		}
		status, code := errorCode(err)
		switch {
		case status == http.StatusPreconditionFailed:
			if !ambiguous {
				return fmt.Errorf("s3: put %s: %w", key, blob.ErrExists)
			}
			return s.settle(ctx, key, data)
		case status == http.StatusNotImplemented:
			return fmt.Errorf("s3: put %s: %s does not support conditional writes (If-None-Match): %w", key, s.where, err)
		case status == http.StatusConflict && code == "ConditionalRequestConflict":
			// A concurrent conditional write to the key is in progress;
			// its outcome decides ours, so ask again.
		case status == 0 || status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests:
			ambiguous = true
		default:
			return wrap(ctx, "put", key, err)
		}
	}
	return wrap(ctx, "put", key, err)
}

// settle decides a 412 after an attempt whose reply was lost.
func (s *Store) settle(ctx context.Context, key string, data []byte) error {
	rc, err := s.OpenRange(ctx, key, 0, int64(len(data))+1)
	if err != nil {
		return err
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	if bytes.Equal(got, data) {
		return nil
	}
	return fmt.Errorf("s3: put %s: %w", key, blob.ErrExists)
}

// CheckConditionalWrite proves that the server honours "If-None-Match: *"
// on PUT, which PutIfAbsent (the repository's commit) depends on: it puts
// a probe object under the prefix twice and expects the second to fail,
// then deletes it. Some S3-compatible servers ignore the header and
// overwrite; the check command should call this.
func (s *Store) CheckConditionalWrite(ctx context.Context) error {
	var b [8]byte
	rand.Read(b[:])
	key := ".holdfast-probe-" + hex.EncodeToString(b[:])
	if err := s.PutIfAbsent(ctx, key, []byte("1")); err != nil {
		return fmt.Errorf("s3: check conditional writes on %s: %w", s.where, err)
	}
	defer s.client.RemoveObject(context.WithoutCancel(ctx), s.bucket, s.object(key), minio.RemoveObjectOptions{})
	switch err := s.PutIfAbsent(ctx, key, []byte("2")); {
	case errors.Is(err, blob.ErrExists):
		return nil
	case err == nil:
		return fmt.Errorf("s3: check conditional writes on %s: the server ignores If-None-Match and overwrote an object: it cannot hold a repository safely", s.where)
	default:
		return fmt.Errorf("s3: check conditional writes on %s: %w", s.where, err)
	}
}

// CleanTemp aborts the multipart uploads under prefix that were started
// more than olderThan ago: the parts of writers that crashed before
// Commit or Abort, which S3 keeps (and bills) until they are aborted.
// olderThan must exceed the longest upload that can still be running. It
// returns how many it aborted.
func (s *Store) CleanTemp(ctx context.Context, prefix string, olderThan time.Duration) (int, error) {
	if err := blob.CheckPrefix(prefix); err != nil {
		return 0, fmt.Errorf("s3: clean %q: %w", prefix, err)
	}
	cutoff := time.Now().Add(-olderThan)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := s.client.ListIncompleteUploads(lctx, s.bucket, s.object(prefix), true)
	defer func() {
		cancel()
		for range ch {
		}
	}()
	n := 0
	for up := range ch {
		if up.Err != nil {
			return n, wrap(ctx, "clean", prefix, up.Err)
		}
		if !up.Initiated.Before(cutoff) || !strings.HasPrefix(up.Key, s.prefix) {
			continue
		}
		if err := s.core.AbortMultipartUpload(ctx, s.bucket, up.Key, up.UploadID); err != nil {
			if status, _ := errorCode(err); status != http.StatusNotFound {
				return n, wrap(ctx, "clean", strings.TrimPrefix(up.Key, s.prefix), err)
			}
		}
		n++
	}
	return n, nil
}

// etagOfParts is the ETag S3 gives an object assembled from parts with
// these MD5s: the MD5 of their concatenation, then "-" and the count.
func etagOfParts(sums [][md5.Size]byte) string {
	h := md5.New()
	for _, s := range sums {
		h.Write(s[:])
	}
	return fmt.Sprintf("%x-%d", h.Sum(nil), len(sums))
}
