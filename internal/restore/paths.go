package restore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrUnsafe reports an archive member that would write outside the target.
var ErrUnsafe = errors.New("restore: unsafe archive member")

// ErrTarget reports a target directory that cannot be used.
var ErrTarget = errors.New("restore: unusable target")

// cleanMember turns a tar member name into a relative path inside the
// target, or fails. Names are relative, slash-separated, without "." or ".."
// components; the "./" prefix PostgreSQL uses for two entries is accepted.
func cleanMember(name string) (string, error) {
	n := strings.TrimPrefix(name, "./")
	n = strings.TrimSuffix(n, "/")
	if n == "" || strings.HasPrefix(n, "/") || strings.ContainsRune(n, 0) || strings.Contains(n, "\\") {
		return "", fmt.Errorf("%w: %q", ErrUnsafe, name)
	}
	for _, seg := range strings.Split(n, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", fmt.Errorf("%w: %q", ErrUnsafe, name)
		}
	}
	return n, nil
}

// tablespaceLink reports whether rel is pg_tblspc/<oid> and returns the oid.
func tablespaceLink(rel string) (uint32, bool) {
	rest, ok := strings.CutPrefix(rel, "pg_tblspc/")
	if !ok || strings.Contains(rest, "/") {
		return 0, false
	}
	v, err := strconv.ParseUint(rest, 10, 32)
	if err != nil || v == 0 {
		return 0, false
	}
	return uint32(v), true
}

// insideTablespaceLink reports members that would be written through a
// pg_tblspc symlink; tablespace contents come in their own archives.
func insideTablespaceLink(rel string) bool {
	rest, ok := strings.CutPrefix(rel, "pg_tblspc/")
	return ok && strings.Contains(rest, "/")
}

// prepareDir makes dir an empty directory with the given mode, creating it
// and its parents if needed, and refuses one with anything in it.
func prepareDir(dir string, mode os.FileMode) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("%w: %s is not an absolute path", ErrTarget, dir)
	}
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return fmt.Errorf("%w: %v", ErrTarget, err)
		}
		if err := os.Mkdir(dir, mode); err != nil {
			return fmt.Errorf("%w: %v", ErrTarget, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("%w: %v", ErrTarget, err)
	case !fi.IsDir():
		return fmt.Errorf("%w: %s exists and is not a directory", ErrTarget, dir)
	}
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrTarget, err)
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err != nil && len(names) == 0 && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %v", ErrTarget, err)
	}
	if len(names) > 0 {
		return fmt.Errorf("%w: %s is not empty; restore only into an empty or new directory", ErrTarget, dir)
	}
	return os.Chmod(dir, mode)
}
