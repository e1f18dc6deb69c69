package wal

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// LSN is a position in the write-ahead log, printed by PostgreSQL as two
// hexadecimal halves "X/X".
type LSN uint64

// ErrBadLSN reports text that is not an LSN.
var ErrBadLSN = errors.New("wal: malformed LSN")

// ParseLSN reads PostgreSQL's "X/X" notation. Each half may have 1 to 8 hex
// digits, upper or lower case, so a future zero-padded form still parses.
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || !hexHalf(hi) || !hexHalf(lo) {
		return 0, fmt.Errorf("%w: %q", ErrBadLSN, s)
	}
	h, _ := strconv.ParseUint(hi, 16, 32)
	l, _ := strconv.ParseUint(lo, 16, 32)
	return LSN(h<<32 | l), nil
}

func hexHalf(s string) bool {
	if len(s) == 0 || len(s) > 8 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// String prints the LSN as PostgreSQL does: upper-case hex, no padding.
func (l LSN) String() string {
	return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l))
}

// MarshalText lets LSNs appear as strings in JSON.
func (l LSN) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText parses the "X/X" form.
func (l *LSN) UnmarshalText(b []byte) error {
	v, err := ParseLSN(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// DefaultSegmentSize is the WAL segment size of a default initdb.
const DefaultSegmentSize = 16 << 20

// SegmentStart rounds l down to the start of its segment.
func (l LSN) SegmentStart(segSize uint64) LSN {
	return LSN(uint64(l) - uint64(l)%segSize)
}

// SegmentName is the file name of the segment holding l on timeline tli,
// "TTTTTTTTXXXXXXXXYYYYYYYY" as in pg_wal.
func SegmentName(tli uint32, l LSN, segSize uint64) string {
	segno := uint64(l) / segSize
	perID := (uint64(1) << 32) / segSize
	return fmt.Sprintf("%08X%08X%08X", tli, segno/perID, segno%perID)
}

// ParseSegmentSize reads the value of "SHOW wal_segment_size" ("16MB", "1GB",
// "64MB") and checks it is a power of two between 1 MiB and 1 GiB.
func ParseSegmentSize(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	mult := uint64(1)
	switch {
	case strings.HasSuffix(s, "GB"):
		mult, s = 1<<30, strings.TrimSuffix(s, "GB")
	case strings.HasSuffix(s, "MB"):
		mult, s = 1<<20, strings.TrimSuffix(s, "MB")
	case strings.HasSuffix(s, "kB"):
		mult, s = 1<<10, strings.TrimSuffix(s, "kB")
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("wal: segment size %q: %w", s, err)
	}
	v := n * mult
	if v < 1<<20 || v > 1<<30 || v&(v-1) != 0 {
		return 0, fmt.Errorf("wal: segment size %d is not a power of two between 1MB and 1GB", v)
	}
	return v, nil
}
