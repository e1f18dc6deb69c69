package blobtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/holdfast-backup/holdfast/internal/blob"
)

// Mem is an in-memory blob.Store with the same semantics as the real
// stores. It is safe for concurrent use. Objects are immutable once
// committed, so readers keep seeing the version they opened.
type Mem struct {
	mu   sync.Mutex
	objs map[string]memObject
}

type memObject struct {
	data []byte
	mod  time.Time
}

var _ blob.Store = (*Mem)(nil)

// NewMem returns an empty in-memory store.
func NewMem() *Mem {
	return &Mem{objs: make(map[string]memObject)}
}

func (m *Mem) get(ctx context.Context, op, key string) (memObject, error) {
	if err := blob.CheckKey(key); err != nil {
		return memObject{}, fmt.Errorf("mem: %s %q: %w", op, key, err)
	}
	if err := ctx.Err(); err != nil {
		return memObject{}, fmt.Errorf("mem: %s %s: %w", op, key, err)
	}
	m.mu.Lock()
	o, ok := m.objs[key]
	m.mu.Unlock()
	if !ok {
		return memObject{}, fmt.Errorf("mem: %s %s: %w", op, key, blob.ErrNotFound)
	}
	return o, nil
}

// Open implements blob.Reader.
func (m *Mem) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	o, err := m.get(ctx, "open", key)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(o.data)), nil
}

// OpenRange implements blob.Reader.
func (m *Mem) OpenRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	o, err := m.get(ctx, "open", key)
	if err != nil {
		return nil, err
	}
	size := int64(len(o.data))
	if off < 0 || off > size {
		return nil, fmt.Errorf("mem: open %s: offset %d of %d bytes: %w", key, off, size, blob.ErrRange)
	}
	end := size
	if n >= 0 && n < size-off {
		end = off + n
	}
	return io.NopCloser(bytes.NewReader(o.data[off:end])), nil
}

// Stat implements blob.Reader.
func (m *Mem) Stat(ctx context.Context, key string) (blob.Info, error) {
	o, err := m.get(ctx, "stat", key)
	if err != nil {
		return blob.Info{}, err
	}
	return blob.Info{Key: key, Size: int64(len(o.data)), ModTime: o.mod}, nil
}

// List implements blob.Reader. It lists a snapshot taken when it starts,
// so fn may write to the store.
func (m *Mem) List(ctx context.Context, prefix string, fn func(blob.Info) error) error {
	if err := blob.CheckPrefix(prefix); err != nil {
		return fmt.Errorf("mem: list %q: %w", prefix, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mem: list %s: %w", prefix, err)
	}
	m.mu.Lock()
	var infos []blob.Info
	for k, o := range m.objs {
		if strings.HasPrefix(k, prefix) {
			infos = append(infos, blob.Info{Key: k, Size: int64(len(o.data)), ModTime: o.mod})
		}
	}
	m.mu.Unlock()
	sort.Slice(infos, func(i, j int) bool { return infos[i].Key < infos[j].Key })
	for _, in := range infos {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("mem: list %s: %w", prefix, err)
		}
		if err := fn(in); err != nil {
			return err
		}
	}
	return nil
}

// Create implements blob.Writer.
func (m *Mem) Create(ctx context.Context, key string) (blob.Upload, error) {
	if err := blob.CheckKey(key); err != nil {
		return nil, fmt.Errorf("mem: create %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mem: create %s: %w", key, err)
	}
	return &memUpload{m: m, key: key, ctx: ctx}, nil
}

// PutIfAbsent implements blob.Writer.
func (m *Mem) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	if err := blob.CheckKey(key); err != nil {
		return fmt.Errorf("mem: put %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mem: put %s: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objs[key]; ok {
		return fmt.Errorf("mem: put %s: %w", key, blob.ErrExists)
	}
	m.objs[key] = memObject{data: bytes.Clone(data), mod: time.Now()}
	return nil
}

// Delete implements blob.Writer.
func (m *Mem) Delete(ctx context.Context, key string) error {
	if err := blob.CheckKey(key); err != nil {
		return fmt.Errorf("mem: delete %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mem: delete %s: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objs[key]; !ok {
		return fmt.Errorf("mem: delete %s: %w", key, blob.ErrNotFound)
	}
	delete(m.objs, key)
	return nil
}

// memUpload buffers the whole object: Mem is for tests, where objects are
// small. It keeps Create's ctx because the contract ties the upload's
// lifetime to it.
type memUpload struct {
	m    *Mem
	key  string
	ctx  context.Context
	buf  bytes.Buffer
	done bool
}

var errUploadDone = errors.New("upload already committed or aborted")

func (u *memUpload) Write(p []byte) (int, error) {
	if u.done {
		return 0, fmt.Errorf("mem: write %s: %w", u.key, errUploadDone)
	}
	if err := u.ctx.Err(); err != nil {
		return 0, fmt.Errorf("mem: write %s: %w", u.key, err)
	}
	return u.buf.Write(p)
}

func (u *memUpload) Commit(ctx context.Context) error {
	if u.done {
		return fmt.Errorf("mem: commit %s: %w", u.key, errUploadDone)
	}
	u.done = true
	for _, c := range []context.Context{ctx, u.ctx} {
		if err := c.Err(); err != nil {
			return fmt.Errorf("mem: commit %s: %w", u.key, err)
		}
	}
	u.m.mu.Lock()
	u.m.objs[u.key] = memObject{data: bytes.Clone(u.buf.Bytes()), mod: time.Now()}
	u.m.mu.Unlock()
	u.buf = bytes.Buffer{}
	return nil
}

func (u *memUpload) Abort() error {
	u.done = true
	u.buf = bytes.Buffer{}
	return nil
}
