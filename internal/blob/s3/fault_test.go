package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdfast-backup/holdfast/internal/blob"
)

// The tests here put the store in front of a fake server to see it fail
// well; the real-server tests are in s3_test.go.

const fakeSecret = "fake-secret-key-never-shown"

// fake is an S3 server that answers the HEAD of bucket "b" and hands
// every other request to handle, after checking that it is signed and
// that its body matches its Content-MD5.
type fake struct {
	t      *testing.T
	mu     sync.Mutex
	reqs   []string // "METHOD path?query"
	handle func(w http.ResponseWriter, r *http.Request, body []byte)
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.t.Errorf("%s %s: reading the body: %v", r.Method, r.URL, err)
		return
	}
	if auth := r.Header.Get("Authorization"); !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AK/") || r.Header.Get("X-Amz-Date") == "" {
		f.t.Errorf("%s %s: not signed: Authorization %q", r.Method, r.URL, auth)
	}
	if r.ContentLength > 0 || r.Header.Get("Content-MD5") != "" {
		sum := md5.Sum(body)
		if got := r.Header.Get("Content-MD5"); got != base64.StdEncoding.EncodeToString(sum[:]) {
			f.t.Errorf("%s %s: Content-MD5 %q does not match the %d bytes sent", r.Method, r.URL, got, len(body))
		}
		if !strings.Contains(r.Header.Get("Authorization"), "content-md5;") {
			f.t.Errorf("%s %s: Content-MD5 not signed", r.Method, r.URL)
		}
		if r.Header.Get("X-Amz-Content-Sha256") != unsignedPayload {
			f.t.Errorf("%s %s: x-amz-content-sha256 %q", r.Method, r.URL, r.Header.Get("X-Amz-Content-Sha256"))
		}
	}
	if r.Method == http.MethodHead && r.URL.Path == "/b/" {
		return
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, r.Method+" "+r.URL.RequestURI())
	f.mu.Unlock()
	f.handle(w, r, body)
}

func (f *fake) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.reqs...)
}

func (f *fake) count(prefix string) int {
	n := 0
	for _, r := range f.requests() {
		if strings.HasPrefix(r, prefix) {
			n++
		}
	}
	return n
}

// fakeStore opens a store on a fake server; retries pause a millisecond.
func fakeStore(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, body []byte)) (*Store, *fake) {
	t.Helper()
	unit, cap := retryUnit, retryCap
	retryUnit, retryCap = time.Millisecond, 2*time.Millisecond
	t.Cleanup(func() { retryUnit, retryCap = unit, cap })
	f := &fake{t: t, handle: handle}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	s, err := Open(context.Background(), Options{Endpoint: srv.URL, Bucket: "b", AccessKey: "AK", SecretKey: fakeSecret, PartSize: MinPartSize})
	if err != nil {
		t.Fatal(err)
	}
	return s, f
}

func s3Error(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>fake %s</Message><RequestId>42</RequestId></Error>`, code, code)
}

// clean checks that an error message is one line and shows no secret.
func clean(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	if strings.Contains(msg, fakeSecret) || strings.Contains(msg, "Signature=") || strings.Contains(msg, "AWS4-HMAC") || strings.ContainsAny(msg, "\r\n") {
		t.Errorf("error message %q", msg)
	}
}

func TestRetryThrottled(t *testing.T) {
	n := 0
	s, f := fakeStore(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		if n++; n <= 2 {
			s3Error(w, http.StatusServiceUnavailable, "SlowDown")
			return
		}
		w.Header().Set("ETag", `"e"`)
		io.WriteString(w, "hello")
	})
	rc, err := s.Open(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(got) != "hello" {
		t.Errorf("read %q, %v", got, err)
	}
	if c := f.count("GET /b/k"); c != 3 {
		t.Errorf("%d GETs, want 3", c)
	}
}

func TestRetryGivesUp(t *testing.T) {
	s, f := fakeStore(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.WriteHeader(http.StatusInternalServerError)
	})
	_, err := s.Stat(context.Background(), "k")
	if err == nil || errors.Is(err, blob.ErrNotFound) || !strings.Contains(err.Error(), "500") || !strings.Contains(err.Error(), fmt.Sprintf("(%d attempts)", maxAttempts)) {
		t.Fatalf("Stat = %v, want the 500", err)
	}
	clean(t, err)
	if c := f.count("HEAD"); c != maxAttempts {
		t.Errorf("%d attempts, want %d", c, maxAttempts)
	}
}

func TestNoRetryOnClientError(t *testing.T) {
	s, f := fakeStore(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		s3Error(w, http.StatusForbidden, "SignatureDoesNotMatch")
	})
	err := s.PutIfAbsent(context.Background(), "k", []byte("x"))
	if err == nil || !strings.Contains(err.Error(), "SignatureDoesNotMatch") || !strings.Contains(err.Error(), "check the access key and the secret key") {
		t.Fatalf("PutIfAbsent = %v", err)
	}
	clean(t, err)
	rc, err := s.Open(context.Background(), "k")
	if err == nil {
		rc.Close()
		t.Fatal("Open succeeded")
	}
	clean(t, err)
	if got := f.requests(); len(got) != 2 {
		t.Errorf("requests %q, want one PUT and one GET", got)
	}
}

func TestNotFound(t *testing.T) {
	s, _ := fakeStore(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		if r.Method == http.MethodHead {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		s3Error(w, http.StatusNotFound, "NoSuchKey")
	})
	if _, err := s.Stat(context.Background(), "k"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat = %v", err)
	}
	if _, err := s.Open(context.Background(), "k"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Open = %v", err)
	}
	if err := s.Delete(context.Background(), "k"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Delete = %v", err)
	}
}

// TestRetryReplaysBody: a PUT that failed after the server read its body
// is sent again whole.
func TestRetryReplaysBody(t *testing.T) {
	var bodies [][]byte
	s, f := fakeStore(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		bodies = append(bodies, body)
		if len(bodies) == 1 {
			s3Error(w, http.StatusInternalServerError, "InternalError")
		}
	})
	data := bytes.Repeat([]byte("0123456789abcdef"), 1000)
	u, err := s.Create(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	u.Write(data)
	if err := u.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(bodies) != 2 || !bytes.Equal(bodies[0], data) || !bytes.Equal(bodies[1], data) {
		t.Errorf("%d PUTs (%q)", len(bodies), f.requests())
	}
}

func TestPutIfAbsentOnce(t *testing.T) {
	s, f := fakeStore(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		if r.Header.Get("If-None-Match") != "*" {
			t.Errorf("If-None-Match %q", r.Header.Get("If-None-Match"))
		}
		w.WriteHeader(http.StatusPreconditionFailed)
	})
	if err := s.PutIfAbsent(context.Background(), "k", []byte("x")); !errors.Is(err, blob.ErrExists) {
		t.Errorf("PutIfAbsent = %v, want ErrExists", err)
	}
	if c := f.count("PUT"); c != 1 {
		t.Errorf("%d PUTs, want 1", c)
	}
}

// multipartFake serves a multipart upload whose Complete answers with
// the given responses in turn (the last one again after that).
func multipartFake(t *testing.T, complete ...func(w http.ResponseWriter)) (*Store, *fake, *[]byte) {
	var completeBody []byte
	n := 0
	s, f := fakeStore(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		q := r.URL.Query()
		switch {
		case r.Method == http.MethodPost && q.Has("uploads"):
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>up/1+2</UploadId></InitiateMultipartUploadResult>`)
		case r.Method == http.MethodPut && q.Get("uploadId") == "up/1+2":
			w.Header().Set("ETag", fmt.Sprintf(`"etag-%s"`, q.Get("partNumber")))
		case r.Method == http.MethodPost && q.Get("uploadId") == "up/1+2":
			completeBody = body
			complete[min(n, len(complete)-1)](w)
			n++
		case r.Method == http.MethodDelete && q.Get("uploadId") == "up/1+2":
			w.WriteHeader(http.StatusNoContent)
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL)
			w.WriteHeader(http.StatusBadRequest)
		}
	})
	return s, f, &completeBody
}

func late(code string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "\n   \n")
		w.(http.Flusher).Flush()
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>fake</Message></Error>`, code)
	}
}

func writeBig(t *testing.T, s *Store) blob.Upload {
	t.Helper()
	u, err := s.Create(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write(make([]byte, MinPartSize+1)); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestCompleteFailsIn200: CompleteMultipartUpload answered 200 with an
// <Error> failed; InternalError is repeated, other codes are final, and
// the upload is aborted.
func TestCompleteFailsIn200(t *testing.T) {
	ok := func(w http.ResponseWriter) {
		io.WriteString(w, `<CompleteMultipartUploadResult><ETag>"x-2"</ETag></CompleteMultipartUploadResult>`)
	}
	s, f, body := multipartFake(t, late("InternalError"), ok)
	if err := writeBig(t, s).Commit(context.Background()); err != nil {
		t.Fatalf("Commit after one late InternalError = %v", err)
	}
	if c := f.count("POST /b/k?uploadId="); c != 2 {
		t.Errorf("%d Completes, want 2", c)
	}
	var req completeRequest
	if err := xml.Unmarshal(*body, &req); err != nil {
		t.Fatalf("Complete's body %s: %v", *body, err)
	}
	if want := []completePart{{1, `"etag-1"`}, {2, `"etag-2"`}}; fmt.Sprint(req.Parts) != fmt.Sprint(want) {
		t.Errorf("Complete sent parts %v, want %v", req.Parts, want)
	}
	if c := f.count("DELETE"); c != 0 {
		t.Errorf("%d aborts of a completed upload", c)
	}

	s, f, _ = multipartFake(t, late("InvalidPart"))
	err := writeBig(t, s).Commit(context.Background())
	if err == nil || !strings.Contains(err.Error(), "InvalidPart") {
		t.Fatalf("Commit = %v, want InvalidPart", err)
	}
	clean(t, err)
	if c := f.count("POST /b/k?uploadId="); c != 1 {
		t.Errorf("%d Completes, want 1", c)
	}
	if c := f.count("DELETE /b/k?uploadId=up%2F1%2B2"); c != 1 {
		t.Errorf("requests %q: want one abort", f.requests())
	}

	// A body that is neither result nor error is no success either.
	s, _, _ = multipartFake(t, func(w http.ResponseWriter) { io.WriteString(w, "<html>gateway</html>") })
	if err := writeBig(t, s).Commit(context.Background()); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("Commit = %v, want a malformed response", err)
	}
}

func TestUploadPartFails(t *testing.T) {
	s, f := fakeStore(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		q := r.URL.Query()
		switch {
		case r.Method == http.MethodPost && q.Has("uploads"):
			io.WriteString(w, `<InitiateMultipartUploadResult><UploadId>u1</UploadId></InitiateMultipartUploadResult>`)
		case r.Method == http.MethodPut:
			s3Error(w, http.StatusBadRequest, "InvalidDigest")
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	u := writeBig(t, s)
	err := u.Commit(context.Background())
	if err == nil || !strings.Contains(err.Error(), "InvalidDigest") {
		t.Fatalf("Commit = %v", err)
	}
	if c := f.count("DELETE /b/k?uploadId=u1"); c != 1 {
		t.Errorf("requests %q: want one abort", f.requests())
	}
}

func TestListPages(t *testing.T) {
	page := func(w http.ResponseWriter, keys []string, next string) {
		fmt.Fprintf(w, `<ListBucketResult><IsTruncated>%v</IsTruncated><NextContinuationToken>%s</NextContinuationToken>`, next != "", next)
		for _, k := range keys {
			fmt.Fprintf(w, `<Contents><Key>%s</Key><Size>3</Size><LastModified>2026-01-02T03:04:05.000Z</LastModified></Contents>`, k)
		}
		io.WriteString(w, `</ListBucketResult>`)
	}
	second := []string{"b", "c"}
	s, f := fakeStore(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		q := r.URL.Query()
		if q.Get("list-type") != "2" || q.Get("encoding-type") != "url" {
			t.Errorf("list query %q", r.URL.RawQuery)
		}
		switch q.Get("continuation-token") {
		case "":
			page(w, []string{"a", "a/b"}, "t/1+2=")
		case "t/1+2=":
			page(w, second, "")
		default:
			t.Errorf("token %q", q.Get("continuation-token"))
		}
	})
	var got []string
	err := s.List(context.Background(), "", func(i blob.Info) error {
		got = append(got, i.Key)
		if i.Size != 3 || i.ModTime.IsZero() {
			t.Errorf("%+v", i)
		}
		return nil
	})
	if err != nil || strings.Join(got, ",") != "a,a/b,b,c" {
		t.Errorf("List: %q, %v", got, err)
	}
	if c := f.count("GET"); c != 2 {
		t.Errorf("%d GETs", c)
	}
	second = []string{"0"}
	err = s.List(context.Background(), "", func(blob.Info) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "out of order") {
		t.Errorf("List of an unordered listing = %v", err)
	}
}

func TestListBadAnswers(t *testing.T) {
	var answer []byte
	s, f := fakeStore(t, func(w http.ResponseWriter, r *http.Request, _ []byte) { w.Write(answer) })
	for _, tt := range []struct {
		answer []byte
		want   string
	}{
		{bytes.Repeat([]byte(" "), maxListBody+1), "larger than"},
		{[]byte("<ListBucketResult><Contents><Key>k</Key><Size>x</Size></Contents></ListBucketResult>"), "malformed ListObjectsV2 response"},
		{[]byte("not xml"), "malformed ListObjectsV2 response"},
		{[]byte("<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>same</NextContinuationToken></ListBucketResult>"), ""},
	} {
		answer = tt.answer
		before := f.count("GET")
		err := s.List(context.Background(), "", func(blob.Info) error { return nil })
		if tt.want == "" {
			// A server repeating its token would be listed forever.
			if err == nil || !strings.Contains(err.Error(), "same continuation token") {
				t.Errorf("List with a repeated token = %v", err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("List = %v, want %q", err, tt.want)
		}
		if c := f.count("GET") - before; c != 1 {
			t.Errorf("%q: %d GETs: a malformed answer is not asked again", tt.want, c)
		}
	}
}

func TestCanceledWhileRetrying(t *testing.T) {
	s, _ := fakeStore(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		s3Error(w, http.StatusServiceUnavailable, "SlowDown")
	})
	retryUnit, retryCap = time.Hour, time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Stat(ctx, "k")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stat = %v, want the deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Stat took %v", d)
	}
}

func TestRangeAnswersChecked(t *testing.T) {
	var contentRange string
	s, _ := fakeStore(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.Header().Set("Content-Range", contentRange)
		w.WriteHeader(http.StatusPartialContent)
		io.WriteString(w, "01234")
	})
	for _, cr := range []string{"bytes 10-14/100", "bytes 5-9/100", "bytes 10-19/100", "bytes 10-14", "bytes */100"} {
		contentRange = cr
		rc, err := s.OpenRange(context.Background(), "k", 10, 5)
		if cr == "bytes 10-14/100" {
			if err != nil {
				t.Errorf("%s: %v", cr, err)
				continue
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if string(got) != "01234" || err != nil {
				t.Errorf("%s: read %q, %v", cr, got, err)
			}
			continue
		}
		if err == nil {
			rc.Close()
			t.Errorf("OpenRange answered with %q succeeded", cr)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	for _, tt := range []struct {
		status int
		header string
		want   string
	}{
		{http.StatusNotFound, "", "does not exist"},
		{http.StatusForbidden, "", "check the access key"},
		{http.StatusMovedPermanently, "eu-west-3", "region eu-west-3"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tt.header != "" {
				w.Header().Set("X-Amz-Bucket-Region", tt.header)
			}
			w.WriteHeader(tt.status)
		}))
		_, err := Open(context.Background(), Options{Endpoint: srv.URL, Bucket: "b", AccessKey: "AK", SecretKey: fakeSecret})
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Open answered %d = %v, want %q", tt.status, err, tt.want)
		} else {
			clean(t, err)
		}
	}
}

func TestEndpoint(t *testing.T) {
	for _, tt := range []struct {
		ep     string
		tls    bool
		host   string
		secure bool
	}{
		{"s3.example.com", true, "s3.example.com", true},
		{"s3.example.com:443", true, "s3.example.com", true},
		{"s3.example.com:443", false, "s3.example.com:443", false},
		{"http://127.0.0.1:80", true, "127.0.0.1", false},
		{"https://[::1]:443/", false, "[::1]", true},
		{"http://[::1]:9000", false, "[::1]:9000", false},
	} {
		host, secure, err := endpoint(Options{Endpoint: tt.ep, UseTLS: tt.tls})
		if err != nil || host != tt.host || secure != tt.secure {
			t.Errorf("endpoint(%q, tls %v) = %q, %v, %v; want %q, %v", tt.ep, tt.tls, host, secure, err, tt.host, tt.secure)
		}
	}
	for _, ep := range []string{"a/b", "http://x?y", "x y", "http://x#f"} {
		if _, _, err := endpoint(Options{Endpoint: ep}); err == nil {
			t.Errorf("endpoint(%q) accepted", ep)
		}
	}
}
