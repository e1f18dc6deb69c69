package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/holdfast-backup/holdfast/internal/pgtest"
)

// TestIncrementalRefusals: every way an incremental backup can be
// impossible gives a clear error and commits nothing with --level
// incremental, and a full backup that says why with auto.
func TestIncrementalRefusals(t *testing.T) {
	t.Parallel()
	t.Run("server older than 17", func(t *testing.T) {
		t.Parallel()
		pgtest.Require(t, 16)
		c := pgtest.Start(t, pgtest.Options{Version: 16})
		e := newEnv(t)
		e.writeConfig("c", diskSpec{host: "db1", disk: "d", conn: c.ConnString(pgtest.BackupRole)})
		e.must("dump", "c")
		e.expectFailure(ExitFailure, []string{"PostgreSQL 16", "17"}, "dump", "c", "--level", "incremental")
		e.expectCommitted(1)
		if out := e.must("dump", "c"); !strings.Contains(out, "full backup") || !strings.Contains(out, "PostgreSQL 16") {
			t.Errorf("auto on 16 should take a full backup and say why: %s", out)
		}
	})

	pgtest.Require(t, 17)
	t.Run("summarize_wal off", func(t *testing.T) {
		t.Parallel()
		c := pgtest.Start(t, pgtest.Options{Version: 17, NoWALSummarizer: true})
		e := newEnv(t)
		e.writeConfig("c", diskSpec{host: "db1", disk: "d", conn: c.ConnString(pgtest.BackupRole)})
		e.must("dump", "c")
		e.expectFailure(ExitFailure, []string{"summarize_wal"}, "dump", "c", "--level", "incremental")
		e.expectCommitted(1)
	})
	t.Run("WAL summaries missing", func(t *testing.T) {
		t.Parallel()
		// The full backup is taken while summarization is off, and the WAL
		// from its start is recycled before summarization is turned on: the
		// summarizer (which otherwise catches up on WAL still in pg_wal, as
		// observed on 17.10) cannot cover the gap.
		c := pgtest.Start(t, pgtest.Options{Version: 17, NoWALSummarizer: true, Settings: map[string]string{"wal_keep_size": "0", "min_wal_size": "32MB"}})
		e := newEnv(t)
		e.writeConfig("c", diskSpec{host: "db1", disk: "d", conn: c.ConnString(pgtest.BackupRole)})
		e.must("dump", "c")
		c.Exec(t, "postgres", `CREATE TABLE churn (x int)`)
		for i := 0; i < 4; i++ {
			c.Exec(t, "postgres", `INSERT INTO churn SELECT generate_series(1, 1000)`)
			c.Exec(t, "postgres", `SELECT pg_switch_wal()`)
			c.Exec(t, "postgres", `CHECKPOINT`)
		}
		c.Exec(t, "postgres", `ALTER SYSTEM SET summarize_wal = on`)
		c.Exec(t, "postgres", `SELECT pg_reload_conf()`)
		c.Exec(t, "postgres", `CREATE TABLE after AS SELECT generate_series(1, 1000) AS x`)
		e.expectFailure(ExitFailure, []string{"summar"}, "dump", "c", "--level", "incremental")
		e.expectCommitted(1)
		out := e.must("dump", "c")
		if !strings.Contains(out, "full backup") || !strings.Contains(out, "full because the server refused an incremental backup") {
			t.Errorf("auto should fall back to a full backup and say why: %s", out)
		}
		e.expectCommitted(2)
	})
	t.Run("parent deleted or damaged", func(t *testing.T) {
		t.Parallel()
		c := pgtest.Start(t, pgtest.Options{Version: 17})
		e := newEnv(t)
		e.writeConfig("c", diskSpec{host: "db1", disk: "d", conn: c.ConnString(pgtest.BackupRole)})
		e.must("dump", "c")
		b := e.backups("c")[0]
		dir := e.backupDir(b)
		// Damaged parent: its manifest no longer matches backup.json.
		undo := flipByte("backup_manifest", 0.5)(t, dir)
		e.expectFailure(ExitFailure, []string{b.ID, "backup_manifest"}, "dump", "c", "--level", "incremental")
		e.expectCommitted(1)
		if out := e.must("dump", "c"); !strings.Contains(out, "full because the newest backup "+b.ID+" cannot be a parent") {
			t.Errorf("auto with a damaged parent should take a full backup and say why: %s", out)
		}
		undo()
		// Deleted parent: nothing to build on.
		for _, x := range e.backups("c") {
			if err := os.RemoveAll(e.backupDir(x)); err != nil {
				t.Fatal(err)
			}
		}
		e.expectFailure(ExitFailure, []string{"no backup yet"}, "dump", "c", "--level", "incremental")
		if _, err := os.Stat(filepath.Join(e.repoDir, "holdfast-repo.json")); err != nil {
			t.Fatal(err)
		}
		e.expectCommitted(0)
	})
}
