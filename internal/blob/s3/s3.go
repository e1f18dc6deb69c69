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
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

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
	http   *http.Client
	signer signer
	scheme string // http or https
	host   string // host[:port], the default port left out
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
	if err := checkBucket(o.Bucket); err != nil {
		return nil, err
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
	region := o.Region
	if region == "" {
		region = DefaultRegion
	}
	tr := o.Transport
	if tr == nil {
		tr = defaultTransport()
	}
	scheme := "http"
	if secure {
		scheme = "https"
	}
	s := &Store{
		// Redirects are answers, not directions: a request signed for
		// this host is not sent to another.
		http: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
		signer: signer{accessKey: o.AccessKey, secretKey: o.SecretKey, region: region},
		scheme: scheme, host: host,
		bucket: o.Bucket, prefix: prefix, part: part,
		where: fmt.Sprintf("bucket %s at %s", o.Bucket, host),
	}
	resp, err := s.do(ctx, request{method: http.MethodHead})
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("s3: open %s: %w", s.where, ctx.Err())
		}
		if status, _ := errorCode(err); status == http.StatusNotFound {
			return nil, fmt.Errorf("s3: open %s: the bucket does not exist: create it first", s.where)
		}
		return nil, fmt.Errorf("s3: open: %w", err) // err names the bucket and host
	}
	discard(resp)
	return s, nil
}

// DefaultRegion is the region requests are signed for when
// Options.Region is empty.
const DefaultRegion = "us-east-1"

func endpoint(o Options) (host string, secure bool, err error) {
	if o.Endpoint == "" {
		return "", false, errors.New("s3: no endpoint configured")
	}
	host, secure = o.Endpoint, o.UseTLS
	if strings.Contains(o.Endpoint, "://") {
		u, err := url.Parse(o.Endpoint)
		if err != nil {
			return "", false, fmt.Errorf("s3: endpoint %q: %w", o.Endpoint, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return "", false, fmt.Errorf("s3: endpoint %q: want host[:port] or http(s)://host[:port]", o.Endpoint)
		}
		host, secure = u.Host, u.Scheme == "https"
	}
	if strings.ContainsAny(host, "/?#@ \t\r\n") || strings.ContainsFunc(host, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return "", false, fmt.Errorf("s3: endpoint %q: want host[:port] or http(s)://host[:port]", o.Endpoint)
	}
	// The default port goes unsaid, as clients usually send Host: what
	// is signed must be what the server sees.
	if h, p, err := net.SplitHostPort(host); err == nil && ((p == "80" && !secure) || (p == "443" && secure)) {
		host = h
		if strings.Contains(h, ":") {
			host = "[" + h + "]"
		}
	}
	return host, secure, nil
}

// checkBucket refuses bucket names that cannot be one segment of a path.
// The configuration checks S3's naming rules; servers differ on them.
func checkBucket(b string) error {
	switch {
	case b == "":
		return errors.New("s3: no bucket configured")
	case len(b) > 255 || b == "." || b == ".." || strings.ContainsFunc(b, func(r rune) bool { return r <= ' ' || r == '/' || r == '\\' || r == 0x7f }):
		return fmt.Errorf("s3: bucket %q: not a bucket name", b)
	}
	return nil
}

// PartSize returns the multipart part size in use.
func (s *Store) PartSize() int64 { return s.part }

func (s *Store) object(key string) string { return s.prefix + key }

func isNotFound(err error) bool {
	status, code := errorCode(err)
	return code == "NoSuchKey" || (status == http.StatusNotFound && code != "NoSuchBucket" && code != "NoSuchUpload")
}

// wrap turns a request's error into the store's: ErrNotFound for a missing
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
	size, mtime, _, err := s.head(ctx, s.object(key))
	if err != nil {
		return blob.Info{}, wrap(ctx, "stat", key, err)
	}
	return blob.Info{Key: key, Size: size, ModTime: mtime}, nil
}

// head is HeadObject: the object's size, modification time and ETag
// (without its quotes).
func (s *Store) head(ctx context.Context, obj string) (size int64, mtime time.Time, etag string, err error) {
	resp, err := s.do(ctx, request{method: http.MethodHead, object: obj})
	if err != nil {
		return 0, time.Time{}, "", err
	}
	resp.Body.Close()
	size, err = strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	if err != nil || size < 0 {
		return 0, time.Time{}, "", fmt.Errorf("%s answered HEAD with Content-Length %q", s.where, oneLine(resp.Header.Get("Content-Length"), 32))
	}
	if lm := resp.Header.Get("Last-Modified"); lm != "" {
		if mtime, err = http.ParseTime(lm); err != nil {
			return 0, time.Time{}, "", fmt.Errorf("%s answered HEAD with Last-Modified %q", s.where, oneLine(lm, 64))
		}
	}
	return size, mtime, strings.Trim(resp.Header.Get("ETag"), `"`), nil
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
		return s.emptyAt(ctx, key, off)
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
		return s.emptyAt(ctx, key, off)
	}
	return r, nil
}

// emptyAt is an empty read at off of the object key, which must exist
// and be at least off bytes long.
func (s *Store) emptyAt(ctx context.Context, key string, off int64) (io.ReadCloser, error) {
	in, err := s.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	if off > in.Size {
		return nil, fmt.Errorf("s3: open %s: offset %d of %d bytes: %w", key, off, in.Size, blob.ErrRange)
	}
	return io.NopCloser(strings.NewReader("")), nil
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
	h := http.Header{"Accept-Encoding": {"identity"}}
	if r.etag != "" {
		h.Set("If-Match", r.etag)
	}
	switch {
	case r.end > 0:
		h.Set("Range", fmt.Sprintf("bytes=%d-%d", r.pos, r.end-1))
	case r.pos > 0:
		h.Set("Range", fmt.Sprintf("bytes=%d-", r.pos))
	}
	ranged := h.Get("Range") != ""
	resp, err := r.s.do(r.ctx, request{method: http.MethodGet, object: r.s.object(r.key), header: h})
	if err != nil {
		return err
	}
	size := resp.ContentLength
	if ranged {
		// A server that ignored the Range header would send the object
		// from its start: bytes from the wrong place, silently.
		cr := resp.Header.Get("Content-Range")
		start, last, _, ok := parseContentRange(cr)
		if !ok || start != r.pos || resp.StatusCode != http.StatusPartialContent || (size >= 0 && size != last-start+1) ||
			(r.end > 0 && last >= r.end) {
			discard(resp)
			return fmt.Errorf("%s answered a ranged GET from byte %d with %d and Content-Range %q", r.s.where, r.pos, resp.StatusCode, oneLine(cr, 64))
		}
		size = last - start + 1
	}
	if size < 0 {
		discard(resp)
		return fmt.Errorf("%s answered GET without a Content-Length", r.s.where)
	}
	r.body = resp.Body
	// If-Match takes the ETag as the server wrote it, quotes and all.
	r.etag = resp.Header.Get("ETag")
	// The response's length is what is left of the range, clipped to the
	// object: from now on the end is known.
	r.end = r.pos + size
	return nil
}

// parseContentRange reads "bytes FIRST-LAST/TOTAL" (TOTAL may be "*"),
// total -1 when unknown; ok is false for anything else or for a range
// that is not one.
func parseContentRange(s string) (first, last, total int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	span, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	a, b, found := strings.Cut(span, "-")
	if !found {
		return 0, 0, 0, false
	}
	num := func(s string) (int64, bool) {
		if s == "" || len(s) > 19 || strings.Trim(s, "0123456789") != "" {
			return 0, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil
	}
	var ok1, ok2, ok3 bool
	first, ok1 = num(a)
	last, ok2 = num(b)
	total, ok3 = -1, true
	if tot != "*" {
		total, ok3 = num(tot)
	}
	if !ok1 || !ok2 || !ok3 || last < first || (total >= 0 && last >= total) {
		return 0, 0, 0, false
	}
	return first, last, total, true
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
	last, token := "", ""
	for {
		q := url.Values{"list-type": {"2"}, "prefix": {s.object(prefix)}, "encoding-type": {"url"}}
		if token != "" {
			q.Set("continuation-token", token)
		}
		resp, err := s.do(ctx, request{method: http.MethodGet, query: q, read: maxListBody})
		if err != nil {
			return wrap(ctx, "list", prefix, err)
		}
		page, err := parseList(body(resp))
		if err != nil {
			return fmt.Errorf("s3: list %s: %s: %w", prefix, s.where, err)
		}
		for _, o := range page.Objects {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("s3: list %s: %w", prefix, err)
			}
			key, ok := strings.CutPrefix(o.Key, s.prefix)
			if !ok || blob.CheckKey(key) != nil {
				continue // not one of ours: a directory marker, a foreign name
			}
			if key <= last && last != "" {
				return fmt.Errorf("s3: list %s: %s: the server listed %q after %q, out of order", prefix, s.where, key, last)
			}
			last = key
			if err := fn(blob.Info{Key: key, Size: o.Size, ModTime: o.ModTime}); err != nil {
				return err
			}
		}
		if !page.Truncated {
			break
		}
		if page.Next == token {
			return fmt.Errorf("s3: list %s: %s: the server gave the same continuation token twice", prefix, s.where)
		}
		token = page.Next
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
	if err := s.remove(ctx, s.object(key)); err != nil {
		return wrap(ctx, "delete", key, err)
	}
	return nil
}

// remove is DeleteObject.
func (s *Store) remove(ctx context.Context, obj string) error {
	resp, err := s.do(ctx, request{method: http.MethodDelete, object: obj})
	if err != nil {
		return err
	}
	discard(resp)
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
// It is never repeated as other requests are (see do): if a first attempt took effect
// but its reply was lost, a blind retry would get 412 and report
// ErrExists for an object this call created. PutIfAbsent retries itself,
// and once an attempt has ended without a reply, a 412 is settled by
// reading the object back: the same bytes mean this call wrote them.
func (s *Store) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	if err := check(ctx, "put", key); err != nil {
		return err
	}
	if data == nil {
		data = []byte{} // a body of no bytes, with its Content-MD5
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
		var resp *http.Response
		resp, err = s.do(ctx, request{method: http.MethodPut, object: s.object(key),
			header: http.Header{"If-None-Match": {"*"}}, body: data, once: true})
		if err == nil {
			discard(resp)
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
	defer s.remove(context.WithoutCancel(ctx), s.object(key))
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
	n := 0
	keyMarker, idMarker := "", ""
	for {
		q := url.Values{"uploads": {""}, "prefix": {s.object(prefix)}, "encoding-type": {"url"}}
		if keyMarker != "" || idMarker != "" {
			q.Set("key-marker", keyMarker)
			q.Set("upload-id-marker", idMarker)
		}
		resp, err := s.do(ctx, request{method: http.MethodGet, query: q, read: maxListBody})
		if err != nil {
			return n, wrap(ctx, "clean", prefix, err)
		}
		page, err := parseUploads(body(resp))
		if err != nil {
			return n, fmt.Errorf("s3: clean %s: %s: %w", prefix, s.where, err)
		}
		for _, up := range page.Uploads {
			if !up.Initiated.Before(cutoff) || !strings.HasPrefix(up.Key, s.prefix) {
				continue
			}
			if err := s.abortUpload(ctx, up.Key, up.UploadID); err != nil {
				if status, _ := errorCode(err); status != http.StatusNotFound {
					return n, wrap(ctx, "clean", strings.TrimPrefix(up.Key, s.prefix), err)
				}
			}
			n++
		}
		if !page.Truncated {
			return n, nil
		}
		if page.NextKey == keyMarker && page.NextID == idMarker {
			return n, fmt.Errorf("s3: clean %s: %s: the server gave the same markers twice", prefix, s.where)
		}
		keyMarker, idMarker = page.NextKey, page.NextID
	}
}

// abortUpload is AbortMultipartUpload.
func (s *Store) abortUpload(ctx context.Context, obj, id string) error {
	resp, err := s.do(ctx, request{method: http.MethodDelete, object: obj, query: url.Values{"uploadId": {id}}})
	if err != nil {
		return err
	}
	discard(resp)
	return nil
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
