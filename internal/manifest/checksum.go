package manifest

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strings"

	"github.com/holdfast-backup/holdfast/internal/crc32c"
)

// ErrUnknownAlgorithm reports a checksum algorithm PostgreSQL does not have.
var ErrUnknownAlgorithm = errors.New("manifest: unknown checksum algorithm")

// The algorithm names as the server writes them.
const (
	AlgNone   = "NONE"
	AlgCRC32C = "CRC32C"
	AlgSHA224 = "SHA224"
	AlgSHA256 = "SHA256"
	AlgSHA384 = "SHA384"
	AlgSHA512 = "SHA512"
)

// CanonicalAlgorithm returns the server's spelling of a checksum algorithm
// name given in any case ("sha256" → "SHA256"), as PostgreSQL's readers accept
// any case.
func CanonicalAlgorithm(s string) (string, error) {
	for _, a := range [...]string{AlgNone, AlgCRC32C, AlgSHA224, AlgSHA256, AlgSHA384, AlgSHA512} {
		if strings.EqualFold(s, a) {
			return a, nil
		}
	}
	return "", fmt.Errorf("%w: %q", ErrUnknownAlgorithm, s)
}

// digestSize is the length of a digest of canonical algorithm alg.
func digestSize(alg string) int {
	switch alg {
	case AlgCRC32C:
		return crc32c.Size
	case AlgSHA224:
		return sha256.Size224
	case AlgSHA256:
		return sha256.Size
	case AlgSHA384:
		return sha512.Size384
	case AlgSHA512:
		return sha512.Size
	}
	return 0
}

// NewHash returns a hash computing the manifest checksum of algorithm alg
// (any case). Its Sum appends exactly the bytes the manifest's Checksum holds:
// for CRC32C the Castagnoli CRC in little-endian order, as servers on x86-64
// and arm64 write it; for NONE nothing.
func NewHash(alg string) (hash.Hash, error) {
	c, err := CanonicalAlgorithm(alg)
	if err != nil {
		return nil, err
	}
	switch c {
	case AlgCRC32C:
		return new(crc32cHash), nil
	case AlgSHA224:
		return sha256.New224(), nil
	case AlgSHA256:
		return sha256.New(), nil
	case AlgSHA384:
		return sha512.New384(), nil
	case AlgSHA512:
		return sha512.New(), nil
	}
	return noHash{}, nil
}

// crc32cHash differs from crc32c.New() only in Sum's byte order:
// PostgreSQL hex-encodes the CRC as it lies in memory, little-endian.
type crc32cHash struct{ crc uint32 }

func (c *crc32cHash) Write(p []byte) (int, error) {
	c.crc = crc32c.Update(c.crc, p)
	return len(p), nil
}
func (c *crc32cHash) Sum(b []byte) []byte { return binary.LittleEndian.AppendUint32(b, c.crc) }
func (c *crc32cHash) Reset()              { c.crc = 0 }
func (c *crc32cHash) Size() int           { return crc32c.Size }
func (c *crc32cHash) BlockSize() int      { return 1 }

// CRC32CSum is a CRC-32C as a manifest's checksum bytes: the CRC as it
// lies in memory, little-endian.
func CRC32CSum(crc uint32) []byte { return binary.LittleEndian.AppendUint32(nil, crc) }

// noHash lets callers hash every file the same way when checksums are off.
type noHash struct{}

func (noHash) Write(p []byte) (int, error) { return len(p), nil }
func (noHash) Sum(b []byte) []byte         { return b }
func (noHash) Reset()                      {}
func (noHash) Size() int                   { return 0 }
func (noHash) BlockSize() int              { return 1 }
