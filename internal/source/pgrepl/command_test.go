package pgrepl_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/holdfast-backup/holdfast/internal/source/pgrepl"
)

func TestCommand(t *testing.T) {
	tests := []struct {
		name  string
		opts  pgrepl.BaseBackupOptions
		major int
		want  string
	}{
		{"zero value", pgrepl.BaseBackupOptions{}, 15,
			"BASE_BACKUP (CHECKPOINT 'fast', WAIT false)"},
		{"label quoting", pgrepl.BaseBackupOptions{Label: `it's a \ label`}, 15,
			`BASE_BACKUP (LABEL 'it''s a \ label', CHECKPOINT 'fast', WAIT false)`},
		{"label of 1024 bytes", pgrepl.BaseBackupOptions{Label: strings.Repeat("x", 1024)}, 15,
			"BASE_BACKUP (LABEL '" + strings.Repeat("x", 1024) + "', CHECKPOINT 'fast', WAIT false)"},
		{"everything", pgrepl.BaseBackupOptions{
			Label: "full", Progress: true, Checkpoint: pgrepl.CheckpointSpread, WAL: true,
			WaitForArchive: true, TablespaceMap: true, Manifest: pgrepl.ManifestYes,
			ManifestChecksums: "sha256", NoVerifyChecksums: true, MaxRate: 32,
			Compression: "zstd", CompressionDetail: "level=3,workers=2",
		}, 16,
			"BASE_BACKUP (LABEL 'full', PROGRESS, CHECKPOINT 'spread', WAL, TABLESPACE_MAP, MANIFEST 'yes', " +
				"MANIFEST_CHECKSUMS 'SHA256', VERIFY_CHECKSUMS false, MAX_RATE 32, COMPRESSION 'zstd', " +
				"COMPRESSION_DETAIL 'level=3,workers=2')"},
		{"force-encode, max rate upper bound", pgrepl.BaseBackupOptions{Manifest: pgrepl.ManifestForceEncode, MaxRate: 1048576}, 15,
			"BASE_BACKUP (CHECKPOINT 'fast', WAIT false, MANIFEST 'force-encode', MAX_RATE 1048576)"},
		{"incremental on 17", pgrepl.BaseBackupOptions{Incremental: true, Manifest: pgrepl.ManifestYes}, 17,
			"BASE_BACKUP (CHECKPOINT 'fast', WAIT false, MANIFEST 'yes', INCREMENTAL)"},
		{"blackhole", pgrepl.BaseBackupOptions{Target: pgrepl.TargetBlackhole, Checkpoint: pgrepl.CheckpointFast}, 18,
			"BASE_BACKUP (CHECKPOINT 'fast', WAIT false, TARGET 'blackhole')"},
		{"explicit client target and no compression", pgrepl.BaseBackupOptions{Target: pgrepl.TargetClient, Compression: "none"}, 18,
			"BASE_BACKUP (CHECKPOINT 'fast', WAIT false)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.opts.Command(tt.major)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Command:\n got %s\nwant %s", got, tt.want)
			}
			if strings.Contains(got, "()") {
				t.Errorf("empty option list in %s", got)
			}
		})
	}
}

func TestCommandRejects(t *testing.T) {
	tests := []struct {
		name  string
		opts  pgrepl.BaseBackupOptions
		major int
		kind  error
	}{
		{"label too long", pgrepl.BaseBackupOptions{Label: strings.Repeat("x", 1025)}, 15, pgrepl.ErrOption},
		{"label with newline", pgrepl.BaseBackupOptions{Label: "a\nb"}, 15, pgrepl.ErrOption},
		{"label with NUL", pgrepl.BaseBackupOptions{Label: "a\x00b"}, 15, pgrepl.ErrOption},
		{"checkpoint", pgrepl.BaseBackupOptions{Checkpoint: "slow"}, 15, pgrepl.ErrOption},
		{"max rate too low", pgrepl.BaseBackupOptions{MaxRate: 31}, 15, pgrepl.ErrOption},
		{"max rate too high", pgrepl.BaseBackupOptions{MaxRate: 1048577}, 15, pgrepl.ErrOption},
		{"negative max rate", pgrepl.BaseBackupOptions{MaxRate: -1}, 15, pgrepl.ErrOption},
		{"checksums without manifest", pgrepl.BaseBackupOptions{ManifestChecksums: "SHA256"}, 15, pgrepl.ErrOption},
		{"unknown checksum", pgrepl.BaseBackupOptions{Manifest: pgrepl.ManifestYes, ManifestChecksums: "MD5"}, 15, pgrepl.ErrOption},
		{"manifest no spelled out", pgrepl.BaseBackupOptions{Manifest: "no"}, 15, pgrepl.ErrOption},
		{"compression", pgrepl.BaseBackupOptions{Compression: "GZIP"}, 15, pgrepl.ErrOption},
		{"detail without compression", pgrepl.BaseBackupOptions{CompressionDetail: "5"}, 15, pgrepl.ErrOption},
		{"server target", pgrepl.BaseBackupOptions{Target: "server"}, 15, pgrepl.ErrOption},
		{"incremental on 16", pgrepl.BaseBackupOptions{Incremental: true}, 16, pgrepl.ErrServerVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.opts.Command(tt.major)
			if !errors.Is(err, tt.kind) {
				t.Fatalf("Command = %q, %v; want an error wrapping %v", got, err, tt.kind)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}
