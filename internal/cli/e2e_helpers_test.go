package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/holdfast-backup/holdfast/internal/pgtest"
)

// env is one test's Holdfast installation: a config dir and a repository.
type env struct {
	t         *testing.T
	configDir string
	repoDir   string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	root := t.TempDir()
	e := &env{t: t, configDir: filepath.Join(root, "etc"), repoDir: filepath.Join(root, "repo")}
	if err := os.MkdirAll(e.configDir, 0o755); err != nil {
		t.Fatal(err)
	}
	return e
}

// diskSpec is one disk line of a test config.
type diskSpec struct {
	host, disk, conn string
	extra            string // more YAML keys, each line indented by 4
}

func (e *env) writeConfig(name string, disks ...diskSpec) {
	e.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "repository: %q\ndisks:\n", e.repoDir)
	for _, d := range disks {
		fmt.Fprintf(&b, "  - host: %s\n    disk: %q\n    postgres: %q\n", d.host, d.disk, d.conn)
		if d.extra != "" {
			b.WriteString(d.extra)
		}
	}
	if err := os.WriteFile(filepath.Join(e.configDir, name+".yaml"), []byte(b.String()), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// run drives the whole CLI in-process with this env's config dir.
func (e *env) run(args ...string) (int, string, string) {
	e.t.Helper()
	var out, errb bytes.Buffer
	full := append([]string{"--config-dir", e.configDir}, args...)
	code := Main(context.Background(), full, strings.NewReader(""), &out, &errb)
	e.t.Logf("holdfast %s → %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	return code, out.String(), errb.String()
}

// must runs a command that has to succeed.
func (e *env) must(args ...string) string {
	e.t.Helper()
	code, out, errOut := e.run(args...)
	if code != 0 {
		e.t.Fatalf("holdfast %s: exit %d: %s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func (e *env) backups(config string) []backupJSON {
	e.t.Helper()
	var bs []backupJSON
	if err := json.Unmarshal([]byte(e.must("backups", config, "--json")), &bs); err != nil {
		e.t.Fatalf("backups --json: %v", err)
	}
	return bs
}

// backupDir is where a backup's objects are in the local repository.
func (e *env) backupDir(b backupJSON) string {
	matches, _ := filepath.Glob(filepath.Join(e.repoDir, b.Config, b.Host, "*", b.ID))
	if len(matches) != 1 {
		e.t.Fatalf("backup %s: found %v", b.ID, matches)
	}
	return matches[0]
}

// verifierOf picks the pg_verifybackup for a server major: 18 reads v1
// manifests (15, 16) and tar archives, but checks pg_control with its own
// layout, so it rejects 17's backups ("global/pg_control: CRC is
// incorrect", pg_basebackup 17's own tar included); 17's tool does the job
// there, on plain directories only.
func verifierOf(t *testing.T, major int) (tools string, tar bool) {
	if major == 17 {
		return pgtest.Tools(t, 17), false
	}
	return pgtest.Tools(t, 18), true
}

// pgVerifyTar runs PostgreSQL's pg_verifybackup on a stored backup, as
// stored: the archives and backup_manifest, linked into a directory without
// Holdfast's own metadata files. For 17 the archives are unpacked with GNU
// tar first, which also proves plain tar reads them.
func pgVerifyTar(t *testing.T, dir string, major int, tablespaces map[string]string) {
	t.Helper()
	tools, tarOK := verifierOf(t, major)
	view := t.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range ents {
		n := en.Name()
		if n == "backup.json" || strings.HasSuffix(n, ".idx") {
			continue
		}
		if err := os.Link(filepath.Join(dir, n), filepath.Join(view, n)); err != nil {
			t.Fatal(err)
		}
	}
	if !tarOK {
		view = untarBackup(t, view)
	}
	args := []string{"-n", view}
	if tarOK {
		args = append([]string{"-F", "t"}, args...)
	}
	out, err := exec.Command(filepath.Join(tools, "pg_verifybackup"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_verifybackup %d on %s: %v\n%s", major, view, err, out)
	}
	t.Logf("pg_verifybackup (stored backup): %s", bytes.TrimSpace(out))
}

// untarBackup extracts a stored backup with GNU tar into a plain data
// directory (tablespaces into their own directories, linked from
// pg_tblspc) and returns it.
func untarBackup(t *testing.T, dir string) string {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	for _, en := range ents {
		n := en.Name()
		if n != "backup_manifest" && !strings.HasSuffix(n, ".tar") && !strings.HasSuffix(n, ".tar.zst") {
			continue // Holdfast's own files
		}
		stem, _, _ := strings.Cut(n, ".")
		dest := data
		switch {
		case n == "backup_manifest":
			copyFile(t, filepath.Join(dir, n), filepath.Join(data, n))
			continue
		case stem == "pg_wal":
			dest = filepath.Join(data, "pg_wal")
		case stem != "base":
			dest = filepath.Join(t.TempDir(), "ts-"+stem)
		}
		if err := os.MkdirAll(dest, 0o700); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("tar", "--zstd", "-xf", filepath.Join(dir, n), "-C", dest).CombinedOutput(); err != nil {
			t.Fatalf("tar --zstd -xf %s: %v\n%s", n, err, out)
		}
		if stem != "base" && stem != "pg_wal" {
			defer func(stem, dest string) {
				link := filepath.Join(data, "pg_tblspc", stem)
				os.Remove(link)
				if err := os.Symlink(dest, link); err != nil {
					t.Fatal(err)
				}
			}(stem, dest)
		}
	}
	return data
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// pgVerifyPlain runs pg_verifybackup on a restored data directory, parsing
// its WAL too when the tool's major matches the server's (pg_waldump reads
// only its own major's WAL).
func pgVerifyPlain(t *testing.T, dir string, major int) {
	t.Helper()
	tools, _ := verifierOf(t, major)
	args := []string{dir}
	if major != 18 && major != 17 {
		args = append([]string{"-n"}, args...)
	}
	out, err := exec.Command(filepath.Join(tools, "pg_verifybackup"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_verifybackup %v: %v\n%s", args, err, out)
	}
	t.Logf("pg_verifybackup (restored): %s", bytes.TrimSpace(out))
}

func ownerArgs() []string {
	if os.Geteuid() == 0 {
		return []string{"--owner", "postgres"}
	}
	return nil
}

// chownPostgres hands a file the test created inside a data directory to
// the server's OS user when running as root.
func chownPostgres(t *testing.T, p string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(p, uid, gid); err != nil {
		t.Fatal(err)
	}
}

func currentUser(t *testing.T) string {
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}
