package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/minio/minio-go/v7"

	"github.com/holdfast-backup/holdfast/internal/pgtest"
	"github.com/holdfast-backup/holdfast/internal/s3test"
)

// TestS3Repository: a full and an incremental backup into a real S3 server
// (versitygw), verified and restored from there.
func TestS3Repository(t *testing.T) {
	pgtest.Require(t, 18)
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "backups", minio.MakeBucketOptions{Region: s3test.Region})
	c := pgtest.Start(t, pgtest.Options{Version: 18, Tablespaces: 1})
	c.Exec(t, "postgres", `CREATE TABLE t TABLESPACE ts1 AS SELECT g, md5(g::text) FROM generate_series(1, 50000) g`)

	e := newEnv(t)
	secret := filepath.Join(t.TempDir(), "s3.secret")
	if err := os.WriteFile(secret, []byte(s3.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	y := fmt.Sprintf(`repository: s3://backups/holdfast/prod
s3:
  endpoint: %s
  region: %s
  access_key: %s
  secret_key_file: %s
  tls: false
disks:
  - host: db1
    disk: main
    postgres: %q
`, s3.Addr, s3test.Region, s3.AccessKey, secret, c.ConnString(pgtest.BackupRole))
	if err := os.WriteFile(filepath.Join(e.configDir, "s3.yaml"), []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOLDFAST_STATE_DIR", t.TempDir())

	e.must("dump", "s3", "--level", "full")
	c.Exec(t, "postgres", `UPDATE t SET md5 = 'changed' WHERE g <= 500`)
	e.must("dump", "s3")
	want := c.Fingerprint(t)
	bs := e.backups("s3")
	if len(bs) != 2 || bs[1].Level != "incremental" {
		t.Fatalf("backups: %+v", bs)
	}
	e.must("verify", "s3")

	target := filepath.Join(t.TempDir(), "restored")
	e.must(append([]string{"restore", "s3", "latest", "--to", target,
		"--tablespace", c.TablespaceDirs[0] + "=" + filepath.Join(t.TempDir(), "ts")}, ownerArgs()...)...)
	if diff := cmp.Diff(want, pgtest.StartOnDataDir(t, 18, target).Fingerprint(t)); diff != "" {
		t.Fatalf("restore from S3 differs (-source +restored):\n%s", diff)
	}

	// Damage an object in the bucket: verify must notice.
	objs, _ := filepath.Glob(filepath.Join(s3.Root, "backups", "holdfast", "prod", "s3", "db1", "main", bs[0].ID, "base.tar.zst"))
	if len(objs) != 1 {
		t.Fatalf("base.tar.zst of %s not found under %s", bs[0].ID, s3.Root)
	}
	undo := flipByte(filepath.Base(objs[0]), 0.5)(t, filepath.Dir(objs[0]))
	if code, out, _ := e.run("verify", "s3"); code != ExitVerify {
		t.Fatalf("verify after damage in the bucket: exit %d\n%s", code, out)
	}
	undo()
}
