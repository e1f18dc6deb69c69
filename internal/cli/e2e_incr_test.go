package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/holdfast-backup/holdfast/internal/pgtest"
)

// TestIncrementalChain takes a full backup and three incrementals with every
// kind of change the server treats specially in between, restores the newest
// and a middle one, and checks the result against PostgreSQL's own
// pg_combinebackup run on the chain extracted with plain tar.
func TestIncrementalChain(t *testing.T) {
	t.Parallel()
	for _, v := range []int{17, 18} {
		t.Run("pg"+strconv.Itoa(v), func(t *testing.T) {
			t.Parallel()
			pgtest.Require(t, v)
			c := pgtest.Start(t, pgtest.Options{Version: v, Tablespaces: 1, DataChecksums: true})
			e := newEnv(t)
			e.writeConfig("daily", diskSpec{host: "db1", disk: "main", conn: c.ReplConnString(pgtest.BackupRole)})

			c.CreateDatabase(t, "app")
			c.CreateDatabase(t, "gone")
			c.Exec(t, "gone", `CREATE TABLE g AS SELECT generate_series(1, 1000) AS x`)
			c.Exec(t, "app", `CREATE TABLE acc (id int PRIMARY KEY, bal int, filler text)`)
			c.Exec(t, "app", `INSERT INTO acc SELECT g, 0, md5(g::text) || md5((g*7)::text) FROM generate_series(1, 600000) g`)
			c.Exec(t, "app", `CREATE TABLE t_drop AS SELECT generate_series(1, 5000) AS x`)
			c.Exec(t, "app", `CREATE TABLE t_trunc (x int, y text) TABLESPACE ts1`)
			c.Exec(t, "app", `INSERT INTO t_trunc SELECT g, md5(g::text) FROM generate_series(1, 20000) g`)
			c.Exec(t, "app", `CREATE TABLE t_shrink AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 100000) g`)
			c.Exec(t, "app", `CREATE TABLE t_vf AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 50000) g`)
			c.Exec(t, "app", `VACUUM ANALYZE`)

			var fps []map[string]string
			dump := func(level string) backupJSON {
				t.Helper()
				e.must("dump", "daily", "--level", level)
				fps = append(fps, c.Fingerprint(t))
				bs := e.backups("daily")
				return bs[len(bs)-1]
			}
			full := dump("full")

			// 1: about 1% of the big table, a new table with an index, a dropped table.
			c.Exec(t, "app", `UPDATE acc SET bal = bal + 1 WHERE id <= 6000`)
			c.Exec(t, "app", `CREATE TABLE new1 AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 3000) g`)
			c.Exec(t, "app", `CREATE INDEX ON new1 (v)`)
			c.Exec(t, "app", `DROP TABLE t_drop`)
			inc1 := dump("auto")

			// 2: TRUNCATE in a tablespace, a relation truncated by VACUUM, VACUUM FULL, a new database.
			c.Exec(t, "app", `TRUNCATE t_trunc`)
			c.Exec(t, "app", `INSERT INTO t_trunc VALUES (1, 'after truncate')`)
			c.Exec(t, "app", `DELETE FROM t_shrink WHERE id > 1000`)
			c.Exec(t, "app", `VACUUM t_shrink`)
			c.Exec(t, "app", `VACUUM FULL t_vf`)
			c.CreateDatabase(t, "born")
			c.Exec(t, "born", `CREATE TABLE b AS SELECT generate_series(1, 2000) AS x`)
			inc2 := dump("incremental")

			// 3: a dropped database, a new tablespace, a few updates.
			c.Exec(t, "postgres", `DROP DATABASE gone`)
			// Beside pgtest's own tablespace, where the server's user can reach.
			tsNew := filepath.Join(filepath.Dir(c.TablespaceDirs[0]), "new ts")
			if err := os.Mkdir(tsNew, 0o700); err != nil {
				t.Fatal(err)
			}
			chownPostgres(t, tsNew)
			c.Exec(t, "postgres", `CREATE TABLESPACE ts_new LOCATION '`+tsNew+`'`)
			c.Exec(t, "app", `CREATE TABLE in_new (x int) TABLESPACE ts_new`)
			c.Exec(t, "app", `INSERT INTO in_new SELECT generate_series(1, 777)`)
			c.Exec(t, "app", `UPDATE acc SET bal = bal + 1 WHERE id < 50`)
			inc3 := dump("auto")

			chain := []backupJSON{full, inc1, inc2, inc3}
			for i, b := range chain {
				wantLevel := map[bool]string{true: "full", false: "incremental"}[i == 0]
				if b.Level != wantLevel {
					t.Fatalf("backup %d is %s, want %s", i, b.Level, wantLevel)
				}
				if i > 0 && (b.Parent == nil || *b.Parent != chain[i-1].ID) {
					t.Fatalf("backup %d has parent %v, want %s", i, b.Parent, chain[i-1].ID)
				}
				pgVerifyTar(t, e.backupDir(b), v, nil)
			}
			t.Logf("stored: full %d bytes, incrementals %d (%.1f%%), %d, %d", full.StoredBytes,
				inc1.StoredBytes, 100*inc1.ShareOfFull, inc2.StoredBytes, inc3.StoredBytes)
			if inc1.ShareOfFull > 0.25 {
				t.Errorf("an incremental after changing 1%% of the big table stores %.1f%% of the full", 100*inc1.ShareOfFull)
			}
			e.must("verify", "daily")

			// Restore the newest and a middle backup.
			newest := filepath.Join(t.TempDir(), "newest")
			e.must(append([]string{"restore", "daily", inc3.ID, "--to", newest,
				"--tablespace", c.TablespaceDirs[0] + "=" + filepath.Join(t.TempDir(), "ts1 restored"),
				"--tablespace", tsNew + "=" + filepath.Join(t.TempDir(), "ts new restored")}, ownerArgs()...)...)
			pgVerifyPlain(t, newest, v)
			middle := filepath.Join(t.TempDir(), "middle")
			e.must(append([]string{"restore", "daily", inc1.ID, "--to", middle,
				"--tablespace", c.TablespaceDirs[0] + "=" + filepath.Join(t.TempDir(), "ts1 middle")}, ownerArgs()...)...)
			pgVerifyPlain(t, middle, v)

			// The oracle: plain tar + pg_combinebackup on the same chain.
			var dirs []string
			for _, b := range chain {
				dirs = append(dirs, untarBackup(t, e.backupDir(b)))
			}
			combined := filepath.Join(t.TempDir(), "combined")
			args := append(append([]string{}, dirs...), "-o", combined)
			finalTS, _ := filepath.Glob(filepath.Join(dirs[3], "pg_tblspc", "*"))
			for _, l := range finalTS {
				old, err := os.Readlink(l)
				if err != nil {
					t.Fatal(err)
				}
				args = append(args, "-T", old+"="+filepath.Join(t.TempDir(), "combined ts"))
			}
			out, err := exec.Command(filepath.Join(pgtest.Tools(t, v), "pg_combinebackup"), args...).CombinedOutput()
			if err != nil {
				t.Fatalf("pg_combinebackup: %v\n%s", err, out)
			}

			got := pgtest.StartOnDataDir(t, v, newest).Fingerprint(t)
			if diff := cmp.Diff(fps[3], got); diff != "" {
				t.Errorf("newest restore differs from the source at backup time (-want +got):\n%s", diff)
			}
			oracle := pgtest.StartOnDataDir(t, v, combined).Fingerprint(t)
			if diff := cmp.Diff(oracle, got); diff != "" {
				t.Errorf("Holdfast's restore differs from pg_combinebackup's (-pg_combinebackup +holdfast):\n%s", diff)
			}
			if diff := cmp.Diff(fps[1], pgtest.StartOnDataDir(t, v, middle).Fingerprint(t)); diff != "" {
				t.Errorf("middle restore differs from the source at backup time (-want +got):\n%s", diff)
			}
		})
	}
}
