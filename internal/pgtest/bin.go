package pgtest

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/holdfast-backup/holdfast/internal/envtest"
)

// Versions are the PostgreSQL majors Holdfast supports and tests against.
var Versions = []int{15, 16, 17, 18}

func checkVersion(t testing.TB, version int) {
	t.Helper()
	for _, v := range Versions {
		if v == version {
			return
		}
	}
	t.Fatalf("pgtest: PostgreSQL %d is not a supported major: use one of %v", version, Versions)
}

// Require returns the directory holding initdb, pg_ctl and postgres of the given major. When
// they are missing it skips the test, or fails it when CI=true.
func Require(t testing.TB, version int) string {
	t.Helper()
	checkVersion(t, version)
	bin := filepath.Join(envtest.Cache(t), "pg", strconv.Itoa(version), "bin")
	for _, p := range []string{"initdb", "postgres"} {
		envtest.Executable(t, "PostgreSQL "+strconv.Itoa(version)+" "+p, filepath.Join(bin, p))
	}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup(osUser); err != nil {
			envtest.Missing(t, "running as root, but there is no OS user %q to run PostgreSQL as: install postgresql-15 (%s does)", osUser, envtest.Setup)
		}
		if _, err := runuserPath(); err != nil {
			envtest.Missing(t, "running as root, but runuser is not installed: install util-linux")
		}
	}
	return bin
}

// Tools returns the directory holding the client tools of the given major: pg_basebackup,
// pg_verifybackup, pg_combinebackup, pg_waldump, pg_controldata and psql (and pgbench on 15).
// 15's are Debian's; 17's and 18's are built by scripts/setup-testenv.sh. No client tools of
// 16 exist on this platform, so asking for them is a test bug. When the tools are missing it
// skips the test, or fails it when CI=true.
func Tools(t testing.TB, version int) string {
	t.Helper()
	checkVersion(t, version)
	cache := envtest.Cache(t)
	var bin string
	switch version {
	case 15:
		bin = filepath.Join(cache, "pg", "15", "bin")
	case 16:
		t.Fatalf("pgtest: there are no PostgreSQL 16 client tools (no Debian suite carries 16): test 16 through Holdfast itself")
	default:
		bin = filepath.Join(cache, "pg-tools", strconv.Itoa(version), "bin")
	}
	for _, p := range []string{"pg_basebackup", "pg_verifybackup", "pg_combinebackup", "psql"} {
		if version == 15 && p == "pg_combinebackup" {
			continue // new in 17
		}
		envtest.Executable(t, "PostgreSQL "+strconv.Itoa(version)+" client tool "+p, filepath.Join(bin, p))
	}
	return bin
}

// osUser is the OS user PostgreSQL runs as when the tests run as root.
const osUser = "postgres"

func runuserPath() (string, error) {
	if p, err := exec.LookPath("runuser"); err == nil {
		return p, nil
	}
	return exec.LookPath("/usr/sbin/runuser")
}

// asPostgres returns a command that runs name with args as the OS user postgres when the test
// runs as root, and as the current user otherwise. The working directory is dir, so the
// program never starts in a directory it cannot enter.
func asPostgres(dir, name string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		ru, err := runuserPath()
		if err != nil {
			ru = "runuser" // Require has already reported it; let exec fail visibly.
		}
		cmd = exec.Command(ru, append([]string{"-u", osUser, "--", name}, args...)...)
	} else {
		cmd = exec.Command(name, args...)
	}
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	return cmd
}

// giveToPostgres makes path (recursively, symlinks not followed) owned by the OS user
// postgres when running as root.
func giveToPostgres(path string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup(osUser)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return filepath.WalkDir(path, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}
