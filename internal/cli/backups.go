package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/holdfast-backup/holdfast/internal/app"
	"github.com/holdfast-backup/holdfast/internal/repo"
	"github.com/holdfast-backup/holdfast/internal/wal"
)

type backupsOptions struct {
	config, host, disk string
	json               bool
}

func newBackupsCmd(g *globals) *cobra.Command {
	var o backupsOptions
	cmd := &cobra.Command{
		Use:   "backups CONFIG [HOST [DISK]]",
		Short: "List the committed backups of a config, oldest first",
		Args:  cobra.RangeArgs(1, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.config = args[0]
			if len(args) > 1 {
				o.host = args[1]
			}
			if len(args) > 2 {
				o.disk = args[2]
			}
			return classify(runBackups(cmd.Context(), g, o))
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print one JSON array")
	return cmd
}

// backupJSON is the stable JSON shape of `backups --json`.
type backupJSON struct {
	ID               string    `json:"id"`
	Config           string    `json:"config"`
	Host             string    `json:"host"`
	Disk             string    `json:"disk"`
	Level            string    `json:"level"`
	Parent           *string   `json:"parent"`
	PGVersion        int       `json:"pg_version"`
	SystemIdentifier string    `json:"system_identifier"`
	Timeline         uint32    `json:"timeline"`
	StartLSN         wal.LSN   `json:"start_lsn"`
	EndLSN           wal.LSN   `json:"end_lsn"`
	StartedAt        time.Time `json:"started_at"`
	FinishedAt       time.Time `json:"finished_at"`
	SizeBytes        int64     `json:"size_bytes"`
	StoredBytes      int64     `json:"stored_bytes"`
	Compression      string    `json:"compression"`
	Checksums        string    `json:"checksum_algorithm"`
	ChainFull        string    `json:"chain_full"`    // the full backup the chain starts from
	ShareOfFull      float64   `json:"share_of_full"` // stored bytes relative to that full backup
}

func runBackups(ctx context.Context, g *globals, o backupsOptions) error {
	a := &app.App{ConfigDir: g.dir(), Log: g.log}
	c, err := loadConfig(a, o.config)
	if err != nil {
		return err
	}
	r, err := a.ReadRepo(ctx, c)
	if err != nil {
		return err
	}
	entries, problems, err := catalogFor(ctx, r, c, o.host, o.disk)
	if err != nil {
		return err
	}
	for _, p := range problems {
		g.log.Warn("unreadable backup record", "error", p.Error())
	}
	out := make([]backupJSON, 0, len(entries))
	byID := map[string]repo.Entry{}
	for _, e := range entries {
		byID[e.ID] = e
	}
	for _, e := range entries {
		comp := "none"
		if len(e.Archives) > 0 {
			comp = e.Archives[0].Compression
		}
		full := e
		for full.Parent != nil {
			p, ok := byID[*full.Parent]
			if !ok {
				break
			}
			full = p
		}
		share := 1.0
		if full.ID != e.ID && full.StoredBytes > 0 {
			share = float64(e.StoredBytes) / float64(full.StoredBytes)
		}
		out = append(out, backupJSON{
			ID: e.ID, Config: e.Config, Host: e.Host, Disk: e.Disk, Level: e.Level, Parent: e.Parent,
			PGVersion: e.PGVersion, SystemIdentifier: e.SystemIdentifier, Timeline: e.Timeline,
			StartLSN: e.StartLSN, EndLSN: e.EndLSN, StartedAt: e.StartedAt, FinishedAt: e.FinishedAt,
			SizeBytes: e.SizeBytes, StoredBytes: e.StoredBytes, Compression: comp, Checksums: e.ChecksumAlgorithm,
			ChainFull: full.ID, ShareOfFull: share,
		})
	}
	if o.json {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(g.stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tHOST\tDISK\tLEVEL\tPARENT\tPG\tSTARTED\tDURATION\tSIZE\tSTORED\tOF FULL")
	for _, b := range out {
		parent := "-"
		if b.Parent != nil {
			parent = *b.Parent
		}
		fmt.Fprintf(tw, "%s\t%s\t%q\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%.1f%%\n", b.ID, b.Host, b.Disk, b.Level, parent, b.PGVersion,
			b.StartedAt.Local().Format("2006-01-02 15:04:05"), b.FinishedAt.Sub(b.StartedAt).Round(time.Second),
			humanBytes(b.SizeBytes), humanBytes(b.StoredBytes), b.ShareOfFull*100)
	}
	return tw.Flush()
}
