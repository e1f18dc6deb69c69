package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/holdfast-backup/holdfast/internal/pgtest"
	"github.com/holdfast-backup/holdfast/internal/repo"
)

// damage changes one stored object and returns a function that undoes it.
type damage func(t *testing.T, dir string) (undo func())

// rewriteObject replaces the object's bytes with change(orig), or removes
// the object when change returns nil.
func rewriteObject(name string, change func(orig []byte) []byte) damage {
	return func(t *testing.T, dir string) func() {
		p := filepath.Join(dir, name)
		orig, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if b := change(orig); b == nil {
			os.Remove(p)
		} else if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return func() { os.WriteFile(p, orig, 0o600) }
	}
}

func flipByte(name string, at float64) damage {
	return rewriteObject(name, func(orig []byte) []byte {
		b := append([]byte(nil), orig...)
		b[int(float64(len(b)-1)*at)] ^= 0x20
		return b
	})
}

func removeObject(name string) damage {
	return rewriteObject(name, func([]byte) []byte { return nil })
}

func truncateObject(name string) damage {
	return rewriteObject(name, func(orig []byte) []byte { return orig[:len(orig)/2] })
}

// appendByte makes an object one byte longer than backup.json says.
func appendByte(name string) damage {
	return rewriteObject(name, func(orig []byte) []byte { return append(append([]byte(nil), orig...), '\n') })
}

func TestVerifyFindsDamage(t *testing.T) {
	t.Parallel()
	pgtest.Require(t, 18)
	c := pgtest.Start(t, pgtest.Options{Version: 18, Tablespaces: 1})
	c.Exec(t, "postgres", `CREATE TABLE t AS SELECT g, md5(g::text) AS v FROM generate_series(1, 50000) g`)
	c.Exec(t, "postgres", `CREATE TABLE ts_t TABLESPACE ts1 AS SELECT g FROM generate_series(1, 20000) g`)
	for _, comp := range []string{"zstd", "none"} {
		t.Run(comp, func(t *testing.T) {
			e := newEnv(t)
			e.writeConfig("c", diskSpec{host: "db1", disk: "d", conn: c.ConnString(pgtest.BackupRole), extra: "    compression: " + comp + "\n"})
			e.must("dump", "c")
			b := e.backups("c")[0]
			dir := e.backupDir(b)
			ext := map[string]string{"zstd": ".tar.zst", "none": ".tar"}[comp]
			tsArchive := ""
			ents, _ := os.ReadDir(dir)
			for _, en := range ents {
				if n := en.Name(); n[0] >= '1' && n[0] <= '9' && strings.HasSuffix(n, ext) {
					tsArchive = n
				}
			}
			if tsArchive == "" {
				t.Fatalf("no tablespace archive in %s", dir)
			}
			for name, d := range map[string]damage{
				"flipped byte in base archive":       flipByte("base"+ext, 0.5),
				"flipped byte in tablespace archive": flipByte(tsArchive, 0.3),
				"flipped byte in WAL archive":        flipByte("pg_wal"+ext, 0.01),
				"flipped byte in manifest":           flipByte("backup_manifest", 0.5),
				"flipped byte in backup.json":        flipByte("backup.json", 0.5),
				"flipped byte in index":              flipByte("base"+ext+".idx", 0.5),
				"missing archive":                    removeObject(tsArchive),
				"missing manifest":                   removeObject("backup_manifest"),
				"truncated archive":                  truncateObject("base" + ext),
				"truncated manifest":                 truncateObject("backup_manifest"),
				"manifest one byte longer":           appendByte("backup_manifest"),
				"truncated index":                    truncateObject("base" + ext + ".idx"),
				"index one byte longer":              appendByte("base" + ext + ".idx"),
			} {
				t.Run(name, func(t *testing.T) {
					undo := d(t, dir)
					code, out, _ := e.run("verify", "c")
					undo()
					if code != ExitVerify {
						t.Fatalf("verify exit %d, want %d:\n%s", code, ExitVerify, out)
					}
					if !strings.Contains(out, b.ID) || strings.Contains(out, ": ok\n") {
						t.Fatalf("verify output does not name the damaged backup:\n%s", out)
					}
					e.must("verify", "c")
				})
			}
		})
	}
}

// TestVerifyReportsEveryProblem damages two files of an uncompressed
// archive and expects both to be reported, each naming its file.
func TestVerifyReportsEveryProblem(t *testing.T) {
	t.Parallel()
	pgtest.Require(t, 18)
	c := pgtest.Start(t, pgtest.Options{Version: 18})
	e := newEnv(t)
	e.writeConfig("c", diskSpec{host: "db1", disk: "d", conn: c.ConnString(pgtest.BackupRole), extra: "    compression: none\n"})
	e.must("dump", "c")
	dir := e.backupDir(e.backups("c")[0])
	p := filepath.Join(dir, "base.tar")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// PG_VERSION and global/pg_control are stored raw; change a data byte of each.
	for _, name := range []string{"PG_VERSION", "global/pg_control"} {
		i := strings.Index(string(b), name+"\x00")
		if i < 0 || i%512 != 0 {
			t.Fatalf("no tar header for %s", name)
		}
		b[i+512+2] ^= 0x01
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := e.run("verify", "c")
	if code != ExitVerify || !strings.Contains(out, "PG_VERSION") || !strings.Contains(out, "global/pg_control") {
		t.Fatalf("verify: exit %d, want both damaged files named:\n%s", code, out)
	}
}

// TestVerifySHAManifests checks backups whose manifest uses SHA-256 and
// SHA-512: verify hashes every file in the manifest's algorithm (the
// ordered path of the frame scan, where CRC-32C pieces are combined
// instead), and PostgreSQL's pg_verifybackup agrees the backup is good.
func TestVerifySHAManifests(t *testing.T) {
	t.Parallel()
	pgtest.Require(t, 18)
	c := pgtest.Start(t, pgtest.Options{Version: 18})
	c.Exec(t, "postgres", `CREATE TABLE t AS SELECT g, md5(g::text) AS v FROM generate_series(1, 200000) g`)
	for _, alg := range []string{"SHA256", "SHA512"} {
		t.Run(alg, func(t *testing.T) {
			e := newEnv(t)
			e.writeConfig("c", diskSpec{host: "db1", disk: "d", conn: c.ConnString(pgtest.BackupRole), extra: "    checksums: " + alg + "\n"})
			e.must("dump", "c")
			b := e.backups("c")[0]
			out := e.must("verify", "c")
			if !strings.Contains(out, b.ID) || !strings.Contains(out, ": ok") {
				t.Fatalf("verify output:\n%s", out)
			}
			m, err := os.ReadFile(filepath.Join(e.backupDir(b), "backup_manifest"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(m), `"Checksum-Algorithm": "`+alg+`"`) {
				t.Fatalf("backup_manifest does not use %s", alg)
			}
			pgVerifyTar(t, e.backupDir(b), 18, nil)
		})
	}
}

// TestVerifyStoredDigest damages a byte no file checksum covers (the tar
// padding after PG_VERSION in an uncompressed archive): only the digest of
// the stored object in backup.json can notice, a CRC-32C in backups of
// format 2, an XXH64 in format 1, which this Holdfast still reads.
func TestVerifyStoredDigest(t *testing.T) {
	t.Parallel()
	pgtest.Require(t, 18)
	c := pgtest.Start(t, pgtest.Options{Version: 18})
	for _, format := range []int{repo.BackupFormatVersion, 1} {
		t.Run(fmt.Sprint("format ", format), func(t *testing.T) {
			e := newEnv(t)
			e.writeConfig("c", diskSpec{host: "db1", disk: "d", conn: c.ConnString(pgtest.BackupRole), extra: "    compression: none\n"})
			e.must("dump", "c")
			b := e.backups("c")[0]
			dir := e.backupDir(b)
			if format == 1 {
				downgradeMeta(t, dir)
			}
			e.must("verify", "c")
			p := filepath.Join(dir, "base.tar")
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			i := strings.Index(string(data), "PG_VERSION\x00")
			if i < 0 || i%512 != 0 || data[i+512+len("18\n")] != 0 {
				t.Fatal("no PG_VERSION member followed by padding in base.tar")
			}
			data[i+512+len("18\n")+10] = 'x'
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			code, out, _ := e.run("verify", "c")
			want := map[int]string{1: "stored bytes have XXH64", 2: "stored bytes have CRC-32C"}[format]
			if code != ExitVerify || !strings.Contains(out, want) {
				t.Fatalf("verify after damaging tar padding: exit %d, want %d and %q:\n%s", code, ExitVerify, want, out)
			}
		})
	}
}

// downgradeMeta rewrites a backup's backup.json as format 1 wrote it: an
// XXH64 of each stored archive instead of its CRC-32C.
func downgradeMeta(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, "backup.json")
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	m, err := repo.ParseMeta("backup.json", raw)
	if err != nil {
		t.Fatal(err)
	}
	m.FormatVersion = 1
	for i := range m.Archives {
		a := &m.Archives[i]
		obj, err := os.ReadFile(filepath.Join(dir, a.Object))
		if err != nil {
			t.Fatal(err)
		}
		a.CRC32C, a.XXH64 = "", fmt.Sprintf("%016x", xxhash.Sum64(obj))
	}
	out, err := repo.EncodeMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, out, 0o600); err != nil {
		t.Fatal(err)
	}
}
