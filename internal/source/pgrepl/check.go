package pgrepl

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Status is the outcome of one preflight check.
type Status int

// Statuses.
const (
	StatusOK Status = iota
	StatusWarning
	StatusFailed
)

// String is "ok", "warning" or "failed".
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusWarning:
		return "warning"
	case StatusFailed:
		return "failed"
	}
	return "status(" + strconv.Itoa(int(s)) + ")"
}

// Names of the preflight checks (Finding.Check).
const (
	CheckConnect        = "connect"         // reachability, TLS, authentication, pg_hba, REPLICATION, version
	CheckSystem         = "system"          // IDENTIFY_SYSTEM
	CheckWALLevel       = "wal_level"       // replica or logical
	CheckMaxWALSenders  = "max_wal_senders" // enough WAL senders configured
	CheckSecondSender   = "second_walsender"
	CheckSummarizeWAL   = "summarize_wal"  // incremental backups (17+)
	CheckDataChecksums  = "data_checksums" // informational
	CheckWALSegmentSize = "wal_segment_size"
)

// Finding is the result of one preflight check. Err is set when Status is
// StatusFailed, classified with the package sentinels.
type Finding struct {
	Check   string
	Status  Status
	Message string
	Err     error
}

// CheckOptions select what the preflight expects.
type CheckOptions struct {
	// WantIncremental: incremental backups are planned (17+, summarize_wal).
	WantIncremental bool
	// StreamWAL: WAL is streamed on a second connection, so two WAL
	// senders are needed at once; Check then opens a second connection to
	// prove one is free.
	StreamWAL bool
}

// Check runs the preflight checks that a replication connection can make:
// connection and authentication (with REPLICATION privilege and pg_hba),
// server version, wal_level, max_wal_senders, and summarize_wal for
// incremental backups. A physical walsender cannot run SQL, so the number
// of WAL senders in use (pg_stat_replication) cannot be read; with
// StreamWAL a second connection is opened instead, which is the real test.
// It stops after a failed connection.
func Check(ctx context.Context, conninfo string, opts CheckOptions, copts ...Option) []Finding {
	var out []Finding
	fail := func(check string, err error) {
		out = append(out, Finding{Check: check, Status: StatusFailed, Message: err.Error(), Err: err})
	}
	ok := func(check, format string, args ...any) {
		out = append(out, Finding{Check: check, Status: StatusOK, Message: fmt.Sprintf(format, args...)})
	}

	c, err := Connect(ctx, conninfo, copts...)
	if err != nil {
		fail(CheckConnect, err)
		return out
	}
	defer c.Close(context.WithoutCancel(ctx))
	ok(CheckConnect, "connected to PostgreSQL %s as %s with a replication connection", c.ServerVersion(), c.user)

	if sys, err := c.IdentifySystem(ctx); err != nil {
		fail(CheckSystem, err)
	} else {
		ok(CheckSystem, "system identifier %d, timeline %d, WAL at %s", sys.SystemID, sys.Timeline, sys.XLogPos)
	}

	if n, err := c.SegmentSize(ctx); err != nil {
		fail(CheckWALSegmentSize, err)
	} else {
		ok(CheckWALSegmentSize, "WAL segments of %d MB", n>>20)
	}

	if v, err := c.Show(ctx, "wal_level"); err != nil {
		fail(CheckWALLevel, err)
	} else if v == "minimal" {
		fail(CheckWALLevel, &Error{Op: "check " + c.target, Kind: ErrWALLevel,
			Reason: `wal_level is "minimal": set wal_level = replica in postgresql.conf and restart the server`})
	} else {
		ok(CheckWALLevel, "wal_level is %s", v)
	}

	need := 1
	if opts.StreamWAL {
		need = 2
	}
	if v, err := c.Show(ctx, "max_wal_senders"); err != nil {
		fail(CheckMaxWALSenders, err)
	} else if n, err := strconv.Atoi(strings.TrimSpace(v)); err != nil {
		fail(CheckMaxWALSenders, c.protocolError("SHOW max_wal_senders", "%q is not a number", v))
	} else if n < need {
		fail(CheckMaxWALSenders, &Error{Op: "check " + c.target, Kind: ErrTooManyConnections,
			Reason: fmt.Sprintf("max_wal_senders is %d, a backup needs %d: raise it in postgresql.conf and restart the server", n, need)})
	} else {
		ok(CheckMaxWALSenders, "max_wal_senders is %d (a backup needs %d; senders in use cannot be counted from a replication connection)", n, need)
	}

	if opts.StreamWAL {
		c2, err := Connect(ctx, conninfo, copts...)
		if err != nil {
			fail(CheckSecondSender, err)
		} else {
			c2.Close(context.WithoutCancel(ctx))
			ok(CheckSecondSender, "a second WAL sender is free for streaming WAL")
		}
	}

	if opts.WantIncremental {
		switch v, err := c.Show(ctx, "summarize_wal"); {
		case c.Major() < 17:
			fail(CheckSummarizeWAL, &Error{Op: "check " + c.target, Kind: ErrServerVersion,
				Reason: fmt.Sprintf("incremental backups need PostgreSQL 17 or later, the server is %s: only full backups are possible", c.ServerVersion())})
		case err != nil:
			fail(CheckSummarizeWAL, err)
		case v != "on":
			fail(CheckSummarizeWAL, &Error{Op: "check " + c.target, Kind: ErrSummarizeWAL,
				Reason: "summarize_wal is " + v + ": ALTER SYSTEM SET summarize_wal = on; SELECT pg_reload_conf(); the next backup must be a full one"})
		default:
			ok(CheckSummarizeWAL, "summarize_wal is on")
		}
	}

	if v, err := c.Show(ctx, "data_checksums"); err != nil {
		fail(CheckDataChecksums, err)
	} else if v == "on" {
		ok(CheckDataChecksums, "data checksums are on: pages are verified while backing up")
	} else {
		out = append(out, Finding{Check: CheckDataChecksums, Status: StatusWarning,
			Message: fmt.Sprintf("data checksums are %s: damaged pages cannot be detected while backing up (pg_checksums --enable on a stopped server turns them on)", v)})
	}
	return out
}
