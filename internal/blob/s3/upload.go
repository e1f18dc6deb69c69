package s3

import (
	"context"
	"crypto/md5"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/holdfast-backup/holdfast/internal/blob"
)

// abortTimeout bounds the request that aborts a multipart upload; it runs
// even when the upload's context is canceled, which is usually why it runs.
const abortTimeout = time.Minute

var errUploadDone = errors.New("upload already committed or aborted")

// Create implements blob.Writer. Nothing is sent until PartSize bytes are
// written: an object smaller than that is one PUT at Commit. A bigger one
// becomes a multipart upload, invisible until Commit completes it, with one
// part uploading while the next fills; Abort aborts it.
func (s *Store) Create(ctx context.Context, key string) (blob.Upload, error) {
	if err := check(ctx, "create", key); err != nil {
		return nil, err
	}
	uctx, cancel := context.WithCancel(ctx)
	return &upload{s: s, key: key, parent: ctx, ctx: uctx, cancel: cancel}, nil
}

type partResult struct {
	part completePart
	sum  [md5.Size]byte
	buf  []byte
	err  error
}

// upload keeps Create's ctx (parent) because the contract ties the
// upload's lifetime to it: its parts are sent from Write, which has no
// ctx of its own. ctx is parent's child, canceled by Abort.
//
// Memory: buf (the part being filled, at most PartSize, grown as data
// comes) and the part in flight, so at most 2 × PartSize per upload.
type upload struct {
	s      *Store
	key    string
	parent context.Context
	ctx    context.Context
	cancel context.CancelFunc

	buf      []byte
	spare    []byte // the previous part's buffer, reused
	uploadID string
	parts    []completePart
	sums     [][md5.Size]byte
	inflight chan partResult // nil when no part is in flight

	err  error // sticky failure; the upload was already aborted
	done bool
}

func (u *upload) Write(p []byte) (int, error) {
	if u.done {
		return 0, fmt.Errorf("s3: write %s: %w", u.key, errUploadDone)
	}
	if u.err != nil {
		return 0, u.err
	}
	if err := u.parent.Err(); err != nil {
		return 0, u.fail(fmt.Errorf("s3: write %s: %w", u.key, err))
	}
	part := int(u.s.part)
	written := 0
	for len(p) > 0 {
		if len(u.buf) == part {
			if err := u.send(); err != nil {
				return written, u.fail(err)
			}
		}
		if len(u.buf) == cap(u.buf) {
			// Grow by doubling, never past the part size: a small object
			// costs what it holds.
			nb := make([]byte, len(u.buf), min(part, max(2*cap(u.buf), 64<<10, len(u.buf)+len(p))))
			copy(nb, u.buf)
			u.buf = nb
		}
		k := min(cap(u.buf)-len(u.buf), len(p))
		u.buf = append(u.buf, p[:k]...)
		p = p[k:]
		written += k
	}
	return written, nil
}

// send starts uploading buf as the next part, after the part in flight has
// finished.
func (u *upload) send() error {
	if err := u.wait(); err != nil {
		return err
	}
	num := len(u.parts) + 1
	if num > MaxParts {
		return fmt.Errorf("s3: write %s: the object is larger than %d parts of %d MiB, the most S3 allows: raise the part size", u.key, MaxParts, u.s.part>>20)
	}
	if u.uploadID == "" {
		id, err := u.s.createUpload(u.ctx, u.s.object(u.key))
		if err != nil {
			return u.wrapErr("write", err)
		}
		u.uploadID = id
	}
	data := u.buf
	u.buf, u.spare = u.spare[:0], nil
	ch := make(chan partResult, 1)
	u.inflight = ch
	id, obj := u.uploadID, u.s.object(u.key)
	go func() {
		// do repeats a failed part from the start of data: repeating a
		// part upload is harmless.
		r := partResult{sum: md5.Sum(data), buf: data}
		var etag string
		etag, r.err = u.s.uploadPart(u.ctx, obj, id, num, data, &r.sum)
		r.part = completePart{PartNumber: num, ETag: etag}
		ch <- r
	}()
	return nil
}

// wait waits for the part in flight, if any, and records it.
func (u *upload) wait() error {
	if u.inflight == nil {
		return nil
	}
	r := <-u.inflight
	u.inflight = nil
	u.spare = r.buf[:0]
	if r.err != nil {
		return u.wrapErr(fmt.Sprintf("write part %d of", r.part.PartNumber), r.err)
	}
	u.parts = append(u.parts, r.part)
	u.sums = append(u.sums, r.sum)
	return nil
}

func (u *upload) wrapErr(op string, err error) error {
	if perr := u.parent.Err(); perr != nil {
		return fmt.Errorf("s3: %s %s: %w", op, u.key, perr)
	}
	return fmt.Errorf("s3: %s %s: %w", op, u.key, err)
}

// fail records err and aborts at once, so the part in flight stops and
// the server frees what was sent.
func (u *upload) fail(err error) error {
	if u.err == nil {
		u.err = err
		u.abort()
	}
	return u.err
}

func (u *upload) Commit(ctx context.Context) error {
	if u.done {
		return fmt.Errorf("s3: commit %s: %w", u.key, errUploadDone)
	}
	if u.err != nil {
		u.done = true
		return u.err
	}
	err := u.commit(ctx)
	if err != nil {
		u.fail(err)
	}
	u.done = true
	u.cancel()
	u.buf, u.spare = nil, nil
	return err
}

func (u *upload) commit(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3: commit %s: %w", u.key, err)
	}
	if err := u.parent.Err(); err != nil {
		return fmt.Errorf("s3: commit %s: %w", u.key, err)
	}
	// Commit's ctx governs the requests from here on, as well as Create's.
	stop := context.AfterFunc(ctx, u.cancel)
	defer stop()
	wrapErr := func(err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("s3: commit %s: %w", u.key, cerr)
		}
		return u.wrapErr("commit", err)
	}
	obj := u.s.object(u.key)
	if u.uploadID == "" {
		// Small enough for one PUT, which do may safely repeat.
		buf := u.buf
		if buf == nil {
			buf = []byte{} // an empty object still has a body
		}
		resp, err := u.s.do(u.ctx, request{method: http.MethodPut, object: obj, body: buf})
		if err != nil {
			return wrapErr(err)
		}
		discard(resp)
		return nil
	}
	if len(u.buf) > 0 {
		if err := u.send(); err != nil {
			return wrapErr(err)
		}
	}
	if err := u.wait(); err != nil {
		return wrapErr(err)
	}
	err := u.s.completeUpload(u.ctx, obj, u.uploadID, u.parts)
	if err == nil {
		return nil
	}
	// do repeats a Complete whose reply was lost; the repeat may find the
	// upload gone. If the object is there with the ETag these parts make,
	// the first attempt did it.
	if _, code := errorCode(err); code == "NoSuchUpload" && ctx.Err() == nil {
		_, _, etag, serr := u.s.head(u.ctx, obj)
		if serr == nil && etag == etagOfParts(u.sums) {
			u.uploadID = ""
			return nil
		}
	}
	return wrapErr(err)
}

func (u *upload) Abort() error {
	if u.done || u.err != nil {
		u.done = true
		return nil
	}
	u.done = true
	return u.abort()
}

// abort stops the part in flight and aborts the multipart upload, if one
// was started. If the abort request fails the parts stay on the server
// until CleanTemp (or a lifecycle rule) removes them.
func (u *upload) abort() error {
	u.cancel()
	if u.inflight != nil {
		<-u.inflight
		u.inflight = nil
	}
	u.buf, u.spare = nil, nil
	if u.uploadID == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(u.parent), abortTimeout)
	defer cancel()
	err := u.s.abortUpload(ctx, u.s.object(u.key), u.uploadID)
	u.uploadID = ""
	if status, _ := errorCode(err); err != nil && status != http.StatusNotFound {
		return fmt.Errorf("s3: abort %s: %w (its parts stay on the server until CleanTemp removes them)", u.key, err)
	}
	return nil
}

// createUpload is CreateMultipartUpload: the new upload's ID.
func (s *Store) createUpload(ctx context.Context, obj string) (string, error) {
	var id string
	_, err := s.do(ctx, request{method: http.MethodPost, object: obj, query: url.Values{"uploads": {""}},
		read: maxSmallBody, check: func(b []byte) (err error) {
			id, err = parseInitiate(b)
			return err
		}})
	return id, err
}

// uploadPart is UploadPart: the part's ETag, as the server wrote it.
func (s *Store) uploadPart(ctx context.Context, obj, id string, num int, data []byte, sum *[md5.Size]byte) (string, error) {
	q := url.Values{"partNumber": {strconv.Itoa(num)}, "uploadId": {id}}
	resp, err := s.do(ctx, request{method: http.MethodPut, object: obj, query: q, body: data, md5: sum})
	if err != nil {
		return "", err
	}
	discard(resp)
	etag := resp.Header.Get("ETag")
	if etag == "" {
		return "", fmt.Errorf("%s answered UploadPart without an ETag", s.where)
	}
	return etag, nil
}

// completeUpload is CompleteMultipartUpload. The server may fail it after
// answering 200: the body says which, and do repeats it as it would a
// 5xx when the failure is one to repeat.
func (s *Store) completeUpload(ctx context.Context, obj, id string, parts []completePart) error {
	b, err := xml.Marshal(completeRequest{Parts: parts})
	if err != nil {
		return err
	}
	_, err = s.do(ctx, request{method: http.MethodPost, object: obj, query: url.Values{"uploadId": {id}}, body: b,
		read: maxSmallBody, check: func(b []byte) error {
			_, e, failed, err := parseComplete(b)
			if failed {
				return &respError{Status: http.StatusOK, Code: e.Code, Message: e.Message, RequestID: e.RequestID}
			}
			return err
		}})
	return err
}
