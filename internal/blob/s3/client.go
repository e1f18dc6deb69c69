package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Retries: a request that may be repeated is sent up to maxAttempts times
// while it fails on the network, with a 5xx, or because the server
// throttles (503 SlowDown, 429, ...). The pause before attempt n+1 is
// drawn from [d/2, d), d = min(retryCap, retryUnit × 2^(n-1)): about 8 s
// in all before the last attempt.
const maxAttempts = 8

// Variables only so that tests can shorten the pauses.
var (
	retryUnit = 200 * time.Millisecond
	retryCap  = 3 * time.Second
)

// defaultTransport is what a Store uses when Options.Transport is nil.
func defaultTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64, // parallel ranged reads of verify and restore
		IdleConnTimeout:       time.Minute,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 2 * time.Minute,
		ExpectContinueTimeout: time.Second,
		// Objects are bytes: never let the transport ask for gzip and
		// decode it behind our back.
		DisableCompression: true,
		TLSClientConfig:    &tls.Config{MinVersion: tls.VersionTLS12},
	}
}

// request is one S3 call.
type request struct {
	method string
	object string // the object's full name (with the prefix); "" for the bucket
	query  url.Values
	header http.Header // signed and sent as is
	// body, when not nil, is sent with its Content-MD5 (md5, or computed
	// here) and an unsigned payload hash: its integrity rides on the MD5,
	// which is signed.
	body []byte
	md5  *[md5.Size]byte
	// once sends the request a single time: it is not safe to repeat.
	once bool
	// read, when > 0, has do read the response body (at most read bytes)
	// as part of the attempt, so a body that breaks is asked for again,
	// and hand it to check, whose error (a *respError for a failure the
	// server reports in a 200) fails the attempt.
	read  int64
	check func([]byte) error
}

// respError is a request the server answered with a failure.
type respError struct {
	where     string // "bucket B at HOST"
	method    string
	Status    int // the HTTP status; 200 for a CompleteMultipartUpload that failed late
	Code      string
	Message   string
	RequestID string
	Region    string // the bucket's region, when the server says
}

func (e *respError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s answered %s with %d %s", e.where, e.method, e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		b.WriteString(" (" + e.Code)
		if e.Message != "" {
			b.WriteString(": " + e.Message)
		}
		b.WriteString(")")
	}
	if hint := e.hint(); hint != "" {
		b.WriteString(": " + hint)
	}
	return b.String()
}

// hint says what to do about the failures a configuration causes.
func (e *respError) hint() string {
	switch {
	case e.Code == "SignatureDoesNotMatch" || e.Code == "InvalidAccessKeyId" || (e.Status == http.StatusForbidden && e.Code == ""):
		return "check the access key and the secret key"
	case e.Code == "AccessDenied":
		return "check that the access key may use this bucket"
	case e.Code == "RequestTimeTooSkewed":
		return "this machine's clock is off: synchronise it"
	case e.Code == "AuthorizationHeaderMalformed" || e.Code == "PermanentRedirect" || e.Code == "IncorrectEndpoint" ||
		e.Status == http.StatusMovedPermanently:
		if e.Region != "" {
			return fmt.Sprintf("the bucket is in region %s: set the region to it", e.Region)
		}
		return "check the endpoint and the region"
	}
	return ""
}

// errorCode classifies an error: the HTTP status and S3 code, zeros when
// no response was received.
func errorCode(err error) (int, string) {
	var e *respError
	if errors.As(err, &e) {
		return e.Status, e.Code
	}
	return 0, ""
}

// do sends r and returns the response when its status is 2xx; any other
// answer becomes a *respError (its body read and closed). A request not
// marked once is repeated as the comment on maxAttempts says.
func (s *Store) do(ctx context.Context, r request) (*http.Response, error) {
	if r.body != nil && r.md5 == nil {
		sum := md5.Sum(r.body)
		r.md5 = &sum
	}
	for attempt := 1; ; attempt++ {
		resp, err := s.send(ctx, r)
		if err == nil {
			if resp.StatusCode >= 200 && resp.StatusCode < 300 {
				if r.read <= 0 {
					return resp, nil
				}
				if err = s.readInto(resp, r); err == nil {
					return resp, nil
				}
			} else {
				err = s.responseError(r.method, resp)
			}
		}
		if ctx.Err() != nil || r.once || !retryable(err) {
			return nil, err
		}
		if attempt == maxAttempts {
			return nil, fmt.Errorf("%w (%d attempts)", err, attempt)
		}
		d := min(retryCap, retryUnit<<(attempt-1))
		d = d/2 + rand.N(d/2)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(d):
		}
	}
}

// send makes one attempt.
func (s *Store) send(ctx context.Context, r request) (*http.Response, error) {
	path := "/" + s.bucket + "/"
	if r.object != "" {
		path += r.object
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body) // NewRequest sets GetBody: replayable
	}
	req, err := http.NewRequestWithContext(ctx, r.method, requestURL(s.scheme, s.host, path, r.query), body)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", s.where, r.method, err)
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	hash := emptySHA256
	if r.body != nil {
		req.Header.Set("Content-MD5", base64.StdEncoding.EncodeToString(r.md5[:]))
		hash = unsignedPayload
	}
	s.signer.sign(req, hash, time.Now())
	resp, err := s.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its URL is ours; the message says where already
		}
		return nil, fmt.Errorf("%s: %s: %w", s.where, r.method, err)
	}
	return resp, nil
}

// responseError turns a failed response into a *respError, reading (a
// bounded part of) its body and closing it.
func (s *Store) responseError(method string, resp *http.Response) error {
	defer resp.Body.Close()
	e := &respError{where: s.where, method: method, Status: resp.StatusCode, Region: oneLine(resp.Header.Get("X-Amz-Bucket-Region"), 64)}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxSmallBody))
	if eb, ok := parseError(b); ok {
		e.Code, e.Message, e.RequestID = eb.Code, eb.Message, eb.RequestID
		if eb.Region != "" {
			e.Region = eb.Region
		}
	}
	return e
}

// retryable tells whether a failed attempt may succeed when repeated.
func retryable(err error) bool {
	if errors.Is(err, errMalformed) {
		return false
	}
	var e *respError
	if !errors.As(err, &e) {
		// No answer, or a broken one. A certificate the transport rejects stays rejected.
		var cv *tls.CertificateVerificationError
		var ua x509.UnknownAuthorityError
		var hn x509.HostnameError
		var ci x509.CertificateInvalidError
		return !errors.As(err, &cv) && !errors.As(err, &ua) && !errors.As(err, &hn) && !errors.As(err, &ci)
	}
	switch e.Code {
	case "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "RequestThrottled",
		"RequestTimeout", "InternalError", "ServiceUnavailable":
		return true
	}
	switch e.Status {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// errMalformed marks a response that repeating the request will not mend.
var errMalformed = errors.New("malformed response")

// readInto reads resp's body for r (see request.read) and replaces it
// with what was read.
func (s *Store) readInto(resp *http.Response, r request) error {
	b, err := io.ReadAll(io.LimitReader(resp.Body, r.read+1))
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("%s: %s: reading the response: %w", s.where, r.method, err)
	}
	if int64(len(b)) > r.read {
		return fmt.Errorf("%s: %s: the response is larger than %d bytes: %w", s.where, r.method, r.read, errMalformed)
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	if r.check == nil {
		return nil
	}
	if err := r.check(b); err != nil {
		var e *respError
		if errors.As(err, &e) {
			e.where, e.method = s.where, r.method
			return e
		}
		return fmt.Errorf("%s: %s: %w: %w", s.where, r.method, errMalformed, err)
	}
	return nil
}

// body returns what readInto read.
func body(resp *http.Response) []byte {
	b, _ := io.ReadAll(resp.Body)
	return b
}

// discard reads what is left of a body, so its connection can be reused,
// and closes it.
func discard(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}
