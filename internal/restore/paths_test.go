package restore

import (
	"path/filepath"
	"strings"
	"testing"
)

func FuzzCleanMember(f *testing.F) {
	for _, s := range []string{"base/1/1259", "./pg_wal/archive_status/", "../x", "/etc/passwd", "a//b", "a/./b", "pg_tblspc/16385/", "a\\b", "a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		rel, err := cleanMember(name)
		if err != nil {
			return
		}
		// Whatever was accepted stays inside any root it is joined to.
		root := "/restore/target"
		p := filepath.Join(root, filepath.FromSlash(rel))
		if !strings.HasPrefix(p, root+"/") {
			t.Fatalf("cleanMember(%q) = %q escapes to %s", name, rel, p)
		}
		if rel != filepath.ToSlash(filepath.Clean(rel)) {
			t.Fatalf("cleanMember(%q) = %q is not clean", name, rel)
		}
	})
}
