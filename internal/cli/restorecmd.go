package cli

import (
	"context"
	"fmt"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/holdfast-backup/holdfast/internal/app"
	"github.com/holdfast-backup/holdfast/internal/restore"
)

type restoreOptions struct {
	config, id  string
	to          string
	tablespaces []string
	host, disk  string
	owner       string
}

func newRestoreCmd(g *globals) *cobra.Command {
	var o restoreOptions
	cmd := &cobra.Command{
		Use:   "restore CONFIG BACKUP-ID|latest --to DIR [--tablespace OLDDIR=NEWDIR]...",
		Short: "Write a data directory from a backup (rebuilding incremental chains)",
		Long: `Write a data directory that PostgreSQL starts: the base archive into DIR, each
user tablespace into its original directory or the one --tablespace maps it to,
the WAL captured during the backup into pg_wal, and backup_manifest for
pg_verifybackup. An incremental backup is rebuilt from its chain. DIR and every
tablespace directory must be absent or empty. "latest" picks the newest backup
of --host/--disk (or of the config's only disk).`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.config, o.id = args[0], args[1]
			return classify(runRestore(cmd.Context(), g, o))
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.to, "to", "", "the new data directory (absent or empty)")
	f.StringArrayVar(&o.tablespaces, "tablespace", nil, "OLDDIR=NEWDIR: restore the tablespace at OLDDIR into NEWDIR (repeatable)")
	f.StringVar(&o.host, "host", "", "with latest: the host")
	f.StringVar(&o.disk, "disk", "", "with latest: the disk")
	f.StringVar(&o.owner, "owner", "", "USER[:GROUP] or UID[:GID] to own the restored files (default: the user running restore)")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

func runRestore(ctx context.Context, g *globals, o restoreOptions) error {
	to, err := filepath.Abs(o.to)
	if err != nil {
		return usagef("--to %q: %v", o.to, err)
	}
	maps := map[string]string{}
	for _, m := range o.tablespaces {
		old, nw, ok := strings.Cut(m, "=")
		if !ok || !filepath.IsAbs(old) || !filepath.IsAbs(nw) {
			return usagef("--tablespace %q: use OLDDIR=NEWDIR with two absolute paths", m)
		}
		maps[filepath.Clean(old)] = filepath.Clean(nw)
	}
	owner, err := parseOwner(o.owner)
	if err != nil {
		return err
	}
	a := &app.App{ConfigDir: g.dir(), Log: g.log}
	c, err := loadConfig(a, o.config)
	if err != nil {
		return err
	}
	r, err := a.ReadRepo(ctx, c)
	if err != nil {
		return err
	}
	entries, _, err := catalogFor(ctx, r, c, "", "")
	if err != nil {
		return err
	}
	e, err := findBackup(entries, c, o.id, o.host, o.disk)
	if err != nil {
		return err
	}
	chain, err := chainOf(entries, e)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := restore.Restore(ctx, r, chain, restore.Options{Target: to, Tablespaces: maps, Owner: owner, Log: g.log}); err != nil {
		return fmt.Errorf("restore %s into %s: %w", e.ID, to, err)
	}
	fmt.Fprintf(g.stdout, "restored %s backup %s of %s/%s (chain of %d) into %s in %s\n", e.Level, e.ID, e.Host, e.Disk, len(chain), to, time.Since(start).Round(time.Millisecond))
	return nil
}

// parseOwner reads USER[:GROUP] or UID[:GID].
func parseOwner(s string) (*restore.Owner, error) {
	if s == "" {
		return nil, nil
	}
	us, gs, hasGroup := strings.Cut(s, ":")
	var o restore.Owner
	if uid, err := strconv.Atoi(us); err == nil {
		o.UID, o.GID = uid, uid
	} else {
		u, err := user.Lookup(us)
		if err != nil {
			return nil, usagef("--owner %q: no such user", s)
		}
		o.UID, _ = strconv.Atoi(u.Uid)
		o.GID, _ = strconv.Atoi(u.Gid)
	}
	if hasGroup {
		if gid, err := strconv.Atoi(gs); err == nil {
			o.GID = gid
		} else {
			gr, err := user.LookupGroup(gs)
			if err != nil {
				return nil, usagef("--owner %q: no such group", s)
			}
			o.GID, _ = strconv.Atoi(gr.Gid)
		}
	}
	return &o, nil
}
