package cli

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/holdfast-backup/holdfast/internal/pgtest"
)

// notUTF8 is a file name PostgreSQL's manifest must hex-encode.
const notUTF8 = "holdfast-\xff\xfe-file"

// populate gives a cluster what every restore test needs: several
// databases, a table in a user tablespace, an index, and a file whose name
// is not UTF-8.
func populate(t *testing.T, c *pgtest.Cluster, twoSegments bool) {
	t.Helper()
	c.CreateDatabase(t, "app")
	c.CreateDatabase(t, "second db")
	c.Exec(t, "postgres", `CREATE TABLE t1 AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 5000) g`)
	c.Exec(t, "app", `CREATE TABLE orders (id bigint PRIMARY KEY, note text) TABLESPACE ts1`)
	c.Exec(t, "app", `INSERT INTO orders SELECT g, repeat('n', g % 300) FROM generate_series(1, 20000) g`)
	c.Exec(t, "app", `CREATE INDEX ON orders (note)`)
	c.Exec(t, "second db", `CREATE TABLE "odd name" ("x y" int, z jsonb)`)
	c.Exec(t, "second db", `INSERT INTO "odd name" SELECT g, jsonb_build_object('g', g) FROM generate_series(1, 3000) g`)
	if twoSegments {
		// One row per 8 kB page: 131200 pages is just over the 1 GiB segment
		// size, so the table has files 16xxx and 16xxx.1, at little cost.
		c.Exec(t, "app", `CREATE TABLE big (id int, pad char(1000)) WITH (fillfactor = 10)`)
		c.Exec(t, "app", `INSERT INTO big SELECT g, 'p' FROM generate_series(1, 131200) g`)
	}
	c.Exec(t, "postgres", `CHECKPOINT`)
	p := filepath.Join(c.DataDir, notUTF8)
	if err := os.WriteFile(p, []byte("not utf-8 name\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	chownPostgres(t, p)
}

func TestFullBackupRestore(t *testing.T) {
	t.Parallel()
	for _, v := range pgtest.Versions {
		t.Run("pg"+strconv.Itoa(v), func(t *testing.T) {
			t.Parallel()
			pgtest.Require(t, v)
			c := pgtest.Start(t, pgtest.Options{Version: v, Tablespaces: 1, DataChecksums: true})
			populate(t, c, v == 17)
			e := newEnv(t)
			// Over TCP, as a backup server reaches its databases (reads are
			// batched there); the incremental test goes through the socket.
			e.writeConfig("daily", diskSpec{host: "db1", disk: "pg main", conn: c.TCPConnString(pgtest.BackupRole) + " replication=true"})

			e.must("dump", "daily")
			want := c.Fingerprint(t) // nothing changes after the backup

			bs := e.backups("daily")
			if len(bs) != 1 {
				t.Fatalf("backups: %d, want 1", len(bs))
			}
			b := bs[0]
			if b.Level != "full" || b.Parent != nil || b.PGVersion != v || b.Host != "db1" || b.Disk != "pg main" ||
				b.SystemIdentifier == "" || b.Timeline != 1 || b.EndLSN <= b.StartLSN || b.SizeBytes <= 0 || b.StoredBytes <= 0 ||
				!b.FinishedAt.After(b.StartedAt) {
				t.Fatalf("backups --json: %+v", b)
			}
			dir := e.backupDir(b)
			pgVerifyTar(t, dir, v, nil)
			e.must("verify", "daily")

			target := filepath.Join(t.TempDir(), "restored")
			newTS := filepath.Join(t.TempDir(), "new ts")
			args := append([]string{"restore", "daily", b.ID, "--to", target, "--tablespace", c.TablespaceDirs[0] + "=" + newTS}, ownerArgs()...)
			e.must(args...)
			if _, err := os.Stat(filepath.Join(target, notUTF8)); err != nil {
				t.Errorf("file with a non-UTF-8 name not restored: %v", err)
			}
			if link, err := os.Readlink(filepath.Join(target, "pg_tblspc")); err == nil {
				t.Fatalf("pg_tblspc is a link to %s", link)
			}
			pgVerifyPlain(t, target, v)
			r := pgtest.StartOnDataDir(t, v, target)
			if diff := cmp.Diff(want, r.Fingerprint(t)); diff != "" {
				t.Fatalf("restored data differs (-source +restored):\n%s", diff)
			}
		})
	}
}
