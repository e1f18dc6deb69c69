package manifest_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/holdfast-backup/holdfast/internal/manifest"
	"github.com/holdfast-backup/holdfast/internal/wal"
)

var update = flag.Bool("update", false, "rewrite the layout golden files from Encode")

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func lsn(t testing.TB, s string) wal.LSN {
	t.Helper()
	l, err := wal.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// goldens are manifests written by hand (testdata/*.manifest, generated once
// by a separate script following the spec's layout) with the values they
// hold. exact marks those in the server's own layout, which Encode must
// reproduce byte for byte.
func goldens(t *testing.T) []struct {
	file  string
	exact bool
	want  *manifest.Manifest
} {
	crc := func(path string, size int64, mod, sum string) manifest.File {
		return manifest.File{Path: path, Size: size, LastModified: mod, Algorithm: "CRC32C", Checksum: unhex(t, sum)}
	}
	sha := func(path string, size int64, mod, sum string) manifest.File {
		return manifest.File{Path: path, Size: size, LastModified: mod, Algorithm: "SHA256", Checksum: unhex(t, sum)}
	}
	return []struct {
		file  string
		exact bool
		want  *manifest.Manifest
	}{
		{"v2.manifest", true, &manifest.Manifest{
			Version:          2,
			SystemIdentifier: 7710952871990011363,
			Files: []manifest.File{
				crc("backup_label", 264, "2024-05-01 10:00:03 GMT", "47d95ce8"),
				crc("PG_VERSION", 3, "2024-04-30 08:15:00 GMT", "64440205"),
				crc("global/INCREMENTAL.1261", 12, "2024-04-30 08:15:02 GMT", "5be638a1"),
				crc("base/5/INCREMENTAL.16384", 16384, "2024-05-01 09:59:41 GMT", "5f3c8a19"),
				crc("base/5/16384_fsm", 24576, "2024-05-01 09:59:41 GMT", "0c0b0a09"),
				crc("pg_tblspc/16385/PG_17_202406281/5/16390", 8192, "2024-05-01 09:58:00 GMT", "23464490"),
				crc("pg_logical/snapshots/odd \"quoted\" back\\slash\ttab\x1f\x7f.txt", 0, "2024-05-01 10:00:00 GMT", "00000000"),
				crc("pg_logical/café-\U0001F418", 0, "2024-05-01 10:00:00 GMT", "00000000"),
				crc("pg_logical/not-\xffutf8", 0, "2024-05-01 10:00:00 GMT", "00000000"),
				crc("pg_wal/archive_status/000000010000000000000008.done", 0, "2024-05-01 10:00:04 GMT", "00000000"),
				crc("global/pg_control", 8192, "2024-05-01 10:00:04 GMT", "23464490"),
			},
			WALRanges: []manifest.WALRange{
				{Timeline: 2, Start: lsn(t, "0/9000000"), End: lsn(t, "0/9000120")},
				{Timeline: 1, Start: lsn(t, "0/8000028"), End: lsn(t, "0/9000000")},
			},
			Checksum: "094d3f40ef269e985d5644c0a8258d313d70804d0d2cf39ba9bd357a53346eb1",
		}},
		{"v1.manifest", true, &manifest.Manifest{
			Version: 1,
			Files: []manifest.File{
				sha("backup_label", 226, "2023-11-02 21:30:11 GMT", "bd2b5461f86034b167c38c023af2e19c2d055e0f652ce58462b508ec58e45036"),
				sha("PG_VERSION", 3, "2023-10-01 07:00:00 GMT", "238903180cc104ec2c5d8b3f20c5bc61b389ec0a967df8cc208cdc7cd454174f"),
				sha("base/1/1259", 106496, "2023-11-02 21:29:58 GMT", "a1fce4363854ff888cff4b8e7875d600c2682390412a8cf79b37d0b11148b0fa"),
				sha("postmaster.opts", 0, "2023-11-02 21:00:00 GMT", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
				sha("global/pg_control", 8192, "2023-11-02 21:30:12 GMT", "9f1dcbc35c350d6027f98be0f5c8b43b42ca52b7604459c0c42be3aa88913d47"),
			},
			WALRanges: []manifest.WALRange{{Timeline: 1, Start: lsn(t, "0/2000028"), End: lsn(t, "0/2000100")}},
		}},
		{"nochecksums.manifest", true, &manifest.Manifest{
			Version:          2,
			SystemIdentifier: 18446744073709551615,
			Files: []manifest.File{
				{Path: "global/pg_control", Size: 8192, LastModified: "2024-05-01 10:00:04 GMT"},
				{Path: "base/5/2613.1", Size: 9223372036854775807, LastModified: "2024-05-01 10:00:04 GMT"},
			},
			WALRanges: []manifest.WALRange{{Timeline: 4294967295, Start: ^wal.LSN(0), End: ^wal.LSN(0)}},
		}},
		{"odd.manifest", false, &manifest.Manifest{
			Version:          2,
			SystemIdentifier: 1,
			Files: []manifest.File{
				{Path: "PG_VERSION", Size: 3, Algorithm: "CRC32C", Checksum: []byte{0xde, 0xad, 0xbe, 0xef}},
				{Path: "global/pg_control", Size: 8192},
				{Path: "a/b \U0001F418 é", LastModified: "whenever"},
			},
			WALRanges: []manifest.WALRange{{Timeline: 1, Start: 1, End: 0x10}},
		}},
	}
}

// ignoreChecksum compares manifests by content: the Manifest-Checksum of
// bytes that are not in the server's layout cannot survive re-encoding.
var ignoreChecksum = cmpopts.IgnoreFields(manifest.Manifest{}, "Checksum")

func TestGolden(t *testing.T) {
	for _, g := range goldens(t) {
		t.Run(g.file, func(t *testing.T) {
			path := filepath.Join("testdata", g.file)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got, err := manifest.Parse(data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(g.want, got, ignoreChecksum); diff != "" {
				t.Errorf("Parse mismatch (-want +got):\n%s", diff)
			}
			sum := sha256.Sum256(data[:bytes.LastIndexByte(data[:len(data)-1], '\n')+1])
			if want := hex.EncodeToString(sum[:]); got.Checksum != want {
				t.Errorf("Checksum = %s, want %s", got.Checksum, want)
			}

			var buf bytes.Buffer
			if err := manifest.Encode(&buf, g.want); err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if g.exact {
				if *update {
					if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				if diff := cmp.Diff(string(data), buf.String()); diff != "" {
					t.Errorf("Encode differs from the server layout (-golden +encoded):\n%s", diff)
				}
			}
			again, err := manifest.Parse(buf.Bytes())
			if err != nil {
				t.Fatalf("Parse(Encode): %v", err)
			}
			if diff := cmp.Diff(got, again, ignoreChecksum); diff != "" {
				t.Errorf("round trip (-first +second):\n%s", diff)
			}
		})
	}
}

func TestIndex(t *testing.T) {
	data, err := os.ReadFile("testdata/v2.manifest")
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	idx := m.Index()
	if len(idx) != len(m.Files) {
		t.Fatalf("Index has %d entries, want %d", len(idx), len(m.Files))
	}
	f := idx["pg_logical/not-\xffutf8"]
	if f == nil || f != &m.Files[8] {
		t.Fatalf("Index[encoded path] = %p, want %p", f, &m.Files[8])
	}
	if idx["nope"] != nil {
		t.Error("Index found a path that is not there")
	}
}

const (
	v2Head   = "{ \"PostgreSQL-Backup-Manifest-Version\": 2,\n\"System-Identifier\": 42,\n"
	okFile   = `{ "Path": "base/1/1", "Size": 8192, "Last-Modified": "2024-05-01 10:00:00 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "00000000" }`
	okRange  = `{ "Timeline": 1, "Start-LSN": "0/1000028", "End-LSN": "0/1000100" }`
	sumLabel = `"Manifest-Checksum": "`
)

// body lays out a manifest up to the checksum line.
func body(head, files, ranges string) string {
	return head + "\"Files\": [\n" + files + "\n],\n\"WAL-Ranges\": [\n" + ranges + "\n],\n"
}

// sealed appends a correct checksum line to b.
func sealed(b string) []byte {
	sum := sha256.Sum256([]byte(b))
	return []byte(b + sumLabel + hex.EncodeToString(sum[:]) + "\"}\n")
}

func withFile(f string) []byte   { return sealed(body(v2Head, f, okRange)) }
func withRange(r string) []byte  { return sealed(body(v2Head, okFile, r)) }
func withHead(h string) []byte   { return sealed(body(h, okFile, okRange)) }
func fileField(kv string) []byte { return withFile(`{ "Path": "x", "Size": 1, ` + kv + ` }`) }

func TestParseErrors(t *testing.T) {
	valid := string(sealed(body(v2Head, okFile, okRange)))
	if _, err := manifest.Parse([]byte(valid)); err != nil {
		t.Fatalf("the base case does not parse: %v", err)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		line int
		msg  string
	}{
		// Top level.
		{"empty", nil, 1, "expected the manifest's opening {, found end of manifest"},
		{"array", []byte("[]\n\n"), 1, "expected the manifest's opening {, found an array"},
		{"bom", append([]byte{0xef, 0xbb, 0xbf}, valid...), 1, "found byte 0xef"},
		{"empty object", []byte("{}\n\n"), 1, `expected version indicator "PostgreSQL-Backup-Manifest-Version", found '}'`},
		{"version not first", withHead("{ \"System-Identifier\": 42,\n\"PostgreSQL-Backup-Manifest-Version\": 2,\n"), 1, `found field "System-Identifier"`},
		{"version as string", withHead("{ \"PostgreSQL-Backup-Manifest-Version\": \"2\",\n\"System-Identifier\": 42,\n"), 1, "PostgreSQL-Backup-Manifest-Version: expected a number, found a string"},
		{"version 3", withHead("{ \"PostgreSQL-Backup-Manifest-Version\": 3,\n\"System-Identifier\": 42,\n"), 1, "unexpected manifest version 3"},
		{"version 0", withHead("{ \"PostgreSQL-Backup-Manifest-Version\": 0,\n\"System-Identifier\": 42,\n"), 1, "unexpected manifest version 0"},
		{"version fraction", withHead("{ \"PostgreSQL-Backup-Manifest-Version\": 2.0,\n\"System-Identifier\": 42,\n"), 1, "2.0 is not a non-negative integer"},
		{"version exponent", withHead("{ \"PostgreSQL-Backup-Manifest-Version\": 2e0,\n\"System-Identifier\": 42,\n"), 1, "2e0 is not a non-negative integer"},
		{"version twice", withHead(v2Head + "\"PostgreSQL-Backup-Manifest-Version\": 2,\n"), 3, `duplicate top-level field "PostgreSQL-Backup-Manifest-Version"`},
		{"unknown top-level", withHead(v2Head + "\"Label\": \"x\",\n"), 3, `unrecognized top-level field "Label"`},
		{"files twice", sealed(v2Head + "\"Files\": [],\n" + body("", okFile, okRange)), 4, `duplicate top-level field "Files"`},
		{"system identifier twice", withHead(v2Head + "\"System-Identifier\": 42,\n"), 3, `duplicate top-level field "System-Identifier"`},
		{"missing comma", withHead("{ \"PostgreSQL-Backup-Manifest-Version\": 2\n\"System-Identifier\": 42,\n"), 2, "expected , or } after a top-level field, found a string"},
		{"no checksum", []byte(body(v2Head, okFile, okRange) + "\"X\": 1}\n"), 9, `unrecognized top-level field "X"`},
		{"object ends without checksum", []byte(strings.TrimSuffix(body(v2Head, okFile, okRange), ",\n") + "}\n"), 8, "missing Manifest-Checksum, which must be the last field"},
		{"checksum not last", []byte(body(v2Head, okFile, okRange) + sumLabel + strings.Repeat("0", 64) + "\",\n\"Files\": []}\n"), 9, "expected } after Manifest-Checksum, which must be the last field, found ','"},
		{"trailing garbage", append(sealed(body(v2Head, okFile, okRange)), "{}\n"...), 10, "found an object after the manifest's closing }"},
		{"v2 without system identifier", withHead("{ \"PostgreSQL-Backup-Manifest-Version\": 2,\n"), 8, "missing System-Identifier, required in version 2"},
		{"v1 with system identifier", withHead("{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"System-Identifier\": 42,\n"), 2, "System-Identifier is not part of version 1"},
		{"system identifier string", withHead("{ \"PostgreSQL-Backup-Manifest-Version\": 2,\n\"System-Identifier\": \"42\",\n"), 2, "System-Identifier: expected a number, found a string"},
		{"system identifier negative", withHead("{ \"PostgreSQL-Backup-Manifest-Version\": 2,\n\"System-Identifier\": -1,\n"), 2, "System-Identifier: -1 is not a non-negative integer"},
		{"system identifier overflow", withHead("{ \"PostgreSQL-Backup-Manifest-Version\": 2,\n\"System-Identifier\": 18446744073709551616,\n"), 2, "System-Identifier: 18446744073709551616 is out of range"},
		{"system identifier leading zero", withHead("{ \"PostgreSQL-Backup-Manifest-Version\": 2,\n\"System-Identifier\": 042,\n"), 2, "System-Identifier: malformed number 042"},
		{"system identifier float", withHead("{ \"PostgreSQL-Backup-Manifest-Version\": 2,\n\"System-Identifier\": 7.7e18,\n"), 2, "7.7e18 is not a non-negative integer"},
		{"missing files", sealed(v2Head + "\"WAL-Ranges\": [\n" + okRange + "\n],\n"), 6, "missing Files"},
		{"missing WAL ranges", sealed(v2Head + "\"Files\": [\n" + okFile + "\n],\n"), 6, "missing WAL-Ranges"},
		{"empty WAL ranges", sealed(v2Head + "\"Files\": [\n],\n\"WAL-Ranges\": [\n],\n"), 5, "WAL-Ranges is empty"},
		{"files not array", sealed(v2Head + "\"Files\": {},\n"), 3, "expected Files: an array, found an object"},
		{"files missing comma", withFile(okFile + "\n" + strings.Replace(okFile, "base/1/1", "base/1/2", 1)), 5, "Files: expected , or ] after file 1, found an object"},

		// Files.
		{"file not object", withFile(`"base/1/1"`), 4, "file 1: expected an object, found a string"},
		{"file nested object", fileField(`"Checksum": {}`), 4, `file 1: Checksum: expected a string, found an object`},
		{"file unknown field", fileField(`"Mode": "0600"`), 4, `file 1: unexpected file field "Mode"`},
		{"file duplicate field", fileField(`"Size": 1`), 4, `file 1: duplicate field "Size"`},
		{"file missing colon", fileField(`"Last-Modified" "x"`), 4, `expected : after "Last-Modified", found a string`},
		{"file missing comma", withFile(`{ "Path": "x" "Size": 1 }`), 4, `file 1: expected , or } after "Path", found a string`},
		{"missing path", withFile(`{ "Size": 1 }`), 4, "file 1: missing path name"},
		{"empty file object", withFile(`{}`), 4, "file 1: missing path name"},
		{"both paths", withFile(`{ "Path": "x", "Encoded-Path": "78", "Size": 1 }`), 4, "file 1: both path name and encoded path name"},
		{"missing size", withFile(`{ "Path": "x" }`), 4, "file 1: missing size"},
		{"checksum without algorithm", withFile(`{ "Path": "x", "Size": 1, "Checksum": "00000000" }`), 4, "file 1: checksum without algorithm"},
		{"empty checksum without algorithm", withFile(`{ "Path": "x", "Size": 1, "Checksum": "" }`), 4, "file 1: checksum without algorithm"},
		{"encoded path odd", withFile(`{ "Encoded-Path": "787", "Size": 1 }`), 4, `file 1: could not decode file name "787"`},
		{"encoded path not hex", withFile(`{ "Encoded-Path": "7g", "Size": 1 }`), 4, `file 1: could not decode file name "7g"`},
		{"empty path", withFile(`{ "Path": "", "Size": 1 }`), 4, "file 1: empty path name"},
		{"empty encoded path", withFile(`{ "Encoded-Path": "", "Size": 1 }`), 4, "file 1: empty path name"},
		{"NUL in encoded path", withFile(`{ "Encoded-Path": "780079", "Size": 1 }`), 4, `file 1: path name "x\x00y" contains a NUL byte`},
		{"NUL escape in path", withFile(`{ "Path": "x\u0000y", "Size": 1 }`), 4, `file 1: Path: \u0000 is not allowed`},
		{"path not string", withFile(`{ "Path": 12, "Size": 1 }`), 4, "file 1: Path: expected a string, found a number"},
		{"size string", withFile(`{ "Path": "x", "Size": "1" }`), 4, "file 1: Size: expected a number, found a string"},
		{"size null", withFile(`{ "Path": "x", "Size": null }`), 4, "file 1: Size: expected a number, found null"},
		{"size bool", withFile(`{ "Path": "x", "Size": true }`), 4, "file 1: Size: expected a number, found a boolean"},
		{"size negative", withFile(`{ "Path": "x", "Size": -1 }`), 4, "file 1: Size: -1 is not a non-negative integer"},
		{"size fraction", withFile(`{ "Path": "x", "Size": 1.5 }`), 4, "file 1: Size: 1.5 is not a non-negative integer"},
		{"size beyond int64", withFile(`{ "Path": "x", "Size": 9223372036854775808 }`), 4, `file 1 "x": size 9223372036854775808 is out of range`},
		{"size beyond uint64", withFile(`{ "Path": "x", "Size": 99999999999999999999 }`), 4, "file 1: Size: 99999999999999999999 is out of range"},
		{"unknown algorithm", fileField(`"Checksum-Algorithm": "MD5", "Checksum": "00"`), 4, `file 1 "x": unrecognized checksum algorithm "MD5"`},
		{"checksum odd", fileField(`"Checksum-Algorithm": "CRC32C", "Checksum": "0000000"`), 4, `file 1 "x": invalid checksum "0000000"`},
		{"checksum not hex", fileField(`"Checksum-Algorithm": "CRC32C", "Checksum": "0000000z"`), 4, `file 1 "x": invalid checksum "0000000z"`},
		{"checksum too short", fileField(`"Checksum-Algorithm": "SHA256", "Checksum": "00000000"`), 4, `file 1 "x": checksum has 4 bytes, SHA256 needs 32`},
		{"checksum empty", fileField(`"Checksum-Algorithm": "CRC32C", "Checksum": ""`), 4, `file 1 "x": checksum has 0 bytes, CRC32C needs 4`},
		{"algorithm without checksum", fileField(`"Checksum-Algorithm": "SHA512"`), 4, `file 1 "x": SHA512 checksum missing`},
		{"NONE with checksum", fileField(`"Checksum-Algorithm": "NONE", "Checksum": "00"`), 4, `file 1 "x": checksum has 1 bytes, NONE needs 0`},
		{"duplicate path", withFile(okFile + ",\n" + okFile), 5, `file 2: duplicate path "base/1/1"`},
		{"duplicate via encoded path", withFile(okFile + ",\n" + `{ "Encoded-Path": "626173652f312f31", "Size": 0 }`), 5, `file 2: duplicate path "base/1/1"`},
		{"second file bad", withFile(okFile + ",\n" + `{ "Path": "y", "Size": 0 }` + ",\n" + `{ "Path": "z" }`), 6, "file 3: missing size"},

		// Strings.
		{"raw invalid UTF-8", withFile("{ \"Path\": \"x\xffy\", \"Size\": 1 }"), 4, "file 1: Path: string is not valid UTF-8"},
		{"escaped invalid UTF-8", withFile("{ \"Path\": \"\\n\xff\", \"Size\": 1 }"), 4, "file 1: Path: string is not valid UTF-8"},
		{"raw control character", withFile("{ \"Path\": \"x\ty\", \"Size\": 1 }"), 4, "file 1: Path: control character 0x09 must be escaped"},
		{"raw newline in escaped string", withFile("{ \"Path\": \"\\t\ny\", \"Size\": 1 }"), 4, "file 1: Path: control character 0x0a must be escaped"},
		{"bad escape", withFile(`{ "Path": "x\x41", "Size": 1 }`), 4, `file 1: Path: invalid escape \x`},
		{"short unicode escape", withFile(`{ "Path": "x\u41", "Size": 1 }`), 4, `file 1: Path: malformed \u escape`},
		{"lone high surrogate", withFile(`{ "Path": "x\ud83d", "Size": 1 }`), 4, "file 1: Path: unpaired Unicode surrogate"},
		{"high surrogate then letter", withFile(`{ "Path": "x\ud83d\u0041", "Size": 1 }`), 4, "file 1: Path: unpaired Unicode surrogate"},
		{"lone low surrogate", withFile(`{ "Path": "x\udc18", "Size": 1 }`), 4, "file 1: Path: unpaired Unicode surrogate"},
		{"unterminated string", []byte(v2Head + "\"Files\": [\n{ \"Path\": \"x\n\n"), 4, "file 1: Path: control character 0x0a must be escaped"},
		{"unterminated at end", []byte(v2Head + `"Files`), 3, "field name: unterminated string"},
		{"unterminated escape at end", []byte(v2Head + `"Files\`), 3, "field name: unterminated string"},
		{"bare word", withFile(`{ "Path": x }`), 4, `Path: expected a string, found 'x'`},

		// WAL ranges.
		{"range not object", withRange(`1`), 7, "WAL range 1: expected an object, found a number"},
		{"range unknown field", withRange(`{ "Timeline": 1, "Start-LSN": "0/1", "End-LSN": "0/2", "TLI": 1 }`), 7, `WAL range 1: unexpected WAL range field "TLI"`},
		{"range duplicate field", withRange(`{ "Timeline": 1, "Timeline": 1, "Start-LSN": "0/1", "End-LSN": "0/2" }`), 7, `WAL range 1: duplicate field "Timeline"`},
		{"range missing timeline", withRange(`{ "Start-LSN": "0/1", "End-LSN": "0/2" }`), 7, "WAL range 1: missing timeline"},
		{"range missing start", withRange(`{ "Timeline": 1, "End-LSN": "0/2" }`), 7, "WAL range 1: missing start LSN"},
		{"range missing end", withRange(`{ "Timeline": 1, "Start-LSN": "0/1" }`), 7, "WAL range 1: missing end LSN"},
		{"empty range", withRange(`{}`), 7, "WAL range 1: missing timeline"},
		{"timeline too big", withRange(`{ "Timeline": 4294967296, "Start-LSN": "0/1", "End-LSN": "0/2" }`), 7, "WAL range 1: Timeline: 4294967296 is out of range"},
		{"timeline string", withRange(`{ "Timeline": "1", "Start-LSN": "0/1", "End-LSN": "0/2" }`), 7, "WAL range 1: Timeline: expected a number, found a string"},
		{"bad start LSN", withRange(`{ "Timeline": 1, "Start-LSN": "0-1", "End-LSN": "0/2" }`), 7, `WAL range 1: Start-LSN: could not parse LSN "0-1"`},
		{"bad end LSN", withRange(`{ "Timeline": 1, "Start-LSN": "0/1", "End-LSN": "123456789/2" }`), 7, `WAL range 1: End-LSN: could not parse LSN "123456789/2"`},
		{"LSN as number", withRange(`{ "Timeline": 1, "Start-LSN": 1, "End-LSN": "0/2" }`), 7, "WAL range 1: Start-LSN: expected a string, found a number"},
		{"start after end", withRange(`{ "Timeline": 1, "Start-LSN": "0/3", "End-LSN": "0/2" }`), 7, "WAL range 1: start LSN 0/3 is after end LSN 0/2"},
		{"second range bad", withRange(okRange + ",\n" + `{ "Timeline": 1 }`), 8, "WAL range 2: missing start LSN"},
		{"ranges missing comma", withRange(okRange + " " + okRange), 7, "WAL-Ranges: expected , or ] after range 1, found an object"},

		// Manifest-Checksum.
		{"checksum mismatch", []byte(strings.Replace(valid, "42", "43", 1)), 9, "manifest checksum mismatch"},
		{"checksum uppercase mismatch", []byte(valid[:strings.Index(valid, sumLabel)] + sumLabel + strings.Repeat("A", 64) + "\"}\n"), 9, "manifest checksum mismatch"},
		{"checksum short", []byte(body(v2Head, okFile, okRange) + sumLabel + "abc\"}\n"), 9, `invalid manifest checksum "abc"`},
		{"checksum not hex", []byte(body(v2Head, okFile, okRange) + sumLabel + strings.Repeat("g", 64) + "\"}\n"), 9, "invalid manifest checksum"},
		{"checksum number", []byte(body(v2Head, okFile, okRange) + sumLabel[:len(sumLabel)-1] + "1}\n"), 9, "Manifest-Checksum: expected a string, found a number"},
		{"no final newline", []byte(strings.TrimSuffix(valid, "\n")), 9, "last line not newline-terminated"},
		{"final newline then space", []byte(valid + " "), 10, "last line not newline-terminated"},
		{"one line", []byte(strings.ReplaceAll(strings.TrimSuffix(valid, "\n"), "\n", " ") + "\n"), 1, "expected at least 2 lines"},
		{"checksum covers itself", []byte(strings.TrimSuffix(valid, "}\n") + "\n}\n"), 10, "manifest checksum mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := manifest.Parse(tc.in)
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", m)
			}
			if !errors.Is(err, manifest.ErrCorrupt) {
				t.Errorf("error %v does not match ErrCorrupt", err)
			}
			var pe *manifest.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *ParseError", err)
			}
			if pe.Line != tc.line || !strings.Contains(pe.Msg, tc.msg) {
				t.Errorf("got line %d %q\nwant line %d containing %q", pe.Line, pe.Msg, tc.line, tc.msg)
			}
			if !strings.HasPrefix(err.Error(), "manifest: corrupt: line ") {
				t.Errorf("Error() = %q", err)
			}
		})
	}
}

// TestParseAccepts covers inputs the server never writes that PostgreSQL's
// parser takes anyway.
func TestParseAccepts(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want manifest.File
	}{
		{"fields in any order", withFile(`{ "Checksum": "01020304", "Size": 7, "Checksum-Algorithm": "crc32c", "Path": "p" }`),
			manifest.File{Path: "p", Size: 7, Algorithm: "CRC32C", Checksum: []byte{1, 2, 3, 4}}},
		{"NONE algorithm", fileField(`"Checksum-Algorithm": "NoNe"`), manifest.File{Path: "x", Size: 1}},
		{"NONE with empty checksum", fileField(`"Checksum-Algorithm": "NONE", "Checksum": ""`), manifest.File{Path: "x", Size: 1}},
		{"upper-case hex", fileField(`"Checksum-Algorithm": "SHA224", "Checksum": "` + strings.Repeat("AB", 28) + `"`),
			manifest.File{Path: "x", Size: 1, Algorithm: "SHA224", Checksum: bytes.Repeat([]byte{0xab}, 28)}},
		{"SHA384", fileField(`"Checksum-Algorithm": "sha384", "Checksum": "` + strings.Repeat("01", 48) + `"`),
			manifest.File{Path: "x", Size: 1, Algorithm: "SHA384", Checksum: bytes.Repeat([]byte{1}, 48)}},
		{"SHA512", fileField(`"Checksum-Algorithm": "Sha512", "Checksum": "` + strings.Repeat("02", 64) + `"`),
			manifest.File{Path: "x", Size: 1, Algorithm: "SHA512", Checksum: bytes.Repeat([]byte{2}, 64)}},
		{"upper-case encoded path", withFile(`{ "Encoded-Path": "4142FF", "Size": 0 }`), manifest.File{Path: "AB\xff"}},
		{"every escape", withFile(`{ "Path": "\"\\\/\b\f\n\r\t\u0001\u00e9\u20AC\uD83D\uDC18", "Size": 0 }`),
			manifest.File{Path: "\"\\/\b\f\n\r\t\x01é€\U0001F418"}},
		{"size zero", withFile(`{ "Path": "x", "Size": 0 }`), manifest.File{Path: "x"}},
		{"size max", withFile(`{ "Path": "x", "Size": 9223372036854775807 }`), manifest.File{Path: "x", Size: 1<<63 - 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := manifest.Parse(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]manifest.File{tc.want}, m.Files); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
