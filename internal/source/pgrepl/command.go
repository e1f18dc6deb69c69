package pgrepl

import (
	"fmt"
	"strconv"
	"strings"
)

// Checkpoint selects how the server's backup-start checkpoint runs.
type Checkpoint string

// Checkpoint modes. The zero value means fast.
const (
	CheckpointFast   Checkpoint = "fast"
	CheckpointSpread Checkpoint = "spread"
)

// Manifest selects whether the server sends a backup manifest.
type Manifest string

// Manifest modes. The zero value means no manifest.
const (
	ManifestNo          Manifest = ""
	ManifestYes         Manifest = "yes"
	ManifestForceEncode Manifest = "force-encode" // every path hex-encoded
)

// Target names where the server sends the backup.
type Target string

// Targets. "server" (writing on the database host) is not offered: Holdfast
// is agentless and receives everything itself.
const (
	TargetClient    Target = "client"
	TargetBlackhole Target = "blackhole" // server reads and discards: measures its ceiling
)

// Limits from the server (spec §3.3).
const (
	MaxLabelLen = 1024
	MinMaxRate  = 32
	MaxMaxRate  = 1048576
)

// BaseBackupOptions are the BASE_BACKUP options (spec §3.3). The zero value
// is a valid request: fast checkpoint, no WAL, no manifest, checksums
// verified, WAIT false.
type BaseBackupOptions struct {
	// Label goes into backup_label (LABEL: line). At most 1024 bytes, one
	// line. Empty means the server's default, "base backup".
	Label string
	// Progress makes the server estimate tablespace sizes first
	// (Tablespace.SizeKB); it delays the start.
	Progress bool
	// Checkpoint is fast unless set to CheckpointSpread.
	Checkpoint Checkpoint
	// WAL appends the WAL needed for consistency to base.tar ("fetch").
	WAL bool
	// WaitForArchive waits until the server has archived the last WAL
	// segment (WAIT true). Leave false when WAL is fetched or streamed.
	WaitForArchive bool
	// Manifest asks for a backup manifest.
	Manifest Manifest
	// ManifestChecksums is NONE, CRC32C, SHA224, SHA256, SHA384 or SHA512
	// (any case); empty means the server default (CRC32C). Needs Manifest.
	ManifestChecksums string
	// NoVerifyChecksums turns off the server's data-page checksum checks
	// (VERIFY_CHECKSUMS false).
	NoVerifyChecksums bool
	// MaxRate limits the transfer rate in kB/s: 0 (unlimited) or 32..1048576.
	MaxRate int
	// Compression is server-side compression: "", "none", "gzip", "lz4" or
	// "zstd". Archive names then carry .gz/.lz4/.zst.
	Compression string
	// CompressionDetail is the server's detail string (a level, or
	// "level=N,workers=N,long"); needs Compression.
	CompressionDetail string
	// Incremental takes an incremental backup against the manifest uploaded
	// with UploadManifest on the same connection (17+).
	Incremental bool
	// TablespaceMap writes tablespace_map into base.tar instead of
	// pg_tblspc symlinks.
	TablespaceMap bool
	// Target is TargetClient (default) or TargetBlackhole.
	Target Target
}

var manifestChecksums = map[string]bool{
	"NONE": true, "CRC32C": true, "SHA224": true, "SHA256": true, "SHA384": true, "SHA512": true,
}

// Command builds the BASE_BACKUP command for a server of the given major
// version, after validating the options. It never produces the empty
// option list "BASE_BACKUP ()", which servers reject.
func (o BaseBackupOptions) Command(major int) (string, error) {
	bad := func(format string, args ...any) (string, error) {
		return "", &Error{Op: "BASE_BACKUP", Kind: ErrOption, Reason: fmt.Sprintf(format, args...)}
	}
	var opts []string
	if o.Label != "" {
		if len(o.Label) > MaxLabelLen {
			return bad("label is %d bytes, at most %d allowed", len(o.Label), MaxLabelLen)
		}
		if strings.ContainsAny(o.Label, "\x00\r\n") {
			return bad("label %q must be one line without NUL bytes", o.Label)
		}
		opts = append(opts, "LABEL "+quoteLiteral(o.Label))
	}
	if o.Progress {
		opts = append(opts, "PROGRESS")
	}
	switch o.Checkpoint {
	case "", CheckpointFast:
		opts = append(opts, "CHECKPOINT 'fast'")
	case CheckpointSpread:
		opts = append(opts, "CHECKPOINT 'spread'")
	default:
		return bad("checkpoint %q: want fast or spread", o.Checkpoint)
	}
	if o.WAL {
		opts = append(opts, "WAL")
	}
	if !o.WaitForArchive {
		opts = append(opts, "WAIT false")
	}
	if o.TablespaceMap {
		opts = append(opts, "TABLESPACE_MAP")
	}
	switch o.Manifest {
	case ManifestNo:
		if o.ManifestChecksums != "" {
			return bad("manifest checksums need a manifest")
		}
	case ManifestYes, ManifestForceEncode:
		opts = append(opts, "MANIFEST "+quoteLiteral(string(o.Manifest)))
		if o.ManifestChecksums != "" {
			alg := strings.ToUpper(o.ManifestChecksums)
			if !manifestChecksums[alg] {
				return bad("manifest checksum algorithm %q: want NONE, CRC32C, SHA224, SHA256, SHA384 or SHA512", o.ManifestChecksums)
			}
			opts = append(opts, "MANIFEST_CHECKSUMS "+quoteLiteral(alg))
		}
	default:
		return bad("manifest %q: want yes or force-encode", o.Manifest)
	}
	if o.NoVerifyChecksums {
		opts = append(opts, "VERIFY_CHECKSUMS false")
	}
	if o.MaxRate != 0 {
		if o.MaxRate < MinMaxRate || o.MaxRate > MaxMaxRate {
			return bad("max rate %d kB/s is outside %d..%d", o.MaxRate, MinMaxRate, MaxMaxRate)
		}
		opts = append(opts, "MAX_RATE "+strconv.Itoa(o.MaxRate))
	}
	switch o.Compression {
	case "", "none":
		if o.CompressionDetail != "" {
			return bad("compression detail needs a compression method")
		}
	case "gzip", "lz4", "zstd":
		opts = append(opts, "COMPRESSION "+quoteLiteral(o.Compression))
		if o.CompressionDetail != "" {
			if strings.ContainsRune(o.CompressionDetail, 0) {
				return bad("compression detail must not contain NUL bytes")
			}
			opts = append(opts, "COMPRESSION_DETAIL "+quoteLiteral(o.CompressionDetail))
		}
	default:
		return bad("compression %q: want gzip, lz4 or zstd", o.Compression)
	}
	if o.Incremental {
		if major < 17 {
			return "", &Error{Op: "BASE_BACKUP", Kind: ErrServerVersion,
				Reason: fmt.Sprintf("incremental backups need PostgreSQL 17 or later, the server is %d: take a full backup", major)}
		}
		opts = append(opts, "INCREMENTAL")
	}
	switch o.Target {
	case "", TargetClient:
	case TargetBlackhole:
		opts = append(opts, "TARGET 'blackhole'")
	default:
		return bad("target %q: want client or blackhole", o.Target)
	}
	if len(opts) == 0 {
		return "BASE_BACKUP", nil
	}
	return "BASE_BACKUP (" + strings.Join(opts, ", ") + ")", nil
}

// quoteLiteral quotes s for the replication grammar: single quotes,
// embedded quotes doubled, backslashes literal.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// quoteSlotName quotes a replication slot name as a double-quoted
// identifier.
func quoteSlotName(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
