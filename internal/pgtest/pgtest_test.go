package pgtest_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/holdfast-backup/holdfast/internal/pgtest"
)

func setting(t *testing.T, c *pgtest.Cluster, name string) string {
	t.Helper()
	return c.Query(t, "postgres", "SELECT current_setting($1)", name)[0][0].(string)
}

func TestStartOptions(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t, pgtest.Options{
		Version:       18,
		DataChecksums: true,
		Tablespaces:   2,
		Settings:      map[string]string{"work_mem": "5MB", "application_name": "it's quoted"},
	})
	for name, want := range map[string]string{
		"data_checksums":          "on",
		"wal_level":               "replica",
		"summarize_wal":           "on",
		"work_mem":                "5MB",
		"application_name":        "it's quoted",
		"listen_addresses":        "127.0.0.1",
		"max_wal_senders":         "10",
		"port":                    strconv.Itoa(c.Port),
		"unix_socket_directories": c.SocketDir,
	} {
		if got := setting(t, c, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if len(c.SocketDir+"/.s.PGSQL.65535") > 107 {
		t.Errorf("socket directory %s too long for a socket path", c.SocketDir)
	}

	rows := c.Query(t, "postgres", "SELECT spcname, pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname LIKE 'ts%' ORDER BY 1")
	var got [][]any
	for i, d := range c.TablespaceDirs {
		if !strings.Contains(filepath.Base(d), " ") {
			t.Errorf("tablespace directory %q has no space in its name", d)
		}
		got = append(got, []any{fmt.Sprintf("ts%d", i+1), d})
	}
	if diff := cmp.Diff(got, rows); diff != "" {
		t.Errorf("tablespaces (-TablespaceDirs +pg_tablespace):\n%s", diff)
	}
	if len(c.TablespaceDirs) != 2 {
		t.Errorf("TablespaceDirs = %q, want 2", c.TablespaceDirs)
	}
}

func TestStartDefaults(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t, pgtest.Options{Version: 18, NoWALSummarizer: true})
	// initdb 18 turns checksums on by default; the option's zero value must still mean off.
	if got := setting(t, c, "data_checksums"); got != "off" {
		t.Errorf("data_checksums = %q, want off", got)
	}
	if got := setting(t, c, "summarize_wal"); got != "off" {
		t.Errorf("summarize_wal = %q, want off", got)
	}
	got := c.Query(t, "postgres", "SELECT rolreplication, rolcanlogin, rolsuper FROM pg_roles WHERE rolname = $1", pgtest.BackupRole)
	if diff := cmp.Diff([][]any{{true, true, false}}, got); diff != "" {
		t.Errorf("role %s (-want +got):\n%s", pgtest.BackupRole, diff)
	}
}

func connect(t *testing.T, connstr string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, connstr)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
	return err
}

func TestAuth(t *testing.T) {
	for _, tc := range []struct {
		auth    string
		version int
	}{
		{"scram-sha-256", 17},
		{"md5", 15},
	} {
		t.Run(tc.auth, func(t *testing.T) {
			t.Parallel()
			c := pgtest.Start(t, pgtest.Options{Version: tc.version, Auth: tc.auth, Password: "p w'd"})
			if c.Password != "p w'd" {
				t.Fatalf("Password = %q", c.Password)
			}
			for _, connstr := range []string{c.ReplConnString(pgtest.BackupRole), c.TCPConnString(pgtest.BackupRole) + " replication=true"} {
				if err := connect(t, connstr); err != nil {
					t.Errorf("connect with the password: %v", err)
				}
				err := connect(t, connstr+" password=wrong")
				if err == nil || !strings.Contains(err.Error(), "password authentication failed") {
					t.Errorf("connect with a wrong password: got %v, want password authentication failed", err)
				}
			}
		})
	}
}

func TestNoReplication(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts pgtest.Options
		want string
	}{
		{"role", pgtest.Options{Version: 16, NoReplicationRole: true}, "permission denied to start WAL sender"},
		{"hba", pgtest.Options{Version: 16, NoReplicationHBA: true}, "no pg_hba.conf entry for replication connection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := pgtest.Start(t, tc.opts)
			err := connect(t, c.ReplConnString(pgtest.BackupRole))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("replication connection: got %v, want an error containing %q", err, tc.want)
			}
			// Normal connections still work.
			if err := connect(t, c.ConnString(pgtest.BackupRole)); err == nil {
				t.Errorf("IDENTIFY_SYSTEM on a normal connection succeeded")
			} else if strings.Contains(err.Error(), tc.want) {
				t.Errorf("normal connection refused: %v", err)
			}
		})
	}
}

func TestKillRestartReload(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t, pgtest.Options{Version: 17})
	c.Exec(t, "postgres", "CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
	c.Exec(t, "postgres", "CHECKPOINT")
	c.Exec(t, "postgres", "INSERT INTO t VALUES (1001)")

	c.Kill(t)
	if err := connect(t, c.ConnString("postgres")); err == nil {
		t.Fatalf("connected to a killed server")
	}
	c.Restart(t) // crash recovery
	if got := c.Query(t, "postgres", "SELECT count(*) FROM t")[0][0]; got != int64(1001) {
		t.Errorf("rows after crash recovery = %v, want 1001", got)
	}

	c.Exec(t, "postgres", "ALTER SYSTEM SET work_mem = '7MB'")
	c.Reload(t)
	deadline := time.Now().Add(10 * time.Second)
	for setting(t, c, "work_mem") != "7MB" {
		if time.Now().After(deadline) {
			t.Fatalf("work_mem not reloaded")
		}
		time.Sleep(20 * time.Millisecond)
	}

	c.Stop(t)
	c.Restart(t)
	if got := setting(t, c, "work_mem"); got != "7MB" {
		t.Errorf("work_mem after restart = %q", got)
	}
}

// TestRestoreRoundTrip is what a restore test looks like: back up with PostgreSQL's own
// pg_basebackup (tablespace included, its path mapped), start the copy with StartOnDataDir and
// compare fingerprints.
func TestRestoreRoundTrip(t *testing.T) {
	t.Parallel()
	tools := pgtest.Tools(t, 17)
	src := pgtest.Start(t, pgtest.Options{Version: 17, Tablespaces: 1, DataChecksums: true})
	src.CreateDatabase(t, "app db")
	src.Exec(t, "app db", "CREATE SCHEMA \"odd schema\"")
	src.Exec(t, "app db", `CREATE TABLE "odd schema"."T 1" (id int, v text) TABLESPACE ts1`)
	src.Exec(t, "app db", `INSERT INTO "odd schema"."T 1" SELECT g, md5(g::text) FROM generate_series(1, 5000) g`)
	src.Exec(t, "app db", "CREATE TABLE p (id int, v text) PARTITION BY RANGE (id)")
	src.Exec(t, "app db", "CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100)")
	src.Exec(t, "app db", "INSERT INTO p SELECT g, NULL FROM generate_series(0, 99) g")
	src.Exec(t, "postgres", "CREATE TABLE empty (x int)")
	want := src.Fingerprint(t)
	for _, k := range []string{`app db."odd schema"."T 1"`, "app db.public.p", "app db.public.p1", "postgres.public.empty"} {
		if _, ok := want[k]; !ok {
			t.Errorf("fingerprint has no %s: %v", k, want)
		}
	}

	dst := t.TempDir()
	data, ts := filepath.Join(dst, "data"), filepath.Join(dst, "ts copy")
	out, err := exec.Command(filepath.Join(tools, "pg_basebackup"), "-d", src.ConnString(pgtest.BackupRole),
		"-D", data, "-Fp", "-X", "stream", "-c", "fast",
		"-T", src.TablespaceDirs[0]+"="+ts).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_basebackup: %v: %s", err, out)
	}

	dup := pgtest.StartOnDataDir(t, 17, data)
	if dup.Port == src.Port || dup.DataDir != data {
		t.Errorf("copy runs on port %d, data %s", dup.Port, dup.DataDir)
	}
	if diff := cmp.Diff([]string{ts}, dup.TablespaceDirs); diff != "" {
		t.Errorf("TablespaceDirs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, dup.Fingerprint(t)); diff != "" {
		t.Errorf("fingerprint of the copy (-source +copy):\n%s", diff)
	}

	dup.Exec(t, "app db", `UPDATE "odd schema"."T 1" SET v = 'changed' WHERE id = 4242`)
	got := dup.Fingerprint(t)
	if got[`app db."odd schema"."T 1"`] == want[`app db."odd schema"."T 1"`] {
		t.Errorf("fingerprint did not change after an UPDATE")
	}
}

func TestToolsOf15(t *testing.T) {
	bin := pgtest.Tools(t, 15)
	if _, err := os.Stat(filepath.Join(bin, "pgbench")); err != nil {
		t.Errorf("pgbench 15: %v", err)
	}
}
