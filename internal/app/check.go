package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/holdfast-backup/holdfast/internal/config"
	"github.com/holdfast-backup/holdfast/internal/source/pgrepl"
)

// Finding is one line of a preflight report.
type Finding struct {
	Host, Disk string // empty for repository findings
	Status     pgrepl.Status
	Message    string
}

// String prints a finding the way `holdfast check` and amdumpd CHECK show
// it: "OK", "WARNING" or "ERROR", then where, then what.
func (f Finding) String() string {
	word := map[pgrepl.Status]string{pgrepl.StatusOK: "OK", pgrepl.StatusWarning: "WARNING", pgrepl.StatusFailed: "ERROR"}[f.Status]
	where := "repository"
	if f.Host != "" {
		where = fmt.Sprintf("%s %q", f.Host, f.Disk)
	}
	return fmt.Sprintf("%s %s: %s", word, where, f.Message)
}

// minFree is the free space below which the repository check warns.
const minFree = 1 << 30

// Check runs the preflight for disks of c: the repository is writable and
// has room, and each disk's server accepts a backup as configured. report
// gets every finding as it is made; the result counts the failures.
func (a *App) Check(ctx context.Context, c *config.Config, disks []config.Disk, report func(Finding)) int {
	failures := 0
	emit := func(f Finding) {
		if f.Status == pgrepl.StatusFailed {
			failures++
		}
		report(f)
	}
	for _, f := range a.checkRepository(ctx, c) {
		emit(f)
	}
	for _, d := range disks {
		opts := pgrepl.CheckOptions{
			WantIncremental: d.Level != config.LevelFull,
			StreamWAL:       d.WAL != config.WALFetch,
		}
		for _, f := range pgrepl.Check(ctx, d.Postgres.Reveal(), opts) {
			st := f.Status
			// auto falls back to full backups without summarize_wal: worth a
			// warning, not a failure.
			if f.Check == pgrepl.CheckSummarizeWAL && st == pgrepl.StatusFailed && d.Level != config.LevelIncremental {
				st = pgrepl.StatusWarning
			}
			emit(Finding{Host: d.Host, Disk: d.Disk, Status: st, Message: f.Message})
		}
	}
	return failures
}

// checkRepository writes, reads back and deletes a small object, and
// reports free space for a local repository.
func (a *App) checkRepository(ctx context.Context, c *config.Config) []Finding {
	fail := func(format string, args ...any) []Finding {
		return []Finding{{Status: pgrepl.StatusFailed, Message: fmt.Sprintf(format, args...)}}
	}
	s, err := a.Store(ctx, c)
	if err != nil {
		return fail("cannot open %s: %v", c.Repository, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	key := "holdfast-check-" + hex.EncodeToString(b[:])
	if err := s.PutIfAbsent(ctx, key, []byte("holdfast check\n")); err != nil {
		return fail("cannot write to %s: %v", c.Repository, err)
	}
	if err := s.Delete(ctx, key); err != nil {
		return fail("cannot delete from %s: %v", c.Repository, err)
	}
	out := []Finding{{Status: pgrepl.StatusOK, Message: fmt.Sprintf("%s is writable", c.Repository)}}
	if c.Repository.Kind == config.RepoLocal {
		var st unix.Statfs_t
		if err := unix.Statfs(c.Repository.Path, &st); err == nil {
			free := int64(st.Bavail) * int64(st.Bsize)
			f := Finding{Status: pgrepl.StatusOK, Message: fmt.Sprintf("%.1f GiB free", float64(free)/(1<<30))}
			if free < minFree {
				f.Status = pgrepl.StatusWarning
				f.Message += ": backups may not fit"
			}
			out = append(out, f)
		}
	}
	return out
}
