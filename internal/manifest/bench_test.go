package manifest_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/holdfast-backup/holdfast/internal/manifest"
)

// bigManifest is a v2 manifest of n files shaped like a real cluster's:
// relation files under base/<db>/ with CRC32C checksums.
func bigManifest(b *testing.B, n int) []byte {
	m := &manifest.Manifest{Version: 2, SystemIdentifier: 7710952871990011363, WALRanges: oneRange}
	m.Files = make([]manifest.File, n)
	for i := range m.Files {
		m.Files[i] = manifest.File{
			Path:         fmt.Sprintf("base/16384/%d", 16385+i),
			Size:         int64(i%131072) * 8192,
			LastModified: fmt.Sprintf("2024-05-01 10:%02d:%02d GMT", i/60%60, i%60),
			Algorithm:    "CRC32C",
			Checksum:     []byte{byte(i), byte(i >> 8), byte(i >> 16), 0},
		}
	}
	var buf bytes.Buffer
	if err := manifest.Encode(&buf, m); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

func BenchmarkParse(b *testing.B) {
	data := bigManifest(b, 100_000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := manifest.Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	data := bigManifest(b, 100_000)
	m, err := manifest.Parse(data)
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	buf.Grow(len(data))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := manifest.Encode(&buf, m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHash(b *testing.B) {
	block := make([]byte, 1<<20)
	for i := range block {
		block[i] = byte(i * 7)
	}
	for _, alg := range []string{"NONE", "CRC32C", "SHA224", "SHA256", "SHA384", "SHA512"} {
		b.Run(alg, func(b *testing.B) {
			h, err := manifest.NewHash(alg)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(block)))
			for b.Loop() {
				h.Write(block)
			}
			h.Sum(nil)
		})
	}
}
