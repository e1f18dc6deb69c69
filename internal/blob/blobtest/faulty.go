package blobtest

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/holdfast-backup/holdfast/internal/blob"
)

// Op names an operation Faulty can fail.
type Op int

// The operations. OpWrite is one Upload.Write call, OpRead one Read call on
// a reader from Open or OpenRange; OpOpen covers Open and OpenRange.
const (
	OpCreate Op = iota
	OpWrite
	OpCommit
	OpAbort
	OpPutIfAbsent
	OpOpen
	OpRead
	OpStat
	OpList
	OpDelete
	numOps
)

var opNames = [numOps]string{"create", "write", "commit", "abort", "put", "open", "read", "stat", "list", "delete"}

func (o Op) String() string {
	if o < 0 || o >= numOps {
		return fmt.Sprintf("Op(%d)", int(o))
	}
	return opNames[o]
}

// Fault says which call fails and how.
type Fault struct {
	Op Op
	// Prefix, when set, limits the fault to keys that start with it; only
	// those calls are counted.
	Prefix string
	// Nth is the matching call that fails, counting from 1 after the fault
	// is added; 0 means every matching call.
	Nth int
	// Sticky makes every matching call after the Nth fail too, like a file
	// system that stays full.
	Sticky bool
	// Err is the error returned (wrapped with the operation and key).
	Err error
	// After performs the operation before failing, like a lost reply:
	// a Commit or PutIfAbsent that took effect but reports Err, a Write
	// that wrote half its bytes, a Delete that deleted.
	After bool
	// Corrupt, for OpRead, flips the bits of the first byte the failing
	// Read returns instead of failing it.
	Corrupt bool
}

type faultState struct {
	Fault
	seen int
}

// Faulty wraps a store and fails chosen calls, for tests of failure paths:
// a full disk in the middle of an archive, a commit that fails, a
// PutIfAbsent that loses its reply, a read that returns corrupt bytes. It is
// safe for concurrent use.
type Faulty struct {
	inner blob.Store

	mu     sync.Mutex
	faults []*faultState
	calls  [numOps]int
}

var _ blob.Store = (*Faulty)(nil)

// NewFaulty wraps s. With no faults added it behaves exactly like s.
func NewFaulty(s blob.Store) *Faulty {
	return &Faulty{inner: s}
}

// Add adds a fault.
func (f *Faulty) Add(fault Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, &faultState{Fault: fault})
}

// FailNth makes the nth call (from 1) of op fail with err.
func (f *Faulty) FailNth(op Op, n int, err error) {
	f.Add(Fault{Op: op, Nth: n, Err: err})
}

// FailFrom makes the nth call of op and every later one fail with err.
func (f *Faulty) FailFrom(op Op, n int, err error) {
	f.Add(Fault{Op: op, Nth: n, Sticky: true, Err: err})
}

// Reset removes every fault and zeroes the call counts.
func (f *Faulty) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = nil
	f.calls = [numOps]int{}
}

// Calls reports how many calls of op were made.
func (f *Faulty) Calls(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// check counts a call and returns the fault it hits, if any.
func (f *Faulty) check(op Op, key string) *Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	var hit *Fault
	for _, fs := range f.faults {
		if fs.Op != op || !strings.HasPrefix(key, fs.Prefix) {
			continue
		}
		fs.seen++
		if hit == nil && (fs.Nth == 0 || fs.seen == fs.Nth || (fs.Sticky && fs.seen > fs.Nth)) {
			hit = &fs.Fault
		}
	}
	return hit
}

func faultErr(op Op, key string, ft *Fault) error {
	return fmt.Errorf("faulty: %s %s: %w", op, key, ft.Err)
}

// Open implements blob.Reader.
func (f *Faulty) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	return f.OpenRange(ctx, key, 0, -1)
}

// OpenRange implements blob.Reader.
func (f *Faulty) OpenRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	ft := f.check(OpOpen, key)
	if ft != nil && !ft.After {
		return nil, faultErr(OpOpen, key, ft)
	}
	rc, err := f.inner.OpenRange(ctx, key, off, n)
	if err != nil {
		return nil, err
	}
	if ft != nil {
		rc.Close()
		return nil, faultErr(OpOpen, key, ft)
	}
	return &faultyReader{f: f, key: key, rc: rc}, nil
}

type faultyReader struct {
	f   *Faulty
	key string
	rc  io.ReadCloser
}

func (r *faultyReader) Read(p []byte) (int, error) {
	ft := r.f.check(OpRead, r.key)
	if ft != nil && !ft.Corrupt && !ft.After {
		return 0, faultErr(OpRead, r.key, ft)
	}
	n, err := r.rc.Read(p)
	if ft != nil && n > 0 {
		if ft.Corrupt {
			p[0] ^= 0xff
		} else {
			return n, faultErr(OpRead, r.key, ft)
		}
	}
	return n, err
}

func (r *faultyReader) Close() error { return r.rc.Close() }

// Stat implements blob.Reader.
func (f *Faulty) Stat(ctx context.Context, key string) (blob.Info, error) {
	if ft := f.check(OpStat, key); ft != nil {
		return blob.Info{}, faultErr(OpStat, key, ft)
	}
	return f.inner.Stat(ctx, key)
}

// List implements blob.Reader. An After fault lists everything, then fails.
func (f *Faulty) List(ctx context.Context, prefix string, fn func(blob.Info) error) error {
	ft := f.check(OpList, prefix)
	if ft != nil && !ft.After {
		return faultErr(OpList, prefix, ft)
	}
	if err := f.inner.List(ctx, prefix, fn); err != nil {
		return err
	}
	if ft != nil {
		return faultErr(OpList, prefix, ft)
	}
	return nil
}

// Create implements blob.Writer.
func (f *Faulty) Create(ctx context.Context, key string) (blob.Upload, error) {
	if ft := f.check(OpCreate, key); ft != nil {
		return nil, faultErr(OpCreate, key, ft)
	}
	u, err := f.inner.Create(ctx, key)
	if err != nil {
		return nil, err
	}
	return &faultyUpload{f: f, key: key, u: u}, nil
}

// PutIfAbsent implements blob.Writer.
func (f *Faulty) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	ft := f.check(OpPutIfAbsent, key)
	if ft != nil && !ft.After {
		return faultErr(OpPutIfAbsent, key, ft)
	}
	if err := f.inner.PutIfAbsent(ctx, key, data); err != nil {
		return err
	}
	if ft != nil {
		return faultErr(OpPutIfAbsent, key, ft)
	}
	return nil
}

// Delete implements blob.Writer.
func (f *Faulty) Delete(ctx context.Context, key string) error {
	ft := f.check(OpDelete, key)
	if ft != nil && !ft.After {
		return faultErr(OpDelete, key, ft)
	}
	if err := f.inner.Delete(ctx, key); err != nil {
		return err
	}
	if ft != nil {
		return faultErr(OpDelete, key, ft)
	}
	return nil
}

// faultyUpload fails like a real store: a failed Write poisons the upload
// (Commit then fails and leaves nothing), a failed Commit aborts.
type faultyUpload struct {
	f      *Faulty
	key    string
	u      blob.Upload
	failed error
}

func (u *faultyUpload) Write(p []byte) (int, error) {
	if u.failed != nil {
		return 0, u.failed
	}
	ft := u.f.check(OpWrite, u.key)
	if ft == nil {
		return u.u.Write(p)
	}
	n := 0
	if ft.After {
		n, _ = u.u.Write(p[:len(p)/2])
	}
	u.failed = faultErr(OpWrite, u.key, ft)
	return n, u.failed
}

func (u *faultyUpload) Commit(ctx context.Context) error {
	ft := u.f.check(OpCommit, u.key)
	if u.failed != nil {
		u.u.Abort()
		return u.failed
	}
	if ft != nil && !ft.After {
		u.u.Abort()
		return faultErr(OpCommit, u.key, ft)
	}
	if err := u.u.Commit(ctx); err != nil {
		return err
	}
	if ft != nil {
		return faultErr(OpCommit, u.key, ft)
	}
	return nil
}

func (u *faultyUpload) Abort() error {
	ft := u.f.check(OpAbort, u.key)
	err := u.u.Abort()
	if ft != nil {
		return faultErr(OpAbort, u.key, ft)
	}
	return err
}
