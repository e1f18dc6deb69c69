package config_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/holdfast-backup/holdfast/internal/blob"
	"github.com/holdfast-backup/holdfast/internal/config"
)

func TestValidName(t *testing.T) {
	for _, name := range []string{"daily", "Daily-2", "a", "0", "db1.weekly_full", "a..", strings.Repeat("x", 64)} {
		if err := config.ValidName(name); err != nil {
			t.Errorf("ValidName(%q) = %v", name, err)
		}
	}
	for _, name := range []string{"", ".", "..", ".hidden", "-x", "_x", "a/b", `a\b`, "a b", "daily\n", "é", "a\x00", strings.Repeat("x", 65)} {
		if err := config.ValidName(name); !errors.Is(err, config.ErrInvalidName) {
			t.Errorf("ValidName(%q) = %v, want ErrInvalidName", name, err)
		}
	}
}

func TestValidHost(t *testing.T) {
	for _, h := range []string{"db1", "DB1", "db1.example.com", "10.0.0.1", "a-b.c-d", "x", strings.Repeat("a", 63) + ".b"} {
		if err := config.ValidHost(h); err != nil {
			t.Errorf("ValidHost(%q) = %v", h, err)
		}
	}
	for _, h := range []string{"", ".", "..", "db1.", ".db1", "db_1", "db 1", "-db", "db-", "a..b", "db1/x", "é", strings.Repeat("a", 64), strings.Repeat("a.", 127) + "a"} {
		if err := config.ValidHost(h); !errors.Is(err, config.ErrInvalidHost) {
			t.Errorf("ValidHost(%q) = %v, want ErrInvalidHost", h, err)
		}
	}
}

func TestValidDisk(t *testing.T) {
	for _, d := range []string{"pg-main", "pg two", "/var/lib/postgresql/16/main", ".", "..", "données", "日本", "a%b", strings.Repeat("a", 255), strings.Repeat("é", 42)} {
		if err := config.ValidDisk(d); err != nil {
			t.Errorf("ValidDisk(%q) = %v", d, err)
		}
	}
	for _, tt := range []struct{ disk, want string }{
		{"", `invalid disk name "": it is empty; give the disk a name, e.g. pg-main`},
		{"a\x00b", `invalid disk name "a\x00b": it contains the control character U+0000; remove it`},
		{"a\nb", `invalid disk name "a\nb": it contains the control character U+000A; remove it`},
		{"a\u0085b", `invalid disk name "a\u0085b": it contains the control character U+0085; remove it`},
		{"\xff", `invalid disk name "\xff": it is not valid UTF-8; write the name in UTF-8`},
		{" pg", `invalid disk name " pg": it starts or ends with white space; remove it`},
		{"pg\u00a0", `invalid disk name "pg\u00a0": it starts or ends with white space; remove it`},
		{strings.Repeat("a", 256), `invalid disk name "` + strings.Repeat("a", 256) + `": it is too long: 256 bytes once encoded for the repository, at most 255; use a shorter name`},
		{strings.Repeat("/", 86), `invalid disk name "` + strings.Repeat("/", 86) + `": it is too long: 258 bytes once encoded for the repository, at most 255; use a shorter name`},
	} {
		err := config.ValidDisk(tt.disk)
		if err == nil || err.Error() != tt.want || !errors.Is(err, config.ErrInvalidDisk) {
			t.Errorf("ValidDisk(%q):\n got %v\nwant %s", tt.disk, err, tt.want)
		}
	}
}

func TestDiskKey(t *testing.T) {
	for _, tt := range []struct{ disk, want string }{
		{"pg-main", "pg-main"},
		{"pg two", "pg%20two"},
		{"/var/lib/pgsql", "%2Fvar%2Flib%2Fpgsql"},
		{".", "%2E"},
		{"..", "%2E."},
		{".hidden", "%2Ehidden"},
		{"a.b_c-D9", "a.b_c-D9"},
		{"50%", "50%25"},
		{"é", "%C3%A9"},
		{"", "%"},
	} {
		if got := config.DiskKey(tt.disk); got != tt.want {
			t.Errorf("DiskKey(%q) = %q, want %q", tt.disk, got, tt.want)
		}
	}
}

// unkey decodes a DiskKey, to show that the encoding loses nothing.
func unkey(k string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		if k[i] != '%' {
			b.WriteByte(k[i])
			continue
		}
		if i+2 >= len(k) {
			return "", false
		}
		v, err := strconv.ParseUint(k[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), true
}

func FuzzDiskKey(f *testing.F) {
	for _, s := range []string{"pg-main", "pg two", "/var/lib/pgsql", ".", "..", "%", "%25", "", "é", ".a.", "a\x00"} {
		f.Add(s, "pg-main")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ka, kb := config.DiskKey(a), config.DiskKey(b)
		if a != b && ka == kb {
			t.Fatalf("DiskKey(%q) = DiskKey(%q) = %q", a, b, ka)
		}
		if ka == "" || ka == "." || ka == ".." || ka[0] == '.' {
			t.Fatalf("DiskKey(%q) = %q", a, ka)
		}
		for i := 0; i < len(ka); i++ {
			c := ka[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._-%", c) >= 0) {
				t.Fatalf("DiskKey(%q) = %q holds %q", a, ka, c)
			}
		}
		if a != "" {
			if back, ok := unkey(ka); !ok || back != a {
				t.Fatalf("DiskKey(%q) = %q decodes to %q, %v", a, ka, back, ok)
			}
		}
		if config.ValidDisk(a) == nil && (len(ka) > config.MaxDiskKeyLen || blob.CheckKey(ka) != nil) {
			t.Fatalf("valid disk %q has key %q (%d bytes, CheckKey %v)", a, ka, len(ka), blob.CheckKey(ka))
		}
	})
}
