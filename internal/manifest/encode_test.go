package manifest_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/holdfast-backup/holdfast/internal/manifest"
	"github.com/holdfast-backup/holdfast/internal/wal"
)

var oneRange = []manifest.WALRange{{Timeline: 1, Start: 0x3000028, End: 0x3000100}}

func TestWriterMatchesEncode(t *testing.T) {
	m := &manifest.Manifest{
		Version:          2,
		SystemIdentifier: 7,
		Files: []manifest.File{
			{Path: "a", Size: 1, LastModified: "2024-01-01 00:00:00 GMT", Algorithm: "sha224", Checksum: make([]byte, 28)},
			{Path: "b\xfe", Size: 2, LastModified: "2024-01-01 00:00:00 GMT", Algorithm: "NONE"},
			{Path: "c", Size: 3},
		},
		WALRanges: []manifest.WALRange{{Timeline: 3, Start: 0x5000000, End: 0x5000100}, {Timeline: 2, Start: 0x4000028, End: 0x5000000}},
	}
	var enc bytes.Buffer
	if err := manifest.Encode(&enc, m); err != nil {
		t.Fatal(err)
	}
	var streamed bytes.Buffer
	w := manifest.NewWriter(&streamed, m.Version, m.SystemIdentifier)
	for i := range m.Files {
		if err := w.WriteFile(&m.Files[i]); err != nil {
			t.Fatal(err)
		}
	}
	if w.Checksum() != "" {
		t.Errorf("Checksum before Finish = %q", w.Checksum())
	}
	if err := w.Finish(m.WALRanges); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(enc.String(), streamed.String()); diff != "" {
		t.Errorf("Writer differs from Encode:\n%s", diff)
	}
	got, err := manifest.Parse(streamed.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if got.Checksum != w.Checksum() {
		t.Errorf("Writer.Checksum = %s, manifest says %s", w.Checksum(), got.Checksum)
	}
	if got.Files[0].Algorithm != "SHA224" || got.Files[1].Algorithm != "" {
		t.Errorf("algorithms not canonical: %q %q", got.Files[0].Algorithm, got.Files[1].Algorithm)
	}
	want := "{ \"PostgreSQL-Backup-Manifest-Version\": 2,\n\"System-Identifier\": 7,\n\"Files\": [\n" +
		`{ "Path": "a", "Size": 1, "Last-Modified": "2024-01-01 00:00:00 GMT", "Checksum-Algorithm": "SHA224", "Checksum": "` + strings.Repeat("00", 28) + "\" },\n" +
		`{ "Encoded-Path": "62fe", "Size": 2, "Last-Modified": "2024-01-01 00:00:00 GMT" },` + "\n" +
		`{ "Path": "c", "Size": 3, "Last-Modified": "" }` + "\n],\n\"WAL-Ranges\": [\n" +
		`{ "Timeline": 3, "Start-LSN": "0/5000000", "End-LSN": "0/5000100" },` + "\n" +
		`{ "Timeline": 2, "Start-LSN": "0/4000028", "End-LSN": "0/5000000" }` + "\n],\n" +
		`"Manifest-Checksum": "` + w.Checksum() + "\"}\n"
	if diff := cmp.Diff(want, streamed.String()); diff != "" {
		t.Errorf("layout (-want +got):\n%s", diff)
	}
}

func TestEncodeEmptyFiles(t *testing.T) {
	var buf bytes.Buffer
	if err := manifest.Encode(&buf, &manifest.Manifest{Version: 1, WALRanges: oneRange}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), "{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n],\n\"WAL-Ranges\": [\n{") {
		t.Errorf("layout: %q", buf.String())
	}
	m, err := manifest.Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 0 || m.Version != 1 {
		t.Errorf("got %+v", m)
	}
}

func TestEncodeErrors(t *testing.T) {
	file := func(f manifest.File) *manifest.Manifest {
		return &manifest.Manifest{Version: 2, Files: []manifest.File{f}, WALRanges: oneRange}
	}
	for _, tc := range []struct {
		name string
		m    *manifest.Manifest
		msg  string
	}{
		{"version 0", &manifest.Manifest{WALRanges: oneRange}, "unsupported manifest version 0"},
		{"version 3", &manifest.Manifest{Version: 3, WALRanges: oneRange}, "unsupported manifest version 3"},
		{"v1 with system identifier", &manifest.Manifest{Version: 1, SystemIdentifier: 1, WALRanges: oneRange}, "version 1 has no System-Identifier"},
		{"no WAL range", &manifest.Manifest{Version: 2}, "no WAL range"},
		{"start after end", &manifest.Manifest{Version: 2, WALRanges: []manifest.WALRange{{Timeline: 1, Start: 2, End: 1}}}, "WAL range 1: start 0/2 after end 0/1"},
		{"empty path", file(manifest.File{}), "empty path"},
		{"NUL in path", file(manifest.File{Path: "a\x00b"}), `path "a\x00b" contains a NUL byte`},
		{"negative size", file(manifest.File{Path: "a", Size: -1}), `"a": negative size -1`},
		{"bad Last-Modified", file(manifest.File{Path: "a", LastModified: "\xff"}), `Last-Modified "\xff" is not NUL-free UTF-8`},
		{"NUL in Last-Modified", file(manifest.File{Path: "a", LastModified: "\x00"}), `is not NUL-free UTF-8`},
		{"unknown algorithm", file(manifest.File{Path: "a", Algorithm: "MD5", Checksum: make([]byte, 16)}), `"a": manifest: unknown checksum algorithm: "MD5"`},
		{"checksum without algorithm", file(manifest.File{Path: "a", Checksum: []byte{1}}), `"a": checksum has 1 bytes, NONE needs 0`},
		{"short checksum", file(manifest.File{Path: "a", Algorithm: "CRC32C", Checksum: []byte{1}}), `"a": checksum has 1 bytes, CRC32C needs 4`},
		{"duplicate path", &manifest.Manifest{Version: 2, Files: []manifest.File{{Path: "a"}, {Path: "a"}}, WALRanges: oneRange}, `duplicate path "a"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := manifest.Encode(new(bytes.Buffer), tc.m)
			if !errors.Is(err, manifest.ErrInvalid) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Encode = %v, want ErrInvalid containing %q", err, tc.msg)
			}
		})
	}
}

func TestWriterStickyErrors(t *testing.T) {
	var buf bytes.Buffer
	w := manifest.NewWriter(&buf, 2, 1)
	bad := w.WriteFile(&manifest.File{Path: ""})
	if !errors.Is(bad, manifest.ErrInvalid) {
		t.Fatalf("WriteFile = %v", bad)
	}
	if err := w.WriteFile(&manifest.File{Path: "ok"}); err != bad {
		t.Errorf("WriteFile after an error = %v, want %v", err, bad)
	}
	if err := w.Finish(oneRange); err != bad {
		t.Errorf("Finish after an error = %v, want %v", err, bad)
	}

	w = manifest.NewWriter(&buf, 2, 1)
	if err := w.Finish(oneRange); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(oneRange); !errors.Is(err, manifest.ErrInvalid) {
		t.Errorf("second Finish = %v", err)
	}
	if err := w.WriteFile(&manifest.File{Path: "late"}); !errors.Is(err, manifest.ErrInvalid) {
		t.Errorf("WriteFile after Finish = %v", err)
	}
}

// failAfter accepts n bytes, then fails every write.
type failAfter struct{ n int }

var errDisk = errors.New("disk full")

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) <= f.n {
		f.n -= len(p)
		return len(p), nil
	}
	n := f.n
	f.n = 0
	return n, errDisk
}

func TestWriterWriteError(t *testing.T) {
	for _, files := range []int{0, 1, 5000} {
		t.Run(fmt.Sprint(files), func(t *testing.T) {
			w := manifest.NewWriter(&failAfter{n: 100}, 2, 1)
			var err error
			for i := 0; i < files && err == nil; i++ {
				err = w.WriteFile(&manifest.File{Path: fmt.Sprintf("base/1/%d", i), Size: 8192})
			}
			if err == nil {
				err = w.Finish(oneRange)
			}
			if !errors.Is(err, errDisk) {
				t.Fatalf("got %v, want %v", err, errDisk)
			}
			if err2 := w.Finish(oneRange); err2 != err {
				t.Errorf("error not sticky: %v then %v", err, err2)
			}
		})
	}
}

// TestEncodeParseRoundTrip checks odd values the golden files do not hold.
func TestEncodeParseRoundTrip(t *testing.T) {
	var files []manifest.File
	for c := 1; c < 0x100; c++ {
		files = append(files, manifest.File{Path: string([]byte{'p', byte(c)}), LastModified: string(rune(c))})
	}
	files = append(files,
		manifest.File{Path: "\xed\xa0\x80 surrogate encoded in UTF-8 is not UTF-8"},
		manifest.File{Path: "\U0010FFFF"},
		manifest.File{Path: "x", Size: 1<<63 - 1, Algorithm: "SHA512", Checksum: bytes.Repeat([]byte{0xff}, 64)},
	)
	m := &manifest.Manifest{Version: 2, SystemIdentifier: 1<<64 - 1, Files: files,
		WALRanges: []manifest.WALRange{{Timeline: 1<<32 - 1, Start: 0, End: ^wal.LSN(0)}}}
	var buf bytes.Buffer
	if err := manifest.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	got, err := manifest.Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, got, ignoreChecksum); diff != "" {
		t.Errorf("(-encoded +parsed):\n%s", diff)
	}
	if !bytes.Contains(buf.Bytes(), []byte(`"p\u001f"`)) || !bytes.Contains(buf.Bytes(), []byte("\"p\x7f\"")) {
		t.Error(`control bytes are not escaped as PostgreSQL does (\u001f, raw DEL)`)
	}
	if !bytes.Contains(buf.Bytes(), []byte(`"Encoded-Path": "70ff"`)) {
		t.Error("a non-UTF-8 path was not written as Encoded-Path")
	}
}
