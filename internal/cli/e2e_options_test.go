package cli

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/holdfast-backup/holdfast/internal/pgtest"
)

// TestServerCompressionAndWALFetch: archives the server compresses (gzip,
// lz4, zstd) are decompressed on arrival, checked and stored as usual; with
// wal: fetch the WAL comes inside base.tar. Each restores and starts.
func TestServerCompressionAndWALFetch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		version          int
		compression, wal string
	}{
		// The npm builds of 16-18 have no lz4 or zstd; Debian's 15 has both.
		{16, "gzip:1", "fetch"},
		{15, "lz4", "stream"},
		{15, "zstd:level=1", "fetch"},
	} {
		t.Run(fmt.Sprintf("pg%d %s %s", tc.version, tc.compression, tc.wal), func(t *testing.T) {
			t.Parallel()
			pgtest.Require(t, tc.version)
			c := pgtest.Start(t, pgtest.Options{Version: tc.version, Tablespaces: 1})
			c.Exec(t, "postgres", `CREATE TABLE t AS SELECT g, md5(g::text) FROM generate_series(1, 30000) g`)
			c.Exec(t, "postgres", `CREATE TABLE ts_t TABLESPACE ts1 AS SELECT generate_series(1, 5000) AS x`)
			e := newEnv(t)
			e.writeConfig("c", diskSpec{host: "db1", disk: "d", conn: c.ConnString(pgtest.BackupRole),
				extra: fmt.Sprintf("    server_compression: %q\n    wal: %s\n", tc.compression, tc.wal)})
			code, _, errOut := e.run("--verbose", "dump", "c")
			suffix := map[string]string{"gzip": ".gz", "lz4": ".lz4", "zstd": ".zst"}[strings.Split(tc.compression, ":")[0]]
			if code != 0 || !strings.Contains(errOut, "name=base.tar"+suffix) {
				t.Fatalf("dump: exit %d; the server should have sent base.tar%s:\n%s", code, suffix, errOut)
			}
			want := c.Fingerprint(t)
			b := e.backups("c")[0]
			pgVerifyTar(t, e.backupDir(b), tc.version, nil)
			e.must("verify", "c")
			target := filepath.Join(t.TempDir(), "restored")
			e.must(append([]string{"restore", "c", b.ID, "--to", target,
				"--tablespace", c.TablespaceDirs[0] + "=" + filepath.Join(t.TempDir(), "ts")}, ownerArgs()...)...)
			if diff := cmp.Diff(want, pgtest.StartOnDataDir(t, tc.version, target).Fingerprint(t)); diff != "" {
				t.Fatalf("restored data differs (-source +restored):\n%s", diff)
			}
		})
	}
}
