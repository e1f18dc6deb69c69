// Package job enforces one dump per config at a time across processes: the
// CLI's dump, the amdumpd DUMP and any scheduler take the same lock, so BUSY
// means exactly "a dump of this config is running now".
package job

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ErrBusy means a dump of the config is running now.
var ErrBusy = errors.New("job: a dump of this config is running now")

// Lock is a held per-config lock. The kernel releases it if the process
// dies, so a crash never leaves a config stuck.
type Lock struct{ f *os.File }

// Acquire takes the dump lock of config in dir without waiting. dir is
// created if missing.
func Acquire(dir, config string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lock directory %s: %w", dir, err)
	}
	p := filepath.Join(dir, config+".lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("config %s: %w", config, ErrBusy)
		}
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return &Lock{f: f}, nil
}

// Release gives the lock back.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Held reports whether a dump of config is running now, without taking the
// lock for longer than the check.
func Held(dir, config string) bool {
	l, err := Acquire(dir, config)
	if err != nil {
		return errors.Is(err, ErrBusy)
	}
	l.Release()
	return false
}
