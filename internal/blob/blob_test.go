package blob_test

import (
	"errors"
	"path"
	"strings"
	"testing"

	"github.com/holdfast-backup/holdfast/internal/blob"
)

func TestCheckKey(t *testing.T) {
	good := []string{"a", "a/b", "cfg/host/disk/20260101T000000Z/base.tar.zst", ".hidden", "..x", "x..", "a b", "ü"}
	bad := []string{"", "/", "/a", "a/", "a//b", "./a", "a/.", "a/./b", "..", "../a", "a/../b", "a/..", "a\x00b", `a\b`}
	for _, k := range good {
		if err := blob.CheckKey(k); err != nil {
			t.Errorf("CheckKey(%q) = %v, want nil", k, err)
		}
	}
	for _, k := range bad {
		if err := blob.CheckKey(k); !errors.Is(err, blob.ErrBadKey) {
			t.Errorf("CheckKey(%q) = %v, want ErrBadKey", k, err)
		}
	}
}

func TestCheckPrefix(t *testing.T) {
	for _, p := range []string{"", "a", "a/", "a/b", "a/b/", ".x"} {
		if err := blob.CheckPrefix(p); err != nil {
			t.Errorf("CheckPrefix(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range []string{"/", "//", "a//", "/a", "../", "a/../", "a/./", "\x00"} {
		if err := blob.CheckPrefix(p); !errors.Is(err, blob.ErrBadKey) {
			t.Errorf("CheckPrefix(%q) = %v, want ErrBadKey", p, err)
		}
	}
}

// FuzzCheckKey: a key CheckKey accepts is a clean, relative path that
// stays below its root.
func FuzzCheckKey(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "a//b", "/abs", "a/./b", "x\x00", ".", "..a/b.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, k string) {
		if blob.CheckKey(k) != nil {
			return
		}
		if path.Clean(k) != k || path.IsAbs(k) || k == "." || strings.HasPrefix(k, "../") || k == ".." ||
			strings.ContainsAny(k, "\x00\\") {
			t.Errorf("CheckKey accepted %q", k)
		}
		if strings.Contains("/"+k+"/", "/../") {
			t.Errorf("CheckKey accepted %q with a .. segment", k)
		}
	})
}
