package manifest

import (
	"errors"
	"fmt"

	"github.com/holdfast-backup/holdfast/internal/wal"
)

// ErrCorrupt is matched by every error that reports a malformed manifest, so
// callers can tell a damaged backup from a failing disk with errors.Is.
var ErrCorrupt = errors.New("manifest: corrupt")

// Manifest is a parsed backup_manifest.
type Manifest struct {
	// Version is 1 (servers 13–16) or 2 (17 and later).
	Version int
	// SystemIdentifier is the cluster's system identifier; version 2 only,
	// zero in version 1.
	SystemIdentifier uint64
	// Files lists every file of the backup in manifest order.
	Files []File
	// WALRanges lists the WAL needed to make the backup consistent, one range
	// per timeline, newest timeline first as the server writes them.
	WALRanges []WALRange
	// Checksum is the Manifest-Checksum, lowercase hex of a SHA-256. Parse
	// sets it; Encode ignores it and writes the checksum of what it writes.
	Checksum string
}

// File is one entry of the manifest's file list.
type File struct {
	// Path is the file's path relative to the data directory, as raw bytes:
	// it need not be valid UTF-8 (the manifest then carries Encoded-Path).
	// Tablespace files appear as pg_tblspc/<oid>/…, incremental files under
	// their INCREMENTAL. name.
	Path string
	// Size is the size in bytes of the file as stored in the backup.
	Size int64
	// LastModified is the modification time as the server printed it
	// ("2006-01-02 15:04:05 GMT"); PostgreSQL never reads it back, and
	// neither does Parse check its form.
	LastModified string
	// Algorithm is the checksum algorithm in canonical upper case (see
	// CanonicalAlgorithm), or "" when the file has no checksum.
	Algorithm string
	// Checksum is the digest named by Algorithm; nil when Algorithm is "".
	Checksum []byte
}

// WALRange is a stretch of WAL on one timeline that recovery must replay.
type WALRange struct {
	// Timeline is the timeline the range lies on.
	Timeline uint32
	// Start is where replay must begin on this timeline: the backup's start
	// LSN, or where the timeline began.
	Start wal.LSN
	// End is where the range ends: the backup's end LSN, or where the next
	// timeline branched off.
	End wal.LSN
}

// Index maps each path of m.Files to its entry. The pointers point into
// m.Files and stay valid until that slice is changed.
func (m *Manifest) Index() map[string]*File {
	idx := make(map[string]*File, len(m.Files))
	for i := range m.Files {
		idx[m.Files[i].Path] = &m.Files[i]
	}
	return idx
}

// ParseError locates a problem found by Parse. It matches ErrCorrupt.
type ParseError struct {
	// Line is the 1-based line of the manifest where the problem was found.
	Line int
	// Msg says what is wrong, naming the field and the file when there is one.
	Msg string
}

// Error reports the line and the problem.
func (e *ParseError) Error() string {
	return fmt.Sprintf("%v: line %d: %s", ErrCorrupt, e.Line, e.Msg)
}

// Unwrap returns ErrCorrupt.
func (e *ParseError) Unwrap() error { return ErrCorrupt }
