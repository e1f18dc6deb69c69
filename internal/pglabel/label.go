// Package pglabel parses PostgreSQL's backup_label file: where recovery
// starts, on which timeline, and for an incremental backup which backup it
// builds on. It is a leaf package with no project imports but wal.
//
// The file is text, one "KEY: value" line each:
//
//	START WAL LOCATION: 0/7000028 (file 000000010000000000000007)
//	CHECKPOINT LOCATION: 0/7000080
//	BACKUP METHOD: streamed
//	BACKUP FROM: primary
//	START TIME: 2026-11-22 17:01:02 UTC
//	LABEL: holdfast 20261122T170102Z-a1b2c3
//	START TIMELINE: 1
//	INCREMENTAL FROM LSN: 0/5000028      (incremental backups only)
//	INCREMENTAL FROM TLI: 1              (incremental backups only)
package pglabel

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/holdfast-backup/holdfast/internal/wal"
)

// ErrMalformed reports a backup_label that cannot be used.
var ErrMalformed = errors.New("pglabel: malformed backup_label")

// Label is the parsed content of backup_label.
type Label struct {
	StartLSN      wal.LSN
	StartTimeline uint32
	Label         string
	// Incremental is true when the backup is incremental; then FromLSN and
	// FromTimeline name the start of the backup it builds on.
	Incremental  bool
	FromLSN      wal.LSN
	FromTimeline uint32
}

// maxLabel bounds the input; a real backup_label is well under 4 kB.
const maxLabel = 64 << 10

// Parse reads backup_label content.
func Parse(b []byte) (Label, error) {
	var l Label
	if len(b) > maxLabel {
		return l, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	var haveStart, haveTLI, haveFromLSN, haveFromTLI bool
	for _, line := range bytes.Split(b, []byte("\n")) {
		key, val, ok := strings.Cut(string(line), ": ")
		if !ok {
			continue
		}
		var err error
		switch key {
		case "START WAL LOCATION":
			lsn, _, _ := strings.Cut(val, " ")
			l.StartLSN, err = wal.ParseLSN(lsn)
			haveStart = true
		case "START TIMELINE":
			l.StartTimeline, err = parseTLI(val)
			haveTLI = true
		case "LABEL":
			l.Label = val
		case "INCREMENTAL FROM LSN":
			l.FromLSN, err = wal.ParseLSN(val)
			haveFromLSN = true
		case "INCREMENTAL FROM TLI":
			l.FromTimeline, err = parseTLI(val)
			haveFromTLI = true
		}
		if err != nil {
			return l, fmt.Errorf("%w: %s: %v", ErrMalformed, key, err)
		}
	}
	if !haveStart || !haveTLI {
		return l, fmt.Errorf("%w: no START WAL LOCATION or START TIMELINE", ErrMalformed)
	}
	if haveFromLSN != haveFromTLI {
		return l, fmt.Errorf("%w: INCREMENTAL FROM LSN and TLI must both be present or both absent", ErrMalformed)
	}
	l.Incremental = haveFromLSN
	return l, nil
}

func parseTLI(s string) (uint32, error) {
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("bad timeline %q", s)
	}
	return uint32(v), nil
}

// StripIncremental returns the label with the INCREMENTAL FROM lines
// removed, byte for byte otherwise: the backup_label of a data directory
// rebuilt from a chain, as pg_combinebackup writes it.
func StripIncremental(b []byte) []byte {
	var out []byte
	for len(b) > 0 {
		line := b
		next := []byte(nil)
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, next = b[:i+1], b[i+1:]
		}
		if !bytes.HasPrefix(line, []byte("INCREMENTAL FROM LSN: ")) && !bytes.HasPrefix(line, []byte("INCREMENTAL FROM TLI: ")) {
			out = append(out, line...)
		}
		b = next
	}
	return out
}
