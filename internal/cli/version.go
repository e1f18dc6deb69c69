package cli

import (
	"encoding/json"
	"fmt"

	"github.com/holdfast-backup/holdfast/internal/archive"
	"github.com/holdfast-backup/holdfast/internal/buildinfo"
	"github.com/spf13/cobra"
)

func newVersionCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, Go version and zstd encoder",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := buildinfo.Read()
			if asJSON {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					buildinfo.Info
					Zstd string `json:"zstd"`
				}{in, archive.EncoderName})
			}
			commit := in.Commit
			if in.Modified {
				commit += " (modified)"
			}
			_, err := fmt.Fprintf(g.stdout, "holdfast %s\ncommit %s\n%s\nzstd encoder: %s\n", in.Version, commit, in.GoVersion, archive.EncoderName)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}
