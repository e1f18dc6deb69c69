package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/holdfast-backup/holdfast/internal/app"
	"github.com/holdfast-backup/holdfast/internal/config"
	"github.com/holdfast-backup/holdfast/internal/repo"
)

// loadConfig loads a config, marking failures with the config exit code.
func loadConfig(a *app.App, name string) (*config.Config, error) {
	c, err := a.Load(name)
	if err != nil {
		return nil, withCode(ExitConfig, err)
	}
	return c, nil
}

// catalogFor lists the committed backups of a config, optionally of one
// host or disk; unreadable records come back as problems.
func catalogFor(ctx context.Context, r *repo.Repo, c *config.Config, host, disk string) ([]repo.Entry, []error, error) {
	prefix := c.Name + "/"
	if host != "" {
		prefix += host + "/"
		if disk != "" {
			prefix += config.DiskKey(disk) + "/"
		}
	}
	return r.Catalog(ctx, prefix)
}

// findBackup resolves a backup id, or "latest" of one disk.
func findBackup(entries []repo.Entry, c *config.Config, id, host, disk string) (repo.Entry, error) {
	if id == "latest" {
		if host == "" || disk == "" {
			if len(c.Disks) != 1 {
				return repo.Entry{}, usagef("latest needs --host and --disk: config %s has %d disks", c.Name, len(c.Disks))
			}
			host, disk = c.Disks[0].Host, c.Disks[0].Disk
		}
		for i := len(entries) - 1; i >= 0; i-- {
			if entries[i].Host == host && entries[i].Disk == disk {
				return entries[i], nil
			}
		}
		return repo.Entry{}, fmt.Errorf("%w: config %s has no backup of %s/%s", repo.ErrNotFound, c.Name, host, disk)
	}
	if err := repo.ValidID(id); err != nil {
		return repo.Entry{}, withCode(ExitUsage, err)
	}
	for _, e := range entries {
		if e.ID == id {
			return e, nil
		}
	}
	return repo.Entry{}, fmt.Errorf("%w: config %s has no backup %s (holdfast backups %s lists them)", repo.ErrNotFound, c.Name, id, c.Name)
}

// chainOf returns the chain from the full backup to e, oldest first.
func chainOf(entries []repo.Entry, e repo.Entry) ([]repo.Entry, error) {
	byID := make(map[string]repo.Entry, len(entries))
	for _, x := range entries {
		byID[x.ID] = x
	}
	chain := []repo.Entry{e}
	for cur := e; cur.Parent != nil; {
		p, ok := byID[*cur.Parent]
		if !ok {
			return nil, fmt.Errorf("%w: backup %s builds on %s, which is missing: the chain is broken", repo.ErrNotFound, cur.ID, *cur.Parent)
		}
		if len(chain) > len(entries) {
			return nil, fmt.Errorf("backup %s: parent chain loops", e.ID)
		}
		chain = append(chain, p)
		cur = p
	}
	for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
		chain[i], chain[j] = chain[j], chain[i]
	}
	return chain, nil
}

func joinLines(errs []error) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString(oneLine(e.Error()))
		b.WriteByte('\n')
	}
	return b.String()
}
