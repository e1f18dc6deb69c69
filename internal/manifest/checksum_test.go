package manifest_test

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/holdfast-backup/holdfast/internal/manifest"
)

func TestNewHash(t *testing.T) {
	for _, tc := range []struct {
		alg, in, want string
		size          int
	}{
		{"NONE", "abc", "", 0},
		{"none", "", "", 0},
		{"CRC32C", "", "00000000", 4},
		// The standard check value 0xe3069283, little-endian as the server writes it.
		{"crc32c", "123456789", "839206e3", 4},
		{"CRC32C", strings.Repeat("\x00", 8192), "23464490", 4},
		{"SHA224", "", "d14a028c2a3a2bc9476102bb288234c415a2b01f828ea62ac5b3e42f", 28},
		{"sha256", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 32},
		{"SHA256", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", 32},
		{"Sha384", "", "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b", 48},
		{"SHA512", "", "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e", 64},
	} {
		h, err := manifest.NewHash(tc.alg)
		if err != nil {
			t.Fatalf("NewHash(%q): %v", tc.alg, err)
		}
		if h.Size() != tc.size {
			t.Errorf("%s: Size = %d, want %d", tc.alg, h.Size(), tc.size)
		}
		if tc.want == "" && tc.size != 0 {
			continue
		}
		// Write in two pieces to exercise running state, then Reset and redo.
		for range 2 {
			h.Write([]byte(tc.in[:len(tc.in)/2]))
			h.Write([]byte(tc.in[len(tc.in)/2:]))
			if got := hex.EncodeToString(h.Sum(nil)); got != tc.want {
				t.Errorf("%s(%q) = %s, want %s", tc.alg, tc.in, got, tc.want)
			}
			h.Reset()
		}
		if h.BlockSize() <= 0 {
			t.Errorf("%s: BlockSize = %d", tc.alg, h.BlockSize())
		}
	}
	if _, err := manifest.NewHash("MD5"); !errors.Is(err, manifest.ErrUnknownAlgorithm) {
		t.Errorf("NewHash(MD5) = %v", err)
	}
}

func TestCanonicalAlgorithm(t *testing.T) {
	for in, want := range map[string]string{
		"none": "NONE", "Crc32c": "CRC32C", "sha224": "SHA224", "SHA256": "SHA256", "sHa384": "SHA384", "sha512": "SHA512",
	} {
		if got, err := manifest.CanonicalAlgorithm(in); err != nil || got != want {
			t.Errorf("CanonicalAlgorithm(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "md5", "sha-256", "crc32", "SHA256 "} {
		if _, err := manifest.CanonicalAlgorithm(in); !errors.Is(err, manifest.ErrUnknownAlgorithm) {
			t.Errorf("CanonicalAlgorithm(%q) = %v, want ErrUnknownAlgorithm", in, err)
		}
	}
}
