package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/holdfast-backup/holdfast/internal/config"
)

var fuzzSeeds = []string{
	minimal,
	"repository: s3://backups/daily\ndisks:" + disk + "s3: {endpoint: '127.0.0.1:7070', access_key: a, secret_key_env: HOLDFAST_TEST_SECRET, tls: false}\n",
	`repository: /srv/repo
defaults: {checksums: sha256, max_rate: 1024, server_compression: "zstd:level=3,long"}
disks:
  - {host: DB1, disk: "pg two", postgres: "postgresql://backup:pw@db1/postgres?sslmode=require", level: full}
  - {host: db2, disk: /var/lib/pgsql, postgres: "host=db2 password='a b'", wal: fetch}
hosts:
  - {name: db1, addresses: [10.0.0.0/24, "::1"], users: [amandabackup], tls_names: [db1.example]}
  - {name: db2}
server: {require_reserved_port: true}
`,
	"repository: /r\ndisks:\n  - &a {host: db1}\n  - *a\n  - <<: *a\n",
	"repository: [\n",
	"",
	"a: 1\n---\nb: 2\n",
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Setenv("HOLDFAST_TEST_SECRET", "from-env")
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse(file, data, "daily")
		if err != nil {
			for line := range strings.SplitSeq(err.Error(), "\n") {
				if !strings.HasPrefix(line, file+": ") && !strings.HasPrefix(line, file+":") {
					t.Fatalf("an error line does not name the file: %q", line)
				}
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that Validate refuses: %v\n%s", err, data)
		}
		again, err := config.Parse(file, data, "daily")
		if err != nil {
			t.Fatalf("second Parse failed: %v", err)
		}
		if diff := cmp.Diff(c, again, cmpOpts); diff != "" {
			t.Fatalf("Parse is not deterministic (-first +second):\n%s", diff)
		}
	})
}

// FuzzLoad checks that Load of a file and Parse of its bytes agree.
func FuzzLoad(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Setenv("HOLDFAST_TEST_SECRET", "from-env")
	dir := f.TempDir()
	path := filepath.Join(dir, "daily.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		loaded, lerr := config.Load(dir, "daily")
		parsed, perr := config.Parse(path, data, "daily")
		if (lerr == nil) != (perr == nil) || lerr != nil && lerr.Error() != perr.Error() {
			t.Fatalf("Load: %v\nParse: %v", lerr, perr)
		}
		if diff := cmp.Diff(parsed, loaded, cmpOpts); diff != "" {
			t.Fatalf("Load and Parse differ (-parse +load):\n%s", diff)
		}
	})
}
