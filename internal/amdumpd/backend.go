package amdumpd

import (
	"context"
	"errors"
)

// Errors the Backend returns and the client reports.
var (
	// ErrNoConfig: the configuration named by CONFIG does not exist.
	ErrNoConfig = errors.New("amdumpd: no such configuration")
	// ErrBusy: a dump of the configuration is running now.
	ErrBusy = errors.New("amdumpd: busy: a dump of this configuration is running")
)

// Backend is what the service needs of the rest of Holdfast.
type Backend interface {
	// Config loads the configuration called name (already checked against
	// ValidConfigName). It returns ErrNoConfig if there is none.
	Config(ctx context.Context, name string) (Config, error)
}

// Config is one loaded configuration, seen from one session.
type Config interface {
	// Disks returns the disks of host in configuration order, and false
	// when host is not a host of this configuration. host is the Name of
	// the declared host the peer was identified as.
	Disks(host string) (disks []string, ok bool)
	// Check runs the preflight for disks of host, calling report once per
	// finding (one line of text each). It returns ErrBusy, before
	// reporting anything, while a dump of this configuration runs.
	Check(ctx context.Context, host string, disks []string, report func(line string)) error
	// Dump runs the backup engine for disks of host, calling report for
	// each disk as it starts and ends. It returns ErrBusy, before
	// reporting anything, while a dump of this configuration runs;
	// otherwise it holds the configuration's dump lock until it returns.
	// ctx is cancelled when the client vanishes: the engine must stop and
	// clean up. A disk never backed up gets a full backup.
	Dump(ctx context.Context, host string, disks []string, report func(DumpEvent)) error
}

// DumpState is the stage of one disk's dump.
type DumpState int

// The stages of a disk's dump.
const (
	DumpStarted DumpState = iota // the disk's backup began
	DumpDone                     // committed; Level and Backup are set
	DumpFailed                   // failed; Err says why
)

// DumpEvent reports progress of one disk of a DUMP.
type DumpEvent struct {
	Disk   string
	State  DumpState
	Level  int    // DumpStarted, DumpDone: 0 = full, n = incremental
	Backup string // DumpDone: the id of the committed backup
	Err    error  // DumpFailed
}
