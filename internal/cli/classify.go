package cli

import (
	"errors"
	"syscall"

	"github.com/holdfast-backup/holdfast/internal/job"
	"github.com/holdfast-backup/holdfast/internal/repo"
	"github.com/holdfast-backup/holdfast/internal/restore"
	"github.com/holdfast-backup/holdfast/internal/source/pgrepl"
)

// classify gives an operation's error its documented exit code.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	switch {
	case errors.Is(err, job.ErrBusy):
		return withCode(ExitBusy, err)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EDQUOT):
		return withCode(ExitStorage, err)
	case errors.Is(err, pgrepl.ErrUnreachable), errors.Is(err, pgrepl.ErrAuth), errors.Is(err, pgrepl.ErrTLS),
		errors.Is(err, pgrepl.ErrNoReplication), errors.Is(err, pgrepl.ErrPrivilege),
		errors.Is(err, pgrepl.ErrTooManyConnections), errors.Is(err, pgrepl.ErrWALLevel):
		return withCode(ExitConnect, err)
	case errors.Is(err, repo.ErrNotFound), errors.Is(err, repo.ErrNotAnRepo):
		return withCode(ExitNotFound, err)
	case errors.Is(err, restore.ErrTarget):
		return withCode(ExitUsage, err)
	}
	return err
}
