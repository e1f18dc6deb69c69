package manifest_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/holdfast-backup/holdfast/internal/manifest"
)

// FuzzParse checks that Parse never panics, that its errors are ParseErrors
// matching ErrCorrupt, and that whatever it accepts survives Encode. A fuzzer
// cannot forge a SHA-256, so each input is also tried as the body of a
// manifest with a correct checksum line appended.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.manifest")
	for _, name := range seeds {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		if i := bytes.LastIndexByte(data[:len(data)-1], '\n'); i > 0 {
			f.Add(data[:i+1])
		}
	}
	f.Add([]byte(body(v2Head, okFile, okRange)))
	f.Add([]byte(body("{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n", `{ "Encoded-Path": "ff00ff", "Size": 1 }`, okRange)))
	f.Add([]byte(body(v2Head, `{ "Path": "\ud83d\udc18\u0001\"\\\/", "Size": 18446744073709551615 }`, okRange)))
	f.Add([]byte(body(v2Head, "", okRange)))
	f.Add([]byte("{}\n\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		check(t, data)
		if len(data) > 0 && data[len(data)-1] == '\n' {
			sum := sha256.Sum256(data)
			check(t, append(append(data[:len(data):len(data)], `"Manifest-Checksum": "`+hex.EncodeToString(sum[:])...), "\"}\n"...))
		}
	})
}

func check(t *testing.T, data []byte) {
	m, err := manifest.Parse(data)
	if err != nil {
		var pe *manifest.ParseError
		if !errors.Is(err, manifest.ErrCorrupt) || !errors.As(err, &pe) || pe.Line < 1 {
			t.Fatalf("Parse error %#v is not a located ErrCorrupt", err)
		}
		return
	}
	var buf bytes.Buffer
	if err := manifest.Encode(&buf, m); err != nil {
		t.Fatalf("Encode(Parse(x)): %v", err)
	}
	again, err := manifest.Parse(buf.Bytes())
	if err != nil {
		t.Fatalf("Parse(Encode(Parse(x))): %v\n%s", err, buf.Bytes())
	}
	if diff := cmp.Diff(m, again, ignoreChecksum); diff != "" {
		t.Fatalf("round trip (-first +second):\n%s", diff)
	}
	// Encoding is canonical: a second pass writes the same bytes.
	var buf2 bytes.Buffer
	if err := manifest.Encode(&buf2, again); err != nil || !bytes.Equal(buf.Bytes(), buf2.Bytes()) {
		t.Fatalf("Encode is not stable (%v)", err)
	}
}
