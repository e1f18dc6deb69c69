package envtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// CacheEnv is the environment variable that overrides the cache directory.
const CacheEnv = "HOLDFAST_CACHE"

// Setup is the command that installs what Missing complains about.
const Setup = "scripts/setup-testenv.sh"

// CacheDir returns the directory scripts/setup-testenv.sh fills: $HOLDFAST_CACHE, or
// ".cache" in the nearest directory above the working directory that holds go.mod.
func CacheDir() (string, error) {
	if d := os.Getenv(CacheEnv); d != "" {
		return filepath.Abs(d)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find test cache: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, ".cache"), nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("find test cache: %w", err)
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("find test cache: no go.mod above %s: set %s", wd, CacheEnv)
		}
	}
}

// Cache returns CacheDir, or ends the test through Missing when it cannot be found.
func Cache(t testing.TB) string {
	t.Helper()
	d, err := CacheDir()
	if err != nil {
		Missing(t, "%v", err)
	}
	return d
}

// InCI reports whether the tests run in continuous integration (CI=true), where a missing
// server or tool fails the test instead of skipping it.
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing ends a test that needs something the environment lacks: it skips, or fails when
// CI=true. The message should say what is missing, where it was looked for, and how to get
// it (usually: run scripts/setup-testenv.sh).
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (CI=true: missing test dependencies fail the run)", msg)
	}
	t.Skipf("%s (skipped; with CI=true this fails)", msg)
}

// Executable ends the test through Missing unless path is an executable file; what names it
// in the message.
func Executable(t testing.TB, what, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		Missing(t, "%s not found at %s: run %s", what, path, Setup)
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. Another process may
// take it before the caller binds it: servers started on it should retry with a new port.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("envtest: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
