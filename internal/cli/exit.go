package cli

import (
	"context"
	"errors"
)

// Exit codes are a stable contract for scripts. They are documented in
// docs/cli.md; never renumber one.
const (
	ExitOK        = 0 // everything asked for succeeded
	ExitFailure   = 1 // the operation ran and failed (a backup, a restore)
	ExitUsage     = 2 // bad command line: unknown command, flag or argument
	ExitConfig    = 3 // a config file is missing or invalid, or names an unknown host/disk
	ExitConnect   = 4 // PostgreSQL could not be reached or refused us (network, auth, privilege, hba)
	ExitVerify    = 5 // verify found problems (corruption, missing objects)
	ExitBusy      = 6 // a dump of this config is already running
	ExitNotFound  = 7 // the backup or repository asked for does not exist
	ExitRefused   = 8 // the remote server refused the request (client: peer or user not allowed)
	ExitStorage   = 9 // the repository cannot be written (full, read-only, permissions)
	ExitCancelled = 130
)

// exitError carries an exit code with an error meant for people.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withCode marks err with an exit code; nil stays nil.
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// codeOf maps an error to its exit code.
func codeOf(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if errors.Is(err, context.Canceled) {
		return ExitCancelled
	}
	return ExitFailure
}
