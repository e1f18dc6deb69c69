package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/holdfast-backup/holdfast/internal/app"
	"github.com/holdfast-backup/holdfast/internal/repo"
	"github.com/holdfast-backup/holdfast/internal/verify"
)

func newVerifyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "verify CONFIG [BACKUP-ID...]",
		Short: "Re-read backups from the repository and report every problem",
		Long: `Re-read every stored object of the named backups (all backups of CONFIG when
none is named) and check them against backup.json and the server's manifest;
an incremental backup is also checked against its parent chain. Every problem
is printed, one per line. Exit status 0 only if all backups are intact.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return classify(runVerify(cmd.Context(), g, args[0], args[1:]))
		},
	}
}

func runVerify(ctx context.Context, g *globals, config string, ids []string) error {
	a := &app.App{ConfigDir: g.dir(), Log: g.log}
	c, err := loadConfig(a, config)
	if err != nil {
		return err
	}
	r, err := a.ReadRepo(ctx, c)
	if err != nil {
		return err
	}
	entries, unreadable, err := catalogFor(ctx, r, c, "", "")
	if err != nil {
		return err
	}
	var problems []string
	for _, u := range unreadable {
		problems = append(problems, oneLine(u.Error()))
	}
	todo := entries
	if len(ids) > 0 {
		todo = nil
		for _, id := range ids {
			e, err := findBackup(entries, c, id, "", "")
			if err != nil {
				return err
			}
			todo = append(todo, e)
		}
	}
	// Each backup is read once, whether asked for or an ancestor of one.
	found := map[string][]verify.Problem{}
	check := func(e repo.Entry) []verify.Problem {
		ps, done := found[e.ID]
		if !done {
			ps = verify.Backup(ctx, r, e, entries)
			found[e.ID] = ps
		}
		return ps
	}
	for _, e := range todo {
		ps := check(e)
		for _, p := range ps {
			problems = append(problems, oneLine(p.String()))
		}
		if len(ps) == 0 {
			fmt.Fprintf(g.stdout, "backup %s (%s/%s, %s): ok\n", e.ID, e.Host, e.Disk, e.Level)
		}
	}
	// A backup is only as good as its chain.
	for _, e := range todo {
		chain, err := chainOf(entries, e)
		if err != nil {
			continue // the missing parent is already reported by verify.Backup
		}
		for _, anc := range chain[:len(chain)-1] {
			if ps := check(anc); len(ps) > 0 {
				problems = append(problems, fmt.Sprintf("backup %s: depends on backup %s, which has problems: %s", e.ID, anc.ID, oneLine(ps[0].String())))
			}
		}
	}
	for _, p := range problems {
		fmt.Fprintln(g.stdout, p)
	}
	if len(problems) > 0 {
		return withCode(ExitVerify, fmt.Errorf("verify %s: %d problem(s) found", c.Name, len(problems)))
	}
	if len(todo) == 0 {
		fmt.Fprintf(g.stdout, "config %s has no backups\n", c.Name)
	}
	return nil
}
