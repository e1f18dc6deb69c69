package envtest_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/minio/minio-go/v7"

	"github.com/holdfast-backup/holdfast/internal/amandatest"
	"github.com/holdfast-backup/holdfast/internal/pgtest"
	"github.com/holdfast-backup/holdfast/internal/s3test"
)

// TestPostgres starts every supported major and talks to it the way Holdfast does: a physical
// replication connection as role backup, IDENTIFY_SYSTEM.
func TestPostgres(t *testing.T) {
	for _, v := range pgtest.Versions {
		t.Run(strconv.Itoa(v), func(t *testing.T) {
			t.Parallel()
			c := pgtest.Start(t, pgtest.Options{Version: v, DataChecksums: true})

			got := c.Query(t, "postgres", "SELECT current_setting('server_version_num')::int / 10000")[0][0]
			if got != int32(v) {
				t.Fatalf("server major = %v, want %d (is %s the right tree?)", got, v, c.BinDir)
			}

			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			conn, err := pgconn.Connect(ctx, c.ReplConnString(pgtest.BackupRole))
			if err != nil {
				t.Fatalf("replication connection as %s: %v", pgtest.BackupRole, err)
			}
			defer conn.Close(ctx)
			res, err := conn.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
			if err != nil {
				t.Fatalf("IDENTIFY_SYSTEM: %v", err)
			}
			if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) < 3 {
				t.Fatalf("IDENTIFY_SYSTEM: unexpected result %+v", res)
			}
			row, fields := res[0].Rows[0], res[0].FieldDescriptions
			sysid, err := strconv.ParseUint(string(row[0]), 10, 64)
			if err != nil || sysid == 0 {
				t.Errorf("IDENTIFY_SYSTEM systemid = %q: %v", row[0], err)
			}
			tli, err := strconv.ParseUint(string(row[1]), 10, 32)
			if err != nil || tli != 1 {
				t.Errorf("IDENTIFY_SYSTEM timeline = %q, want 1 (%v)", row[1], err)
			}
			// The timeline column is int4 on 15 and int8 from 16 on; both arrive as text.
			wantOID := uint32(pgtype.Int8OID)
			if v == 15 {
				wantOID = pgtype.Int4OID
			}
			if fields[1].DataTypeOID != wantOID {
				t.Errorf("IDENTIFY_SYSTEM timeline type OID = %d, want %d", fields[1].DataTypeOID, wantOID)
			}
			if !strings.Contains(string(row[2]), "/") {
				t.Errorf("IDENTIFY_SYSTEM xlogpos = %q, want an LSN", row[2])
			}
			t.Logf("PostgreSQL %d: system identifier %d, timeline %d, xlogpos %s", v, sysid, tli, row[2])

			if v >= 17 {
				// The summarizer starts with the server; give it a moment.
				deadline := time.Now().Add(30 * time.Second)
				for {
					st := c.Query(t, "postgres", "SELECT summarized_tli, summarized_lsn, pending_lsn, summarizer_pid FROM pg_get_wal_summarizer_state()")
					if st[0][3] != nil {
						t.Logf("PostgreSQL %d: WAL summarizer state %v", v, st[0])
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("WAL summarizer not running after 30s: state %v", st[0])
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		})
	}
}

// TestTools runs the client tools built from Debian's sources: they are the oracles of the
// integration tests.
func TestTools(t *testing.T) {
	for _, v := range []int{17, 18} {
		bin := pgtest.Tools(t, v)
		for _, p := range []string{"pg_basebackup", "pg_verifybackup", "pg_combinebackup", "pg_waldump", "pg_controldata", "psql"} {
			out := run(t, filepath.Join(bin, p), "--version")
			if want := fmt.Sprintf("%s (PostgreSQL) %d.", p, v); !strings.HasPrefix(out, want) {
				t.Errorf("%s --version = %q, want %q…", p, out, want)
			}
		}
	}
}

func TestAmanda(t *testing.T) {
	am := amandatest.Require(t)
	for _, p := range []string{am.Amservice, am.Amandad} {
		out := run(t, p, "--version")
		if want := filepath.Base(p) + "-3.5.1"; out != want {
			t.Errorf("%s --version = %q, want %q", p, out, want)
		}
	}
}

func TestVersitygw(t *testing.T) {
	s := s3test.Start(t)
	resp, err := http.Get(s.Endpoint + "/health")
	if err != nil {
		t.Fatalf("health check: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("health check: %s", resp.Status)
	}

	s.CreateBucket(t, "smoke", minio.MakeBucketOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := s.Client(t)
	body := []byte("holdfast")
	if _, err := c.PutObject(ctx, "smoke", "a/b", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put: %v", err)
	}
	obj, err := c.GetObject(ctx, "smoke", "a/b", minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	defer obj.Close()
	var got bytes.Buffer
	if _, err := got.ReadFrom(obj); err != nil {
		t.Fatalf("get: %v", err)
	}
	if !bytes.Equal(got.Bytes(), body) {
		t.Fatalf("get = %q, want %q", got.Bytes(), body)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}
