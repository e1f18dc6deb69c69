package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdfast-backup/holdfast/internal/envtest"
	"github.com/holdfast-backup/holdfast/internal/pgtest"
)

// failVersion is the server the failure-path tests run against.
const failVersion = 18

// expectFailure runs a command that must fail with code and one line on
// stderr containing every one of wants, and returns that line.
func (e *env) expectFailure(code int, wants []string, args ...string) string {
	e.t.Helper()
	got, out, errOut := e.run(args...)
	if got != code {
		e.t.Fatalf("holdfast %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), got, code, out, errOut)
	}
	line := errorLine(e.t, errOut)
	for _, w := range wants {
		if !strings.Contains(line, w) {
			e.t.Errorf("error %q does not say %q", line, w)
		}
	}
	return line
}

// repoState lists the committed backups and any leftover objects.
// errorLine checks that stderr ends with exactly one error line, preceded
// only by informational log lines (progress), and returns it.
func errorLine(t *testing.T, stderr string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "holdfast: ") {
		t.Fatalf("stderr does not end with one error line: %q", stderr)
	}
	for _, l := range lines[:len(lines)-1] {
		if !strings.Contains(l, "level=INFO") {
			t.Fatalf("stderr has more than the error line: %q", l)
		}
	}
	return last
}

func (e *env) repoState() (committed, leftovers []string) {
	e.t.Helper()
	_ = filepath.WalkDir(e.repoDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(e.repoDir, p)
		switch {
		case rel == "holdfast-repo.json", strings.HasPrefix(rel, ".locks/"):
		case filepath.Base(p) == "backup.json":
			committed = append(committed, filepath.Dir(rel))
		default:
			if _, err := os.Stat(filepath.Join(filepath.Dir(p), "backup.json")); err != nil {
				leftovers = append(leftovers, rel)
			}
		}
		return nil
	})
	return committed, leftovers
}

func (e *env) expectCommitted(n int) {
	e.t.Helper()
	committed, leftovers := e.repoState()
	if len(committed) != n || len(leftovers) != 0 {
		e.t.Fatalf("repository: %d committed %v, leftovers %v; want %d committed and no leftovers", len(committed), committed, leftovers, n)
	}
}

func TestDumpFailures(t *testing.T) {
	t.Parallel()
	pgtest.Require(t, failVersion)
	good := pgtest.Start(t, pgtest.Options{Version: failVersion})

	t.Run("unreachable server", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.writeConfig("c", diskSpec{host: "db1", disk: "d", conn: "host=127.0.0.1 port=1 user=backup sslmode=disable connect_timeout=5"})
		e.expectFailure(ExitConnect, []string{"db1", "127.0.0.1"}, "dump", "c")
		e.expectCommitted(0)
	})
	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		c := pgtest.Start(t, pgtest.Options{Version: failVersion, Auth: "scram-sha-256", Password: "right-secret"})
		e := newEnv(t)
		conn := fmt.Sprintf("host=%s port=%d user=backup password=wrong-secret-42 sslmode=disable", c.SocketDir, c.Port)
		e.writeConfig("c", diskSpec{host: "db1", disk: "d", conn: conn})
		line := e.expectFailure(ExitConnect, []string{"password"}, "dump", "c")
		if strings.Contains(line, "wrong-secret-42") {
			t.Fatalf("the password leaked into the error: %s", line)
		}
		e.expectCommitted(0)
	})
	t.Run("role without REPLICATION", func(t *testing.T) {
		t.Parallel()
		c := pgtest.Start(t, pgtest.Options{Version: failVersion, NoReplicationRole: true})
		e := newEnv(t)
		e.writeConfig("c", diskSpec{host: "db1", disk: "d", conn: c.ConnString(pgtest.BackupRole)})
		e.expectFailure(ExitConnect, []string{"REPLICATION"}, "dump", "c")
		e.expectCommitted(0)
	})
	t.Run("pg_hba without replication line", func(t *testing.T) {
		t.Parallel()
		c := pgtest.Start(t, pgtest.Options{Version: failVersion, NoReplicationHBA: true})
		e := newEnv(t)
		e.writeConfig("c", diskSpec{host: "db1", disk: "d", conn: c.ConnString(pgtest.BackupRole)})
		e.expectFailure(ExitConnect, []string{"pg_hba.conf", "replication"}, "dump", "c")
		e.expectCommitted(0)
	})
	t.Run("wal_level minimal", func(t *testing.T) {
		t.Parallel()
		c := pgtest.Start(t, pgtest.Options{Version: failVersion, NoWALSummarizer: true,
			Settings: map[string]string{"wal_level": "minimal", "max_wal_senders": "0"}})
		e := newEnv(t)
		e.writeConfig("c", diskSpec{host: "db1", disk: "d", conn: c.ConnString(pgtest.BackupRole)})
		e.expectFailure(ExitConnect, []string{"wal"}, "dump", "c")
		e.expectCommitted(0)
	})
	t.Run("disk not in config", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.writeConfig("c", diskSpec{host: "db1", disk: "d", conn: good.ConnString(pgtest.BackupRole)})
		e.expectFailure(ExitConfig, []string{"nosuchdisk"}, "dump", "c", "db1", "nosuchdisk")
		e.expectFailure(ExitConfig, []string{"db9"}, "dump", "c", "db9")
	})
	t.Run("config with unknown key", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.writeConfig("c", diskSpec{host: "db1", disk: "d", conn: good.ConnString(pgtest.BackupRole), extra: "    compresion: zstd\n"})
		e.expectFailure(ExitConfig, []string{"c.yaml:6", "compresion", "compression"}, "dump", "c")
		e.expectFailure(ExitConfig, []string{"../x"}, "dump", "../x")
	})
	t.Run("server killed mid-backup", func(t *testing.T) {
		t.Parallel()
		c := pgtest.Start(t, pgtest.Options{Version: failVersion})
		e := newEnv(t)
		e.writeConfig("c", diskSpec{host: "db1", disk: "d", conn: c.ConnString(pgtest.BackupRole), extra: "    max_rate: 2048\n"})
		e.must("dump", "c")
		c.Exec(t, "postgres", `CREATE TABLE big AS SELECT g, md5(g::text) AS v FROM generate_series(1, 300000) g`)
		// Throttled to 2 MB/s, the backup takes many seconds: kill the
		// server once the repository shows the new backup being written.
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(60 * time.Second)
			for time.Now().Before(deadline) {
				if _, left := e.repoState(); len(left) > 0 {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(500 * time.Millisecond)
			c.Kill(t)
		}()
		code, _, errOut := e.run("dump", "c")
		wg.Wait()
		if code == 0 {
			t.Fatalf("dump with the server killed: exit 0")
		}
		errorLine(t, errOut)
		e.expectCommitted(1)
		e.must("verify", "c")
	})
	t.Run("repository file system full", func(t *testing.T) {
		t.Parallel()
		if os.Geteuid() != 0 {
			envtest.Missing(t, "root, to mount a small tmpfs")
		}
		c := pgtest.Start(t, pgtest.Options{Version: failVersion})
		e := newEnv(t)
		if err := os.MkdirAll(e.repoDir, 0o700); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", e.repoDir).CombinedOutput(); err != nil {
			t.Fatalf("mount tmpfs: %v %s", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("umount", "-l", e.repoDir).Run() })
		e.writeConfig("c", diskSpec{host: "db1", disk: "d", conn: c.ConnString(pgtest.BackupRole)})
		e.must("dump", "c")
		c.Exec(t, "postgres", `CREATE TABLE big AS SELECT g, md5(g::text) || md5((g+1)::text) AS v FROM generate_series(1, 400000) g`)
		e.expectFailure(ExitStorage, []string{"no space left"}, "dump", "c", "--level", "full")
		e.expectCommitted(1)
		e.must("verify", "c")
	})
}

func TestCheck(t *testing.T) {
	t.Parallel()
	pgtest.Require(t, 17)
	good := pgtest.Start(t, pgtest.Options{Version: 17})
	noSummaries := pgtest.Start(t, pgtest.Options{Version: 17, NoWALSummarizer: true})
	noRole := pgtest.Start(t, pgtest.Options{Version: 17, NoReplicationRole: true})
	e := newEnv(t)
	e.writeConfig("c",
		diskSpec{host: "db1", disk: "good", conn: good.ConnString(pgtest.BackupRole)},
		diskSpec{host: "db1", disk: "auto without summaries", conn: noSummaries.ConnString(pgtest.BackupRole)},
		diskSpec{host: "db2", disk: "incremental without summaries", conn: noSummaries.ConnString(pgtest.BackupRole), extra: "    level: incremental\n"},
		diskSpec{host: "db2", disk: "no replication role", conn: noRole.ConnString(pgtest.BackupRole)},
	)
	out := e.must("check", "c", "db1")
	for _, want := range []string{"OK repository", `OK db1 "good"`, `WARNING db1 "auto without summaries"`, "0 problem(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("check db1 does not say %q:\n%s", want, out)
		}
	}
	code, out, _ := e.run("check", "c")
	if code != ExitFailure {
		t.Fatalf("check with failing disks: exit %d, want %d", code, ExitFailure)
	}
	for _, want := range []string{`ERROR db2 "incremental without summaries": `, `ERROR db2 "no replication role": `, "REPLICATION", "2 problem(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("check does not say %q:\n%s", want, out)
		}
	}
}
