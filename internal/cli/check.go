package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/holdfast-backup/holdfast/internal/app"
)

func newCheckCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "check CONFIG [HOST [DISK...]]",
		Short: "Check that the disks can be backed up: server, role, settings, repository",
		Long: `Run the preflight a backup depends on, without taking one: the repository is
writable and has room; each server is reachable, accepts the role with the
REPLICATION attribute, has wal_level replica or logical, a free WAL sender for
the streamed WAL, and summarize_wal on where incremental backups are wanted.
This is the same check amdumpd's CHECK runs. Exit status 0 only if nothing
failed (warnings do not fail).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			host := ""
			var disks []string
			if len(args) > 1 {
				host, disks = args[1], args[2:]
			}
			return classify(runCheck(cmd.Context(), g, args[0], host, disks))
		},
	}
}

func runCheck(ctx context.Context, g *globals, config, host string, names []string) error {
	a := &app.App{ConfigDir: g.dir(), Log: g.log}
	c, err := loadConfig(a, config)
	if err != nil {
		return err
	}
	disks := c.Disks
	if host != "" {
		if disks, err = c.Select(host, names); err != nil {
			return withCode(ExitConfig, err)
		}
	}
	failures := a.Check(ctx, c, disks, func(f app.Finding) { fmt.Fprintln(g.stdout, f.String()) })
	fmt.Fprintf(g.stdout, "holdfast check: %d disk(s) checked, %d problem(s) found\n", len(disks), failures)
	if failures > 0 {
		return fmt.Errorf("check %s: %d problem(s) found", c.Name, failures)
	}
	return nil
}
