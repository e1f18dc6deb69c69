package config_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/holdfast-backup/holdfast/internal/config"
)

func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "daily.yaml"), minimal, 0o644)
	c, err := config.Load(dir, "daily")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "daily" || c.Path != filepath.Join(dir, "daily.yaml") || len(c.Disks) != 1 {
		t.Errorf("Load = %+v", c)
	}

	if err := os.Symlink("daily.yaml", filepath.Join(dir, "alias.yaml")); err != nil {
		t.Fatal(err)
	}
	if c, err := config.Load(dir, "alias"); err != nil || c.Name != "alias" {
		t.Errorf("Load through a symbolic link inside the directory: %+v, %v", c, err)
	}
}

func TestLoadErrors(t *testing.T) {
	top := t.TempDir()
	dir := filepath.Join(top, "etc")
	empty := filepath.Join(top, "empty")
	for _, d := range []string{dir, empty, filepath.Join(dir, "dir.yaml")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(top, "outside.yaml"), minimal, 0o600)
	writeFile(t, filepath.Join(dir, "weekly.yaml"), minimal, 0o600)
	writeFile(t, filepath.Join(dir, "monthly.yml"), minimal, 0o600)
	writeFile(t, filepath.Join(dir, "notes.txt"), "", 0o600)
	writeFile(t, filepath.Join(dir, "bad name.yaml"), "", 0o600)
	writeFile(t, filepath.Join(dir, ".hidden.yaml"), "", 0o600)
	if err := os.Symlink("../outside.yaml", filepath.Join(dir, "escape.yaml")); err != nil {
		t.Fatal(err)
	}
	withPassword := strings.Replace(minimal, "user=backup", "user=backup password=s3cret", 1)
	writeFile(t, filepath.Join(dir, "open.yaml"), withPassword, 0o644)
	writeFile(t, filepath.Join(dir, "group.yaml"), withPassword, 0o640)
	writeFile(t, filepath.Join(dir, "s3.yaml"), "repository: s3://backups\ndisks:"+disk+"s3:\n  access_key: a\n  secret_key: abc\n", 0o604)

	tests := []struct {
		dir, name string
		want      string
		is        error
	}{
		{dir, "../outside", `invalid config name "../outside": it starts with '.'; use letters, digits, '.', '_' and '-', starting with a letter or digit`, config.ErrInvalidName},
		{filepath.Join(top, "nonexistent"), "a/b", `invalid config name "a/b": it contains '/'; use letters, digits, '.', '_' and '-', starting with a letter or digit`, config.ErrInvalidName},
		{dir, strings.Repeat("a", 65), `invalid config name "` + strings.Repeat("a", 65) + `": it is 65 bytes long; use at most 64`, config.ErrInvalidName},
		{dir, "daily", "config daily: " + dir + "/daily.yaml does not exist; known configs: escape, group, open, s3, weekly", config.ErrNotFound},
		{dir, "monthly", "config monthly: " + dir + "/monthly.yaml does not exist; rename monthly.yml to monthly.yaml", config.ErrNotFound},
		{empty, "daily", "config daily: " + empty + "/daily.yaml does not exist; create it (there are no configs in " + empty + ")", config.ErrNotFound},
		{filepath.Join(top, "nonexistent"), "daily", "config daily: open " + top + "/nonexistent: no such file or directory; create the directory, or set HOLDFAST_CONFIG_DIR to another", fs.ErrNotExist},
		{dir, "escape", "config escape: " + dir + "/escape.yaml is a symbolic link leading out of " + dir + "; put the file itself there", nil},
		{dir, "dir", "config dir: " + dir + "/dir.yaml is not a regular file", nil},
		{dir, "open", dir + "/open.yaml:5:15: disks[0].postgres: holds a secret, and any user can read this file (mode 0644); run chmod o-r " + dir + "/open.yaml, or move the password to a password file (passfile=... or PGPASSFILE)", nil},
		{dir, "s3", dir + "/s3.yaml:8:15: s3.secret_key: holds a secret, and any user can read this file (mode 0604); run chmod o-r " + dir + "/s3.yaml, or move the key to secret_key_file or secret_key_env", nil},
	}
	for _, tt := range tests {
		c, err := config.Load(tt.dir, tt.name)
		if err == nil {
			t.Errorf("Load(%s, %s) = %+v, want an error", tt.dir, tt.name, c)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("Load(%s, %s):\n got %v\nwant %s", tt.dir, tt.name, err, tt.want)
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("Load(%s, %s) = %v, not %v", tt.dir, tt.name, err, tt.is)
		}
	}
	if _, err := config.Load(dir, "group"); err != nil {
		t.Errorf("Load of a group-readable file with a password: %v", err)
	}
}

func TestLoadSecretFile(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open.secret")
	writeFile(t, open, "abc\n", 0o644)
	twoLines := filepath.Join(dir, "two.secret")
	writeFile(t, twoLines, "abc\ndef\n", 0o600)
	for _, tt := range []struct{ path, want string }{
		{open, "any user can read " + open + " (mode 0644); run chmod o-r " + open},
		{twoLines, twoLines + " has more than one line; keep only the secret key"},
		{dir, dir + " is not a regular file; point secret_key_file at a file holding the key"},
	} {
		data := "repository: s3://backups\ndisks:" + disk + "s3:\n  access_key: a\n  secret_key_file: " + tt.path + "\n"
		_, err := config.Parse(file, []byte(data), "daily")
		if want := file + ":8:20: s3.secret_key_file: " + tt.want; err == nil || err.Error() != want {
			t.Errorf("secret_key_file %s:\n got %v\nwant %s", tt.path, err, want)
		}
	}
}

func TestList(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"weekly.yaml", "daily.yaml", "a.b-c_d.yaml", "daily.yml", "notes.txt", "-x.yaml", "bad name.yaml", ".yaml"} {
		writeFile(t, filepath.Join(dir, name), "", 0o600)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("daily.yaml", filepath.Join(dir, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	got, err := config.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a.b-c_d", "daily", "link", "weekly"}, got); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	if _, err := config.List(filepath.Join(dir, "nonexistent")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("List of a missing directory: %v", err)
	}
}

func TestDir(t *testing.T) {
	t.Setenv(config.EnvDir, "")
	if got := config.Dir(""); got != "/etc/holdfast" {
		t.Errorf("Dir() = %q, want /etc/holdfast", got)
	}
	t.Setenv(config.EnvDir, "/srv/holdfast/etc")
	if got := config.Dir(""); got != "/srv/holdfast/etc" {
		t.Errorf("Dir() with %s = %q", config.EnvDir, got)
	}
	if got := config.Dir("/opt/etc"); got != "/opt/etc" {
		t.Errorf("Dir(/opt/etc) = %q", got)
	}
}
