package config_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/holdfast-backup/holdfast/internal/config"
)

const file = "/etc/holdfast/daily.yaml"

// disk is a minimal valid disk entry, indented for a disks: list.
const disk = `
  - host: db1
    disk: pg-main
    postgres: host=/run/postgresql user=backup
`

const minimal = "repository: /var/lib/holdfast/repo\ndisks:" + disk

var cmpOpts = cmp.Options{cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })}

func TestParseErrors(t *testing.T) {
	t.Setenv("HOLDFAST_TEST_SECRET", "from-env")
	t.Setenv("HOLDFAST_TEST_UNSET", "")
	os.Unsetenv("HOLDFAST_TEST_UNSET")
	tests := []struct {
		name, yaml, want string
	}{
		{"empty", "", "1: the file is empty; write at least repository: and disks:"},
		{"only comments", "# nothing yet\n", "1: the file is empty; write at least repository: and disks:"},
		{"only a document marker", "---\n", "1: the file is empty; write at least repository: and disks:"},
		{"syntax", "repository: /r\ndisks: [\n", "2: invalid YAML: did not find expected node content; check the indentation and quoting"},
		{"tab indentation", "repository: /r\ndisks:\n\t- host: db1\n", "3: invalid YAML: found character that cannot start any token; check the indentation and quoting"},
		{"top is a list", "- repository: /r\n", "1:1: must be a mapping of keys, not a list; the keys of a config are repository, s3, defaults, disks, hosts, server"},
		{"second document", minimal + "---\nrepository: /x\n", "6:1: a second YAML document starts here; a config file holds one, so remove the --- line and what follows"},
		{"unknown key, close", "repositry: /r\ndisks:" + disk, "1:1: repositry: unknown key; did you mean repository?"},
		{"unknown key, far", minimal + "retention: 7d\n", "6:1: retention: unknown key; the keys of a config are repository, s3, defaults, disks, hosts, server"},
		{"unknown key with odd characters", minimal + "\"a b\": 1\n", `6:1: "a b": unknown key; the keys of a config are repository, s3, defaults, disks, hosts, server`},
		{"unknown disk key, swapped letters", minimal + "    compresison: zstd\n", "6:5: disks[0].compresison: unknown key; did you mean compression?"},
		{"unknown disk key, case", minimal + "    Level: full\n", "6:5: disks[0].Level: unknown key; did you mean level?"},
		{"key set twice", minimal + "repository: /x\n", "6:1: repository: is set twice in this mapping (first at line 1); keep one"},
		{"disk key set twice", minimal + "    disk: pg-other\n", "6:5: disks[0].disk: is set twice in this mapping (first at line 4); keep one"},
		{"missing repository", "disks:" + disk, "1:1: repository: is required; set it to a directory (repository: /var/lib/holdfast/repo) or to s3://bucket/prefix"},
		{"empty repository", "repository:\ndisks:" + disk, "1:12: repository: is required; set it to a directory (repository: /var/lib/holdfast/repo) or to s3://bucket/prefix"},
		{"relative repository", "repository: var/lib/holdfast\ndisks:" + disk, `1:13: repository: "var/lib/holdfast" is not an absolute path; write the full path, e.g. /var/lib/holdfast/repo`},
		{"repository scheme", "repository: file:///srv/repo\ndisks:" + disk, `1:13: repository: the scheme "file" is not supported; use a directory (/var/lib/holdfast/repo) or s3://bucket/prefix`},
		{"repository is a list", "repository: [/a, /b]\ndisks:" + disk, "1:13: repository: must be a single value, not a list"},
		{"missing disks", "repository: /r\n", "1:1: disks: is required; list at least one disk with host, disk and postgres"},
		{"no disks", "repository: /r\ndisks: []\n", "2:8: disks: is required; list at least one disk with host, disk and postgres"},
		{"disks is a mapping", "repository: /r\ndisks:\n  db1: pg-main\n", "3:3: disks: must be a list (each a mapping with host, disk and postgres), not a mapping"},
		{"disk is a word", "repository: /r\ndisks:\n  - pg-main\n", "3:5: disks[0]: must be a mapping of keys, not a single value; the keys of a disk are host, disk, postgres, compression, checksums, level, wal, checkpoint, max_rate, verify_checksums, server_compression"},
		{"disk is empty", "repository: /r\ndisks:\n  -\n", "3:4: disks[0]: must be a mapping of keys, not empty; the keys of a disk are host, disk, postgres, compression, checksums, level, wal, checkpoint, max_rate, verify_checksums, server_compression"},
		{"disk without anything", "repository: /r\ndisks:\n  - compression: none\n", strings.Join([]string{
			file + ":3:5: disks[0].host: is required; write the client's host name, e.g. host: db1",
			file + ":3:5: disks[0].disk: is required; write the disk name clients use, e.g. disk: pg-main",
			file + `:3:5: disks[0].postgres: is required; write how to reach PostgreSQL, e.g. postgres: "host=/run/postgresql user=backup"`,
		}, "\n")},
		{"bad host", strings.Replace(minimal, "db1", "db_1", 1), `3:11: disks[0].host: "db_1" is not a valid host name: it contains '_'; use letters, digits, '-' and '.', e.g. db1 or db1.example.com`},
		{"host with empty label", strings.Replace(minimal, "db1", "db1..example", 1), `3:11: disks[0].host: "db1..example" is not a valid host name: it has an empty label (a leading, trailing or doubled '.'); remove the extra '.'`},
		{"host with a trailing hyphen", strings.Replace(minimal, "db1", "db1-", 1), `3:11: disks[0].host: "db1-" is not a valid host name: its label "db1-" starts or ends with '-'; labels start and end with a letter or digit`},
		{"disk with a tab", strings.Replace(minimal, "pg-main", `"pg\tmain"`, 1), `4:11: disks[0].disk: "pg\tmain" is not a valid disk name: it contains the control character U+0009; remove it`},
		{"disk with a space at the end", strings.Replace(minimal, "pg-main", `"pg-main "`, 1), `4:11: disks[0].disk: "pg-main " is not a valid disk name: it starts or ends with white space; remove it`},
		{"disk name too long", strings.Replace(minimal, "pg-main", strings.Repeat("é", 43), 1), `4:11: disks[0].disk: "` + strings.Repeat("é", 43) + `" is not a valid disk name: it is too long: 258 bytes once encoded for the repository, at most 255; use a shorter name`},
		{"compression", minimal + "    compression: lz5\n", `6:18: disks[0].compression: "lz5" is not a compression; use zstd or none`},
		{"checksums", minimal + "    checksums: md5\n", `6:16: disks[0].checksums: "md5" is not a checksum algorithm; use CRC32C, SHA224, SHA256, SHA384, SHA512 or NONE`},
		{"level", minimal + "    level: differential\n", `6:12: disks[0].level: "differential" is not a level; use auto, full or incremental`},
		{"wal", minimal + "    wal: archive\n", `6:10: disks[0].wal: "archive" is not a WAL method; use stream or fetch`},
		{"checkpoint", minimal + "    checkpoint: slow\n", `6:17: disks[0].checkpoint: "slow" is not a checkpoint mode; use fast or spread`},
		{"max_rate too low", minimal + "    max_rate: 10\n", "6:15: disks[0].max_rate: 10 kB/s is out of range; use 0 for no limit, or 32 to 1048576"},
		{"max_rate too high", minimal + "    max_rate: 2_000_000\n", "6:15: disks[0].max_rate: 2000000 kB/s is out of range; use 0 for no limit, or 32 to 1048576"},
		{"max_rate with a unit", minimal + "    max_rate: 10MB\n", `6:15: disks[0].max_rate: "10MB" is not a whole number; write the limit in kB/s, e.g. max_rate: 10240, or 0 for none`},
		{"max_rate quoted", minimal + "    max_rate: \"64\"\n", `6:15: disks[0].max_rate: "64" is text, not a number; remove the quotes`},
		{"max_rate huge", minimal + "    max_rate: 99999999999999999999\n", `6:15: disks[0].max_rate: 99999999999999999999 is far too large; write the limit in kB/s, e.g. max_rate: 10240, or 0 for none`},
		{"verify_checksums yes", minimal + "    verify_checksums: yes\n", `6:23: disks[0].verify_checksums: "yes" is not true or false; write true or false`},
		{"server_compression algorithm", minimal + "    server_compression: lz5\n", `6:25: disks[0].server_compression: "lz5" is not a server compression; use gzip, lz4 or zstd, optionally with a level (zstd:5) or options (zstd:level=5,workers=4,long), or leave it empty`},
		{"server_compression level", minimal + "    server_compression: gzip:12\n", `6:25: disks[0].server_compression: "gzip:12": gzip level 12 is out of range; use 1 to 9`},
		{"server_compression workers for lz4", minimal + "    server_compression: lz4:workers=2\n", `6:25: disks[0].server_compression: "lz4:workers=2": lz4 does not take workers; remove it or use zstd`},
		{"server_compression option", minimal + "    server_compression: zstd:fast\n", `6:25: disks[0].server_compression: "zstd:fast": "fast" is not a compression option; use level, workers or long`},
		{"server_compression empty detail", minimal + "    server_compression: \"zstd:\"\n", `6:25: disks[0].server_compression: "zstd:": the detail after ':' is empty; write e.g. zstd:5, or remove the ':'`},
		{"server_compression long", minimal + "    server_compression: zstd:long=maybe\n", `6:25: disks[0].server_compression: "zstd:long=maybe": long=maybe is not a boolean; write long, long=on or long=off`},
		{"postgres keyword typo", strings.Replace(minimal, "host=/run", "hots=/run", 1), `5:15: disks[0].postgres: unknown keyword "hots"; did you mean host?`},
		{"postgres unknown keyword not echoed", strings.Replace(minimal, "user=backup", "hunter2=backup", 1), `5:15: disks[0].postgres: unknown keyword at byte 21; use the parameter keywords of libpq (host, port, user, sslmode, ...)`},
		{"postgres unterminated quote", strings.Replace(minimal, "user=backup", "password='s3cret", 1), `5:15: disks[0].postgres: the quoted value of password has no closing quote; end it with '`},
		{"postgres missing equals", strings.Replace(minimal, "user=backup", "s3cret", 1), `5:15: disks[0].postgres: missing '=' after the word at byte 21; write keyword=value`},
		{"postgres URI with @ in password", strings.Replace(minimal, "host=/run/postgresql user=backup", "postgresql://backup:p@ss@db1/postgres", 1), `5:15: disks[0].postgres: write '@' in the user name or password as %40`},
		{"postgres URI with a space in password", strings.Replace(minimal, "host=/run/postgresql user=backup", `"postgresql://backup:p ss@db1/postgres"`, 1), `5:15: disks[0].postgres: percent-encode special characters in the user name and password (e.g. a space as %20, '?' as %3F)`},
		{"postgres URI upper case", strings.Replace(minimal, "host=/run/postgresql user=backup", "PostgreSQL://db1/", 1), `5:15: disks[0].postgres: write the URI scheme postgresql:// in lower case`},
		{"postgres URI query", strings.Replace(minimal, "host=/run/postgresql user=backup", "postgresql://db1/?sslmod=require", 1), `5:15: disks[0].postgres: unknown keyword "sslmod"; did you mean sslmode?`},
		{"postgres empty", strings.Replace(minimal, "host=/run/postgresql user=backup", `" "`, 1), `5:15: disks[0].postgres: it is empty; write e.g. host=/run/postgresql user=backup`},
		{"same disk twice", "repository: /r\ndisks:" + disk + strings.Replace(disk, "db1", "DB1", 1), `7:5: disks[1]: disk "pg-main" of host "db1" is defined twice (first at line 3); remove one, or give it another disk name`},
		{"alias", "repository: /r\ndisks:\n  - &d {host: db1, disk: a, postgres: host=x}\n  - *d\n", "4:5: disks[1]: YAML aliases (*d) are not supported; write the value out, or put shared disk settings under defaults:"},
		{"merge key", "repository: /r\ndisks:\n  - &d {host: db1, disk: a, postgres: host=x}\n  - <<: *d\n    disk: b\n", "4:5: disks[1]: merge keys (<<) are not supported; put shared disk settings under defaults:"},
		{"tag", minimal + "    level: !full x\n", `6:12: disks[0].level: the YAML tag "!full" is not supported here; remove it`},
		{"binary tag", minimal + "    level: !!binary cGc=\n", `6:12: disks[0].level: the YAML tag "!!binary" is not supported here; remove it`},
		{"tag on a mapping", "repository: /r\ndisks:\n  - !!set {host: db1}\n", `3:5: disks[0]: the YAML tag "!!set" is not supported here; remove it`},
		{"defaults value reported once", "repository: /r\ndefaults:\n  checksums: MD5\ndisks:" + disk + strings.Replace(disk, "pg-main", "pg-2", 1),
			`3:14: defaults.checksums: "MD5" is not a checksum algorithm; use CRC32C, SHA224, SHA256, SHA384, SHA512 or NONE`},
		{"defaults with a disk key", "repository: /r\ndefaults:\n  host: db1\ndisks:" + disk, "3:3: defaults.host: unknown key; the keys of defaults are compression, checksums, level, wal, checkpoint, max_rate, verify_checksums, server_compression"},
		{"s3 block with a local repository", minimal + "s3:\n  access_key: a\n", "7:3: s3: is only used with an s3:// repository; remove it, or set repository: s3://bucket/prefix"},
		{"s3 repository without s3", "repository: s3://backups/daily\ndisks:" + disk, "1:1: s3: is required with an s3:// repository; add an s3: block with access_key and secret_key_file"},
		{"s3 without keys", "repository: s3://backups/daily\ndisks:" + disk + "s3:\n  region: eu-west-1\n", strings.Join([]string{
			file + ":7:3: s3.access_key: is required; write the access key ID, e.g. access_key: holdfast",
			file + ":7:3: s3: has no secret key; add secret_key_file: /etc/holdfast/s3.secret, or secret_key_env: VARIABLE",
		}, "\n")},
		{"s3 bucket", "repository: s3://Backups_1\ndisks:" + disk + "s3: {access_key: a, secret_key_env: HOLDFAST_TEST_SECRET}\n", `1:13: repository: "Backups_1" is not a valid S3 bucket name; use 3 to 63 lower-case letters, digits, '.' and '-', starting and ending with a letter or digit`},
		{"s3 prefix", "repository: s3://backups/a//b\ndisks:" + disk + "s3: {access_key: a, secret_key_env: HOLDFAST_TEST_SECRET}\n", `1:13: repository: the key prefix "a//b" has an empty, '.' or '..' segment, a NUL or a backslash; fix the path after the bucket name`},
		{"s3 endpoint scheme", "repository: s3://backups\ndisks:" + disk + "s3: {endpoint: 'https://minio:9000', access_key: a, secret_key_env: HOLDFAST_TEST_SECRET}\n", `6:16: s3.endpoint: "https://minio:9000" has a scheme; write only host or host:port (and tls: false for plain HTTP)`},
		{"s3 endpoint port", "repository: s3://backups\ndisks:" + disk + "s3: {endpoint: 'minio:99999', access_key: a, secret_key_env: HOLDFAST_TEST_SECRET}\n", `6:16: s3.endpoint: "minio:99999" has a bad port; use 1 to 65535, e.g. s3.amazonaws.com or 127.0.0.1:9000`},
		{"s3 secret env unset", "repository: s3://backups\ndisks:" + disk + "s3: {access_key: a, secret_key_env: HOLDFAST_TEST_UNSET}\n", "6:37: s3.secret_key_env: the environment variable HOLDFAST_TEST_UNSET is not set; set it for holdfast, or use secret_key_file"},
		{"s3 secret env name", "repository: s3://backups\ndisks:" + disk + "s3: {access_key: a, secret_key_env: $HOME}\n", `6:37: s3.secret_key_env: "$HOME" is not an environment variable name; use letters, digits and '_', e.g. HOLDFAST_S3_SECRET`},
		{"s3 secret file relative", "repository: s3://backups\ndisks:" + disk + "s3: {access_key: a, secret_key_file: s3.secret}\n", `6:38: s3.secret_key_file: "s3.secret" is not an absolute path; write the full path, e.g. /etc/holdfast/s3.secret`},
		{"s3 secret file missing", "repository: s3://backups\ndisks:" + disk + "s3: {access_key: a, secret_key_file: /nonexistent/s3.secret}\n", "6:38: s3.secret_key_file: /nonexistent/s3.secret does not exist; write the secret key into it, readable only by holdfast (chmod 600)"},
		{"s3 secret twice", "repository: s3://backups\ndisks:" + disk + "s3:\n  access_key: a\n  secret_key_env: HOLDFAST_TEST_SECRET\n  secret_key: abc\n", "9:15: s3.secret_key: secret_key_env (line 8) gives the secret key too; give it one way only, and remove one of them"},
		{"s3 tls", "repository: s3://backups\ndisks:" + disk + "s3: {access_key: a, secret_key_env: HOLDFAST_TEST_SECRET, tls: off}\n", `6:64: s3.tls: "off" is not true or false; write true or false`},
		{"host without disks", minimal + "hosts:\n  - name: db2\n", `7:11: hosts[0].name: host "db2" has no disks in this config; add disks for it, or remove the entry`},
		{"host without name", minimal + "hosts:\n  - addresses: [10.0.0.1]\n", "7:5: hosts[0].name: is required; write the client's host name as its disks have it, e.g. name: db1"},
		{"host twice", minimal + "hosts:\n  - name: db1\n  - name: DB1\n", `8:11: hosts[1].name: host "db1" is listed twice (first at line 7); merge the two entries`},
		{"address with host bits", minimal + "hosts:\n  - name: db1\n    addresses: [10.0.0.5/24]\n", "8:17: hosts[0].addresses[0]: 10.0.0.5/24 has bits set after the /24 prefix; write 10.0.0.0/24 for the network, or 10.0.0.5 alone for one address"},
		{"address is a name", minimal + "hosts:\n  - name: db1\n    addresses: [db1.example.com]\n", `8:17: hosts[0].addresses[0]: "db1.example.com" is a name, not an address; list IP addresses, or leave addresses out to use the host name's forward-confirmed reverse DNS`},
		{"address with a zone", minimal + "hosts:\n  - name: db1\n    addresses: [\"fe80::1%eth0\"]\n", `8:17: hosts[0].addresses[0]: "fe80::1%eth0" has an IPv6 zone; remove the %eth0`},
		{"bad prefix", minimal + "hosts:\n  - name: db1\n    addresses: [10.0.0.0/33]\n", `8:17: hosts[0].addresses[0]: "10.0.0.0/33" is not a CIDR prefix; write e.g. 10.0.0.0/24 or fd00::/64`},
		{"addresses not a list", minimal + "hosts:\n  - name: db1\n    addresses: 10.0.0.1\n", `8:16: hosts[0].addresses: must be a list of IP addresses or CIDR prefixes, e.g. ["10.0.0.5", "10.0.1.0/24"], not a single value`},
		{"overlapping addresses", "repository: /r\ndisks:" + disk + strings.Replace(disk, "db1", "db2", 1) +
			"hosts:\n  - name: db1\n    addresses: [10.0.0.5]\n  - name: db2\n    addresses: ['::ffff:10.0.0.0/120']\n",
			`14:17: hosts[1].addresses[0]: 10.0.0.0/24 overlaps 10.0.0.5 of host "db1" (first at line 12); an address must identify one host; narrow one of them`},
		{"bad user", minimal + "hosts:\n  - name: db1\n    users: [\"amanda backup\"]\n", `8:13: hosts[0].users[0]: "amanda backup" is not a user name: U+0020 at byte 6; use letters, digits, '.', '_' and '-' (and a final '$'), e.g. amandabackup`},
		{"tls name twice", "repository: /r\ndisks:" + disk + strings.Replace(disk, "db1", "db2", 1) +
			"hosts:\n  - name: db1\n    tls_names: [db.example]\n  - name: db2\n    tls_names: [DB.example]\n",
			`14:17: hosts[1].tls_names[0]: certificate name "db.example" is given twice (first at line 12); a certificate name must identify one host; remove one`},
		{"server key", minimal + "server:\n  reserved_port: true\n", "7:3: server.reserved_port: unknown key; the keys of server are require_reserved_port"},
		{"server value", minimal + "server:\n  require_reserved_port: 1\n", `7:26: server.require_reserved_port: "1" is not true or false; write true or false`},
		{"errors in file order", "disks:\n  - host: db_1\n    disk: a\n    postgres: host=x\n    level: never\nrepository: relative\n", strings.Join([]string{
			file + `:2:11: disks[0].host: "db_1" is not a valid host name: it contains '_'; use letters, digits, '-' and '.', e.g. db1 or db1.example.com`,
			file + `:5:12: disks[0].level: "never" is not a level; use auto, full or incremental`,
			file + `:6:13: repository: "relative" is not an absolute path; write the full path, e.g. /var/lib/holdfast/repo`,
		}, "\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse(file, []byte(tt.yaml), "daily")
			if err == nil {
				t.Fatalf("Parse accepted:\n%s\ngot %+v", tt.yaml, c)
			}
			want := tt.want
			if !strings.HasPrefix(want, file) {
				want = file + ":" + want
			}
			if got := err.Error(); got != want {
				t.Errorf("Parse of\n%s\nerror:\n%s\nwant:\n%s", tt.yaml, got, want)
			}
			var ce *config.Error
			if !errors.As(err, &ce) || ce.File != file || ce.Line == 0 {
				t.Errorf("error %v: errors.As gives %+v, want an *Error with file and line", err, ce)
			}
		})
	}
}

func TestParseErrorLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString("repository: /r\ndisks:\n")
	for i := range 30 {
		fmt.Fprintf(&b, "  - {host: db1, disk: d%d, postgres: host=x, level: never}\n", i)
	}
	_, err := config.Parse(file, []byte(b.String()), "daily")
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 21 || lines[20] != file+": 10 more errors not shown; fix the ones above first" {
		t.Errorf("got %d lines, the last %q", len(lines), lines[len(lines)-1])
	}
}

func TestParseName(t *testing.T) {
	_, err := config.Parse(file, []byte(minimal), "../daily")
	if !errors.Is(err, config.ErrInvalidName) {
		t.Errorf("Parse with name ../daily: %v, want ErrInvalidName", err)
	}
}

func TestParseGood(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "s3.secret")
	if err := os.WriteFile(secretFile, []byte("  wJalrXUtnFEMI/K7MDENG \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOLDFAST_TEST_SECRET", "from-env")
	conn := func(s string) config.ConnInfo {
		c, err := config.ParseConnInfo(s)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// def fills in the built-in defaults of the settings d leaves empty.
	def := func(d config.Disk) config.Disk {
		for _, f := range []struct {
			field *string
			value string
		}{
			{&d.Compression, "zstd"}, {&d.Checksums, "CRC32C"}, {&d.Level, "auto"}, {&d.WAL, "stream"}, {&d.Checkpoint, "fast"},
		} {
			if *f.field == "" {
				*f.field = f.value
			}
		}
		d.VerifyChecksums = true
		return d
	}
	tests := []struct {
		name, yaml string
		want       *config.Config
	}{
		{"minimal", minimal, &config.Config{
			Name: "daily", Path: file,
			Repository: config.Repository{Kind: config.RepoLocal, Path: "/var/lib/holdfast/repo"},
			Disks:      []config.Disk{def(config.Disk{Host: "db1", Disk: "pg-main", Postgres: conn("host=/run/postgresql user=backup"), Line: 3})},
		}},
		{"everything", `# daily backups of the main clusters
repository: /var/lib/holdfast/repo/
defaults:
  checksums: sha256
  max_rate: 0x400
disks:
  - host: DB1.Example.com
    disk: pg-main
    postgres: "host=/run/postgresql port=5432 user=backup password='it\\'s'"
  - host: db1.example.com
    disk: pg two
    postgres: postgresql://backup@db1:5432/postgres?sslmode=require
    compression: NONE
    checksums: none
    level: Full
    wal: fetch
    checkpoint: spread
    max_rate: 0123
    verify_checksums: false
    server_compression: ZSTD:level=3,long
  - host: db2
    disk: 0123
    postgres: host=db2
    server_compression: none
    max_rate:
hosts:
  - name: db1.example.com
    addresses: [127.0.0.1, "10.0.0.0/24", "::ffff:192.0.2.1", "2001:db8::/32"]
    users: [amandabackup, backup]
    tls_names: [DB1.example.com]
  - name: db2
server:
  require_reserved_port: true
`, &config.Config{
			Name: "daily", Path: file,
			Repository: config.Repository{Kind: config.RepoLocal, Path: "/var/lib/holdfast/repo"},
			Disks: []config.Disk{
				def(config.Disk{Host: "db1.example.com", Disk: "pg-main", Postgres: conn("host=/run/postgresql port=5432 user=backup password='it\\'s'"),
					Checksums: "SHA256", MaxRate: 1024, Line: 7}),
				{Host: "db1.example.com", Disk: "pg two", Postgres: conn("postgresql://backup@db1:5432/postgres?sslmode=require"),
					Compression: "none", Checksums: "NONE", Level: "full", WAL: "fetch", Checkpoint: "spread", MaxRate: 123,
					VerifyChecksums: false, ServerCompression: "zstd:level=3,long", Line: 10},
				def(config.Disk{Host: "db2", Disk: "0123", Postgres: conn("host=db2"), Checksums: "SHA256", MaxRate: 1024, Line: 21}),
			},
			Hosts: []config.Host{
				{Name: "db1.example.com", Line: 27, Users: []string{"amandabackup", "backup"}, TLSNames: []string{"db1.example.com"},
					Addresses: []netip.Prefix{
						netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/24"),
						netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("2001:db8::/32"),
					}},
				{Name: "db2", Line: 31},
			},
			Server: config.Server{RequireReservedPort: true},
		}},
		{"s3 with a key file", "repository: s3://backups/holdfast/daily/\ndisks:" + disk +
			"s3:\n  endpoint: 127.0.0.1:7070\n  access_key: holdfast\n  secret_key_file: " + secretFile + "\n  tls: false\n",
			&config.Config{
				Name: "daily", Path: file,
				Repository: config.Repository{Kind: config.RepoS3, S3: &config.S3Config{
					Endpoint: "127.0.0.1:7070", Region: "us-east-1", Bucket: "backups", Prefix: "holdfast/daily",
					AccessKey: "holdfast", SecretKey: config.NewSecret("wJalrXUtnFEMI/K7MDENG"),
				}},
				Disks: []config.Disk{def(config.Disk{Host: "db1", Disk: "pg-main", Postgres: conn("host=/run/postgresql user=backup"), Line: 3})},
			}},
		{"s3 defaults and env", "repository: S3://backups\ndisks:" + disk + "s3:\n  access_key: holdfast\n  secret_key_env: HOLDFAST_TEST_SECRET\n",
			&config.Config{
				Name: "daily", Path: file,
				Repository: config.Repository{Kind: config.RepoS3, S3: &config.S3Config{
					Endpoint: "s3.amazonaws.com", Region: "us-east-1", Bucket: "backups",
					AccessKey: "holdfast", SecretKey: config.NewSecret("from-env"), TLS: true,
				}},
				Disks: []config.Disk{def(config.Disk{Host: "db1", Disk: "pg-main", Postgres: conn("host=/run/postgresql user=backup"), Line: 3})},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := config.Parse(file, []byte(tt.yaml), "daily")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpOpts); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate of a parsed config: %v", err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	c := &config.Config{
		Name:       "daily",
		Repository: config.Repository{Kind: config.RepoLocal, Path: "/srv/repo"},
		Disks: []config.Disk{
			{Host: "db1", Disk: "pg", Compression: "zstd", Checksums: "CRC32C", Level: "auto", WAL: "stream", Checkpoint: "fast"},
			{Host: "db1", Disk: "pg", Compression: "gzip", Checksums: "crc32c", Level: "auto", WAL: "stream", Checkpoint: "fast"},
		},
		Hosts: []config.Host{{Name: "DB1"}},
	}
	want := strings.Join([]string{
		`config daily: disks[0].postgres: is required; write how to reach PostgreSQL, e.g. postgres: "host=/run/postgresql user=backup"`,
		`config daily: disks[1].postgres: is required; write how to reach PostgreSQL, e.g. postgres: "host=/run/postgresql user=backup"`,
		`config daily: disks[1].compression: "gzip" is not a compression; use zstd or none`,
		`config daily: disks[1].checksums: "crc32c" is not a checksum algorithm; use CRC32C, SHA224, SHA256, SHA384, SHA512 or NONE`,
		`config daily: disks[1]: disk "pg" of host "db1" is defined twice (first at disks[0]); remove one, or give it another disk name`,
		`config daily: hosts[0].name: "DB1" is not in lower case; write db1`,
	}, "\n")
	if err := c.Validate(); err == nil || err.Error() != want {
		t.Errorf("Validate:\n%v\nwant:\n%s", err, want)
	}
}

func TestSelect(t *testing.T) {
	c, err := config.Parse(file, []byte("repository: /r\ndisks:"+disk+
		strings.Replace(disk, "pg-main", `"pg two"`, 1)+
		strings.Replace(disk, "db1", "db2", 1)), "daily")
	if err != nil {
		t.Fatal(err)
	}
	names := func(ds []config.Disk) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.String())
		}
		return out
	}
	if diff := cmp.Diff([]string{"db1:pg-main", "db1:pg two"}, names(c.DisksOf("DB1"))); diff != "" {
		t.Errorf("DisksOf(DB1) (-want +got):\n%s", diff)
	}
	if d, ok := c.Find("db1", "pg two"); !ok || d.Line != 7 {
		t.Errorf("Find(db1, pg two) = %+v, %v", d, ok)
	}
	if _, ok := c.Find("db1", "PG-MAIN"); ok {
		t.Error("Find matched a disk name in another case")
	}
	got, err := c.Select("db1", []string{"pg two", "pg-main", "pg two"})
	if diff := cmp.Diff([]string{"db1:pg two", "db1:pg-main"}, names(got)); err != nil || diff != "" {
		t.Errorf("Select: %v (-want +got):\n%s", err, diff)
	}
	got, err = c.Select("db2", nil)
	if diff := cmp.Diff([]string{"db2:pg-main"}, names(got)); err != nil || diff != "" {
		t.Errorf("Select all: %v (-want +got):\n%s", err, diff)
	}
	_, err = c.Select("db1", []string{"pg-main", "pg-x"})
	if want := `config daily: no disk "pg-x" on host "db1"; known disks: pg-main, "pg two"`; err == nil || err.Error() != want || !errors.Is(err, config.ErrUnknownDisk) {
		t.Errorf("Select of an unknown disk: %v, want %s", err, want)
	}
	_, err = c.Select("db9", nil)
	if want := `config daily: no host "db9"; known hosts: db1, db2`; err == nil || err.Error() != want || !errors.Is(err, config.ErrUnknownHost) {
		t.Errorf("Select of an unknown host: %v, want %s", err, want)
	}
}

func TestRepositoryString(t *testing.T) {
	t.Setenv("HOLDFAST_TEST_SECRET", "from-env")
	for _, tt := range []struct {
		yaml, want string
	}{
		{"/srv/repo/", "/srv/repo"},
		{"s3://bucket", "s3://bucket"},
		{"s3://bucket/a/b/", "s3://bucket/a/b"},
	} {
		data := "repository: " + tt.yaml + "\ndisks:" + disk
		if strings.HasPrefix(tt.yaml, "s3:") {
			data += "s3: {access_key: a, secret_key_env: HOLDFAST_TEST_SECRET}\n"
		}
		c, err := config.Parse(file, []byte(data), "daily")
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Repository.String(); got != tt.want {
			t.Errorf("%s: String() = %q, want %q", tt.yaml, got, tt.want)
		}
	}
}
