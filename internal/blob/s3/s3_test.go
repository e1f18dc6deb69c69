package s3_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/minio/minio-go/v7"

	"github.com/holdfast-backup/holdfast/internal/blob"
	"github.com/holdfast-backup/holdfast/internal/blob/blobtest"
	"github.com/holdfast-backup/holdfast/internal/blob/s3"
	"github.com/holdfast-backup/holdfast/internal/s3test"
)

var bucketSeq atomic.Int64

// newBucket creates a fresh bucket on srv.
func newBucket(t testing.TB, srv *s3test.Server) string {
	t.Helper()
	name := fmt.Sprintf("holdfast-%d", bucketSeq.Add(1))
	srv.CreateBucket(t, name, minio.MakeBucketOptions{})
	return name
}

func options(srv *s3test.Server, bucket string) s3.Options {
	return s3.Options{
		Endpoint:  srv.Endpoint,
		Bucket:    bucket,
		AccessKey: srv.AccessKey,
		SecretKey: s3.Secret(srv.SecretKey),
		Region:    s3test.Region,
		PartSize:  s3.MinPartSize, // so blobtest's large object takes several parts
	}
}

func open(t testing.TB, o s3.Options) *s3.Store {
	t.Helper()
	s, err := s3.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	srv := s3test.Start(t)
	blobtest.Run(t, func(t *testing.T) blob.Store {
		return open(t, options(srv, newBucket(t, srv)))
	})
}

// TestConformancePrefix runs the suite on a store under a prefix, in a
// bucket that holds other objects around it.
func TestConformancePrefix(t *testing.T) {
	srv := s3test.Start(t)
	blobtest.Run(t, func(t *testing.T) blob.Store {
		bucket := newBucket(t, srv)
		c := srv.Client(t)
		// Not "repo" itself: versitygw's posix backend cannot hold both
		// "repo" and "repo/x".
		for _, name := range []string{"rep", "repo0", "repo-a/x", "aaa", "zzz/repo/x"} {
			if _, err := c.PutObject(context.Background(), bucket, name, strings.NewReader("foreign"), 7, minio.PutObjectOptions{}); err != nil {
				t.Fatalf("put foreign object %q: %v", name, err)
			}
		}
		o := options(srv, bucket)
		o.Prefix = "/repo/"
		return open(t, o)
	})
}

func TestOpen(t *testing.T) {
	srv := s3test.Start(t)
	bucket := newBucket(t, srv)
	ctx := context.Background()
	o := options(srv, "no-such-bucket")
	if _, err := s3.Open(ctx, o); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Open of a missing bucket = %v", err)
	}
	o = options(srv, bucket)
	o.SecretKey = "wrong"
	if _, err := s3.Open(ctx, o); err == nil {
		t.Error("Open with a wrong secret key succeeded")
	} else if strings.Contains(err.Error(), srv.SecretKey) {
		t.Errorf("error shows the secret: %v", err)
	}
	for _, ps := range []int64{1, s3.MinPartSize - 1, s3.MaxPartSize + 1} {
		o := options(srv, bucket)
		o.PartSize = ps
		if _, err := s3.Open(ctx, o); err == nil {
			t.Errorf("Open with part size %d succeeded", ps)
		}
	}
	o = options(srv, bucket)
	o.Endpoint = srv.Addr // host:port with UseTLS false
	o.PartSize = 0
	if s := open(t, o); s.PartSize() != s3.DefaultPartSize {
		t.Errorf("PartSize() = %d, want the default", s.PartSize())
	}
	for _, ep := range []string{"", "ftp://x", "http://x/path", "http://u:p@x"} {
		o := options(srv, bucket)
		o.Endpoint = ep
		if _, err := s3.Open(ctx, o); err == nil {
			t.Errorf("Open(endpoint %q) succeeded", ep)
		}
	}
	o = options(srv, bucket)
	o.Prefix = "a/../b"
	if _, err := s3.Open(ctx, o); !errors.Is(err, blob.ErrBadKey) {
		t.Errorf("Open with prefix a/../b = %v, want ErrBadKey", err)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	const secret = "hunter2-very-secret"
	o := s3.Options{Endpoint: "x", Bucket: "b", AccessKey: "ak", SecretKey: secret}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("opts", "secret", o.SecretKey, "opts", o)
	js, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	outs := []string{
		fmt.Sprint(o.SecretKey), fmt.Sprintf("%v|%+v|%#v|%s|%q|%x|%d", o, o, o, o.SecretKey, o.SecretKey, o.SecretKey, o.SecretKey),
		fmt.Sprintf("%#v", o.SecretKey), logged.String(), string(js),
	}
	for _, out := range outs {
		if strings.Contains(out, secret) || strings.Contains(out, fmt.Sprintf("%x", secret)) {
			t.Errorf("secret printed: %s", out)
		}
	}
	if !strings.Contains(outs[0], "[redacted]") {
		t.Errorf("Secret prints as %q, want [redacted]", outs[0])
	}
	if o.SecretKey.Reveal() != secret {
		t.Error("Reveal lost the value")
	}
}

// TestMultipart checks that large objects really are multipart uploads
// (the ETag of a completed multipart upload ends in "-<parts>") and small
// ones single PUTs, and that Abort leaves no incomplete upload behind.
func TestMultipart(t *testing.T) {
	srv := s3test.Start(t)
	bucket := newBucket(t, srv)
	s := open(t, options(srv, bucket))
	c := srv.Client(t)
	ctx := context.Background()
	etag := func(key string) string {
		oi, err := c.StatObject(ctx, bucket, key, minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return oi.ETag
	}
	sizes := map[string]int{"small": 1000, "one-part": s3.MinPartSize, "two-parts": s3.MinPartSize + 1, "three-parts": 3 * s3.MinPartSize}
	wantSuffix := map[string]string{"small": "", "one-part": "", "two-parts": "-2", "three-parts": "-3"}
	for key, size := range sizes {
		blobtest.Put(t, s, key, bytes.Repeat([]byte{'x'}, size))
		e := etag(key)
		if suf := wantSuffix[key]; (suf == "" && strings.Contains(e, "-")) || !strings.HasSuffix(e, suf) {
			t.Errorf("%s (%d bytes): ETag %q, want suffix %q", key, size, e, suf)
		}
	}

	u, err := s.Create(ctx, "aborted")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write(make([]byte, 2*s3.MinPartSize+100)); err != nil {
		t.Fatal(err)
	}
	if n := incomplete(t, c, bucket); n != 1 {
		t.Errorf("%d incomplete uploads while writing, want 1", n)
	}
	if err := u.Abort(); err != nil {
		t.Fatal(err)
	}
	if n := incomplete(t, c, bucket); n != 0 {
		t.Errorf("%d incomplete uploads after Abort, want 0", n)
	}
}

func incomplete(t *testing.T, c *minio.Client, bucket string) int {
	t.Helper()
	n := 0
	for up := range c.ListIncompleteUploads(context.Background(), bucket, "", true) {
		if up.Err != nil {
			t.Fatal(up.Err)
		}
		n++
	}
	return n
}

func TestCleanTemp(t *testing.T) {
	srv := s3test.Start(t)
	bucket := newBucket(t, srv)
	s := open(t, options(srv, bucket))
	c := srv.Client(t)
	ctx := context.Background()
	// A writer that dies mid-object: its parts stay on the server.
	for _, key := range []string{"a/crashed", "b/crashed"} {
		u, err := s.Create(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		u.Write(make([]byte, s3.MinPartSize+1))
		defer u.Abort()
	}
	if n, err := s.CleanTemp(ctx, "", time.Hour); err != nil || n != 0 {
		t.Errorf("CleanTemp(1h) = %d, %v; want 0: the uploads are fresh", n, err)
	}
	// versitygw reports the time of an upload's last part as its start,
	// and the part may still be on its way: poll.
	n := 0
	for deadline := time.Now().Add(10 * time.Second); n == 0 && time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		var err error
		if n, err = s.CleanTemp(ctx, "a/", time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if n != 1 {
		t.Errorf("CleanTemp(a/) = %d; want 1", n)
	}
	if n := incomplete(t, c, bucket); n != 1 {
		t.Errorf("%d incomplete uploads, want b/crashed's", n)
	}
}

func TestCheckConditionalWrite(t *testing.T) {
	srv := s3test.Start(t)
	bucket := newBucket(t, srv)
	s := open(t, options(srv, bucket))
	if err := s.CheckConditionalWrite(context.Background()); err != nil {
		t.Fatal(err)
	}
	if keys := blobtest.Keys(t, s, ""); len(keys) != 0 {
		t.Errorf("probe left %q", keys)
	}
}

// faultTransport lets a test break chosen requests.
type faultTransport struct {
	base http.RoundTripper
	mu   sync.Mutex
	// fault, when it returns true for a request, the request is handed to
	// act instead of the base transport.
	fault func(req *http.Request) bool
	act   func(req *http.Request, base http.RoundTripper) (*http.Response, error)
	hits  int
}

func (f *faultTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	hit := f.fault != nil && f.fault(req)
	if hit {
		f.hits++
	}
	f.mu.Unlock()
	if hit {
		return f.act(req, f.base)
	}
	return f.base.RoundTrip(req)
}

func (f *faultTransport) set(fault func(*http.Request) bool, act func(*http.Request, http.RoundTripper) (*http.Response, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fault, f.act, f.hits = fault, act, 0
}

func (f *faultTransport) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits
}

// once returns a fault predicate that matches the first request for which
// match is true.
func once(match func(*http.Request) bool) func(*http.Request) bool {
	done := false
	return func(r *http.Request) bool {
		if done || !match(r) {
			return false
		}
		done = true
		return true
	}
}

var errLost = errors.New("connection reset by test")

// lostReply sends the request, then drops the reply.
func lostReply(req *http.Request, base http.RoundTripper) (*http.Response, error) {
	resp, err := base.RoundTrip(req)
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return nil, errLost
}

func faultyStore(t *testing.T) (*s3.Store, *faultTransport, *s3test.Server, string) {
	srv := s3test.Start(t)
	bucket := newBucket(t, srv)
	base, err := minio.DefaultTransport(false)
	if err != nil {
		t.Fatal(err)
	}
	ft := &faultTransport{base: base}
	o := options(srv, bucket)
	o.Transport = ft
	return open(t, o), ft, srv, bucket
}

func TestPutIfAbsentLostReply(t *testing.T) {
	s, ft, _, _ := faultyStore(t)
	ctx := context.Background()
	isPut := func(key string) func(*http.Request) bool {
		return func(r *http.Request) bool {
			return r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/"+key)
		}
	}

	// The PUT took effect but its reply was lost: the retry's 412 must not
	// turn our own commit into ErrExists.
	ft.set(once(isPut("backup.json")), lostReply)
	if err := s.PutIfAbsent(ctx, "backup.json", []byte("ours")); err != nil {
		t.Fatalf("PutIfAbsent after a lost reply = %v, want nil", err)
	}
	if ft.count() != 1 {
		t.Fatalf("fault hit %d times", ft.count())
	}
	if got := blobtest.Get(t, s, "backup.json"); string(got) != "ours" {
		t.Errorf("stored %q", got)
	}
	// A lost reply of a PUT that met an existing object still is ErrExists.
	ft.set(once(isPut("backup.json")), lostReply)
	if err := s.PutIfAbsent(ctx, "backup.json", []byte("theirs")); !errors.Is(err, blob.ErrExists) {
		t.Errorf("PutIfAbsent = %v, want ErrExists", err)
	}
	// A request that never reached the server is simply sent again.
	ft.set(once(isPut("other.json")), func(*http.Request, http.RoundTripper) (*http.Response, error) { return nil, errLost })
	if err := s.PutIfAbsent(ctx, "other.json", []byte("x")); err != nil {
		t.Errorf("PutIfAbsent after a failed send = %v", err)
	}
}

func TestCompleteLostReply(t *testing.T) {
	s, ft, _, _ := faultyStore(t)
	data := bytes.Repeat([]byte("0123456789"), s3.MinPartSize/5)
	isComplete := func(r *http.Request) bool {
		return r.Method == http.MethodPost && r.URL.Query().Has("uploadId")
	}

	// versitygw takes a repeated Complete in its stride.
	ft.set(once(isComplete), lostReply)
	blobtest.Put(t, s, "big", data)
	if ft.count() != 1 {
		t.Fatalf("fault hit %d times", ft.count())
	}
	if got := blobtest.Get(t, s, "big"); !bytes.Equal(got, data) {
		t.Error("object differs")
	}

	// Servers that answer the repeat with NoSuchUpload: the object's ETag
	// shows the first attempt worked.
	ft.set(isComplete, func(r *http.Request, base http.RoundTripper) (*http.Response, error) {
		if ft.count() == 1 {
			return lostReply(r, base)
		}
		body := "<Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message></Error>"
		return &http.Response{
			StatusCode: http.StatusNotFound, Status: "404 Not Found", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(strings.NewReader(body)),
			ContentLength: int64(len(body)), Request: r,
		}, nil
	})
	data2 := bytes.ToUpper(data)
	blobtest.Put(t, s, "big2", data2)
	if ft.count() < 2 {
		t.Fatalf("fault hit %d times, want the Complete and its repeat", ft.count())
	}
	if got := blobtest.Get(t, s, "big2"); !bytes.Equal(got, data2) {
		t.Error("object differs")
	}

	// NoSuchUpload with no object behind it is a failure.
	ft.set(isComplete, func(r *http.Request, base http.RoundTripper) (*http.Response, error) {
		body := "<Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message></Error>"
		return &http.Response{
			StatusCode: http.StatusNotFound, Status: "404 Not Found", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(strings.NewReader(body)),
			ContentLength: int64(len(body)), Request: r,
		}, nil
	})
	u, err := s.Create(context.Background(), "big3")
	if err != nil {
		t.Fatal(err)
	}
	u.Write(data)
	if err := u.Commit(context.Background()); err == nil {
		t.Error("Commit succeeded though the upload vanished")
	}
	if _, err := s.Stat(context.Background(), "big3"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat(big3) = %v, want ErrNotFound", err)
	}
}

// brokenBody delivers n bytes of the real body, then fails.
type brokenBody struct {
	io.ReadCloser
	n int
}

func (b *brokenBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, errLost
	}
	if len(p) > b.n {
		p = p[:b.n]
	}
	n, err := b.ReadCloser.Read(p)
	b.n -= n
	return n, err
}

func TestReadResumes(t *testing.T) {
	s, ft, srv, bucket := faultyStore(t)
	ctx := context.Background()
	data := bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz"), 40_000)
	blobtest.Put(t, s, "obj", data)
	breakGET := func(r *http.Request, base http.RoundTripper) (*http.Response, error) {
		resp, err := base.RoundTrip(r)
		if err == nil {
			resp.Body = &brokenBody{ReadCloser: resp.Body, n: 100_000}
		}
		return resp, err
	}
	isGET := func(r *http.Request) bool { return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/obj") }

	for _, r := range [][2]int64{{0, -1}, {12345, -1}, {777, 500_000}, {0, 350_000}, {5, 399_000}} {
		ft.set(func(r *http.Request) bool { return isGET(r) }, breakGET) // every GET breaks after 100 kB
		rc, err := s.OpenRange(ctx, "obj", r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		end := int64(len(data))
		if r[1] >= 0 {
			end = r[0] + r[1]
		}
		want := data[r[0]:end]
		if int64(len(want)) <= 4*100_000 {
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("OpenRange(%d, %d): %d bytes, %v; want %d", r[0], r[1], len(got), err, len(want))
			}
		} else if !errors.Is(err, errLost) {
			// More breaks than resumes: the error must come through.
			t.Errorf("OpenRange(%d, %d) with a GET breaking every 100 kB: %v, want the transport's error", r[0], r[1], err)
		}
	}

	// One break in a long read is resumed.
	ft.set(once(isGET), breakGET)
	got := blobtest.Get(t, s, "obj")
	if !bytes.Equal(got, data) {
		t.Errorf("read %d bytes, want %d", len(got), len(data))
	}

	// An object replaced mid-read is an error, not a splice.
	ft.set(once(isGET), breakGET)
	rc, err := s.Open(ctx, "obj")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 50_000)
	if _, err := io.ReadFull(rc, buf); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client(t).PutObject(ctx, bucket, "obj", bytes.NewReader(bytes.ToUpper(data)), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	rc.Close()
	if err == nil || !strings.Contains(err.Error(), "changed") {
		t.Errorf("read across a replacement = %v, want an error saying the object changed", err)
	}
}

func TestListOrderChecked(t *testing.T) {
	srv := s3test.Start(t)
	bucket := newBucket(t, srv)
	s := open(t, options(srv, bucket))
	keys := []string{"a/b-c", "a/b/c", "a/b0", "a/b.c", "a/bc"}
	for _, k := range keys {
		blobtest.Put(t, s, k, nil)
	}
	want := []string{"a/b-c", "a/b.c", "a/b/c", "a/b0", "a/bc"}
	if diff := cmp.Diff(want, blobtest.Keys(t, s, "")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func BenchmarkOpenRange8KiB(b *testing.B) {
	srv := s3test.Start(b)
	s := open(b, options(srv, newBucket(b, srv)))
	blobtest.BenchOpenRange(b, s, 16<<20)
}

func BenchmarkCommit256MiB(b *testing.B) {
	srv := s3test.Start(b)
	o := options(srv, newBucket(b, srv))
	o.PartSize = 0 // the default
	s := open(b, o)
	blobtest.BenchCommit(b, s)
}

// TestRangeIgnored: a server (or proxy) that answers a ranged GET with the
// whole object must not pass its first bytes off as the range.
func TestRangeIgnored(t *testing.T) {
	s, ft, _, _ := faultyStore(t)
	blobtest.Put(t, s, "obj", []byte("0123456789"))
	ft.set(func(r *http.Request) bool { return r.Method == http.MethodGet }, func(r *http.Request, base http.RoundTripper) (*http.Response, error) {
		resp, err := base.RoundTrip(r)
		if err == nil {
			resp.Header.Del("Content-Range")
			resp.StatusCode, resp.Status = http.StatusOK, "200 OK"
		}
		return resp, err
	})
	if _, err := s.OpenRange(context.Background(), "obj", 5, 2); err == nil || !strings.Contains(err.Error(), "Content-Range") {
		t.Errorf("OpenRange with the range ignored = %v, want an error about Content-Range", err)
	}
	if got := blobtest.Get(t, s, "obj"); string(got) != "0123456789" {
		t.Errorf("whole object: %q", got)
	}
}
