package backup

import (
	"context"
	"fmt"

	"github.com/holdfast-backup/holdfast/internal/pglabel"
	"github.com/holdfast-backup/holdfast/internal/repo"
	"github.com/holdfast-backup/holdfast/internal/source/pgrepl"
)

// plan is the chosen level: a full backup (parent nil) or an incremental one
// on top of parent. note says why auto chose a full backup.
type plan struct {
	parent   *repo.Entry
	manifest []byte // the parent's backup_manifest, checked against backup.json
	note     string
}

// chooseLevel decides between a full and an incremental backup.
//
// An incremental backup needs a 17+ server with summarize_wal on, and a
// newest committed backup of the same disk from the same system on the same
// timeline. "incremental" fails when that is not so; "auto" falls back to a
// full backup and says why.
func (e *Engine) chooseLevel(ctx context.Context, conn *pgrepl.Conn, t Target, sys pgrepl.System, opt Options) (plan, error) {
	level := opt.Level
	if level == "" {
		level = t.Level
	}
	if level == "" {
		level = "auto"
	}
	switch level {
	case "full":
		return plan{}, nil
	case "auto", "incremental":
	default:
		return plan{}, fmt.Errorf("%w: %q is not a level; use full, incremental or auto", ErrLevel, level)
	}
	why, parent, manifest, err := e.incrementalBlocker(ctx, conn, t, sys)
	if err != nil {
		return plan{}, err
	}
	if why == "" {
		return plan{parent: parent, manifest: manifest}, nil
	}
	if level == "incremental" {
		return plan{}, fmt.Errorf("%w: cannot take an incremental backup: %s", ErrLevel, why)
	}
	return plan{note: why}, nil
}

// incrementalBlocker returns why an incremental backup is impossible ("" if
// it is possible), and the parent it would build on with its manifest.
func (e *Engine) incrementalBlocker(ctx context.Context, conn *pgrepl.Conn, t Target, sys pgrepl.System) (why string, parent *repo.Entry, manifest []byte, err error) {
	if conn.Major() < 17 {
		return fmt.Sprintf("the server is PostgreSQL %d; incremental backups need 17 or later", conn.Major()), nil, nil, nil
	}
	on, err := conn.Show(ctx, "summarize_wal")
	if err != nil {
		return "", nil, nil, err
	}
	if on != "on" {
		return "summarize_wal is off on the server; set summarize_wal = on and reload", nil, nil, nil
	}
	entries, _, err := e.Repo.Catalog(ctx, repo.DiskPrefix(t.Config, t.Host, t.DiskKey))
	if err != nil {
		return "", nil, nil, err
	}
	if len(entries) == 0 {
		return "this disk has no backup yet", nil, nil, nil
	}
	p := entries[len(entries)-1]
	switch {
	case p.SystemIdentifier != fmt.Sprint(sys.SystemID):
		return fmt.Sprintf("the newest backup %s is of another cluster (system identifier %s, server has %d)", p.ID, p.SystemIdentifier, sys.SystemID), nil, nil, nil
	case p.EndTimeline != sys.Timeline:
		return fmt.Sprintf("the newest backup %s ended on timeline %d, the server is on timeline %d", p.ID, p.EndTimeline, sys.Timeline), nil, nil, nil
	case p.PGVersion < 17:
		return fmt.Sprintf("the newest backup %s was taken from PostgreSQL %d, whose manifest cannot seed an incremental backup", p.ID, p.PGVersion), nil, nil, nil
	}
	m, err := e.Repo.ReadManifest(ctx, p)
	if err != nil {
		return fmt.Sprintf("the newest backup %s cannot be a parent: %v (holdfast verify %s)", p.ID, err, t.Config), nil, nil, nil
	}
	return "", &p, m, nil
}

// checkChainLink checks that the new backup builds on parent: its
// backup_label's INCREMENTAL FROM position is the parent's start.
func checkChainLink(label []byte, parent repo.Entry) error {
	l, err := pglabel.Parse(label)
	if err != nil {
		return err
	}
	if !l.Incremental {
		return fmt.Errorf("%w: the server sent a full backup where an incremental one was asked for", ErrProtocol)
	}
	if l.FromLSN != parent.StartLSN || l.FromTimeline != parent.Timeline {
		return fmt.Errorf("%w: backup_label says INCREMENTAL FROM %s on timeline %d, but parent %s starts at %s on timeline %d",
			ErrIngest, l.FromLSN, l.FromTimeline, parent.ID, parent.StartLSN, parent.Timeline)
	}
	return nil
}
