package pgrepl

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/holdfast-backup/holdfast/internal/wal"
)

// Sink receives a base backup as it streams. The backup engine implements
// it. Calls come from one goroutine, in stream order:
//
//	Notice*  Start  (BeginArchive ArchiveData* EndArchive)*  ManifestData*
//
// with Progress and Notice interleaved anywhere. Archive boundaries follow
// the server's archive order: user tablespaces first, base.tar last.
//
// A byte slice passed to ArchiveData or ManifestData aliases the
// connection's read buffer: it is valid only until the method returns and
// must not be retained (copy it, or write it through).
//
// An error returned by any method stops the backup: the connection is
// closed and BaseBackup returns that error (wrapped). When BaseBackup fails,
// EndArchive may not have been called for the open archive and everything
// received must be discarded — except for ErrChecksumFailure, where the
// stream was complete (all archives ended, the whole manifest delivered).
type Sink interface {
	// Start reports the backup start position and the tablespaces, before
	// any archive.
	Start(s Start) error
	// BeginArchive opens an archive: "base.tar" or "<spcoid>.tar", with
	// ".gz", ".lz4" or ".zst" appended under server-side compression.
	// location is the tablespace path ("" for the data directory).
	BeginArchive(name, location string) error
	// ArchiveData is the next piece of the open archive.
	ArchiveData(p []byte) error
	// EndArchive closes the open archive.
	EndArchive() error
	// ManifestData is the next piece of the backup_manifest, in order.
	ManifestData(p []byte) error
	// Progress reports the bytes the server has processed so far, for the
	// whole backup, before compression.
	Progress(bytesDone int64)
	// Notice delivers a NOTICE or WARNING sent by the server.
	Notice(n *pgconn.Notice)
}

// Start is the beginning of a base backup.
type Start struct {
	LSN         wal.LSN
	Timeline    uint32
	Tablespaces []Tablespace
}

// Tablespace is one row of the server's tablespace list: user tablespaces
// first, the data directory last.
type Tablespace struct {
	OID      uint32 // 0 for the data directory
	Location string // absolute path; "pg_tblspc/<oid>" for in-place; "" for the data directory
	SizeKB   int64  // estimate with Progress, else -1
}

// Archive describes one archive as received.
type Archive struct {
	Name     string
	Location string
	Bytes    int64 // archive bytes received (0 for the blackhole target)
}

// Result is what a finished base backup reports.
type Result struct {
	Start, End                 wal.LSN
	StartTimeline, EndTimeline uint32
	Tablespaces                []Tablespace
	Archives                   []Archive
	ManifestBytes              int64
	BytesDone                  int64 // last progress report
	// ChecksumFailures names the files the server reported page checksum
	// failures for, in order, without duplicates.
	ChecksumFailures []string
}

// BaseBackup runs BASE_BACKUP and streams the result into sink. On a
// ctx cancellation the socket is interrupted, the connection closed and the
// error wraps ctx.Err(). Server errors are classified (ErrWALLevel,
// ErrSummarizeWAL, ErrIncremental, ErrChecksumFailure, ...); with
// ErrChecksumFailure the Result is complete and so was the stream.
func (c *Conn) BaseBackup(ctx context.Context, opts BaseBackupOptions, sink Sink) (Result, error) {
	op := "base backup of " + c.target
	cmd, err := opts.Command(c.Major())
	if err != nil {
		return Result{}, err
	}
	if c.pg.IsClosed() {
		return Result{}, c.closedError("BASE_BACKUP")
	}
	if err := c.send(ctx, &pgproto3.Query{String: cmd}); err != nil {
		return Result{}, c.commandError(ctx, "BASE_BACKUP", err, nil)
	}
	s := newBackupSession(op, opts, sink)
	// One watcher for the whole stream instead of one per message (a GiB is
	// some 35,000 messages, and pgconn arms and disarms a context watcher
	// for each): cancellation interrupts the socket read through a deadline
	// in the past, and the error is then reported as the interruption.
	// Reads are batched unless the server is told to send slowly.
	dt, release := watchDeadline(ctx, c.pg.Conn().SetDeadline)
	defer release()
	if opts.MaxRate == 0 {
		defer c.batchReads(dt)()
	}
	for {
		msg, err := c.pg.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				c.abort()
				return s.res, &Error{Op: op, Reason: "interrupted: " + ctx.Err().Error(), Err: ctx.Err()}
			}
			c.abort()
			if s.serverErr != nil {
				return s.res, c.secrets.redactError(classifyCommand(op, s.serverErr, s.res.ChecksumFailures))
			}
			return s.res, &Error{Op: op, Kind: ErrClosed, Reason: "connection lost: " + leafMessage(err), Err: err}
		}
		done, err := s.handle(msg)
		if err != nil {
			c.abort()
			return s.res, err
		}
		if done {
			break
		}
	}
	return s.res, s.finalError(c.secrets)
}

// backupSession is the BASE_BACKUP response state machine (spec §5). It is
// fed one backend message at a time and knows nothing of sockets.
type backupSession struct {
	op           string
	sink         Sink
	wantManifest bool

	phase      phase
	set        resultSet
	res        Result
	archive    int // index into res.Archives of the open archive, -1 if none
	inManifest bool
	serverErr  *pgconn.PgError
	failures   map[string]bool
}

type phase int

const (
	phStartSet phase = iota
	phTablespaceSet
	phCopyOut
	phCopy
	phEndSet
	phComplete
	phReady
	phDrain // after an ErrorResponse: skip to ReadyForQuery
	phDone
)

// resultSet collects one small result set; values are copied.
type resultSet struct {
	described bool
	fields    int
	rows      [][][]byte
}

func newBackupSession(op string, opts BaseBackupOptions, sink Sink) *backupSession {
	return &backupSession{op: op, sink: sink, wantManifest: opts.Manifest != ManifestNo, archive: -1}
}

// handle consumes one message. done is true after the final
// ReadyForQuery. A non-nil error means the session cannot go on (protocol
// violation or sink failure) and the connection must be dropped.
func (s *backupSession) handle(msg pgproto3.BackendMessage) (done bool, err error) {
	switch m := msg.(type) {
	case *pgproto3.NoticeResponse:
		n := (*pgconn.Notice)(pgconn.ErrorResponseToPgError((*pgproto3.ErrorResponse)(m)))
		s.noteChecksumFailure(n)
		s.sink.Notice(n)
		return false, nil
	case *pgproto3.ParameterStatus, *pgproto3.NotificationResponse:
		return false, nil
	case *pgproto3.ErrorResponse:
		if s.serverErr == nil {
			s.serverErr = pgconn.ErrorResponseToPgError(m)
		}
		s.phase = phDrain
		return false, nil
	case *pgproto3.ReadyForQuery:
		if s.phase != phReady && s.phase != phDrain {
			return true, s.protocol("ReadyForQuery before the backup finished")
		}
		s.phase = phDone
		return true, nil
	}

	switch s.phase {
	case phDrain:
		return false, nil
	case phStartSet, phTablespaceSet, phEndSet:
		return false, s.handleResultSet(msg)
	case phCopyOut:
		if _, ok := msg.(*pgproto3.CopyOutResponse); !ok {
			return false, s.unexpected(msg)
		}
		s.phase = phCopy
		return false, nil
	case phCopy:
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			return false, s.handleCopyData(m.Data)
		case *pgproto3.CopyDone:
			if err := s.endArchive(); err != nil {
				return false, err
			}
			if !s.sawBase() {
				return false, s.protocol("COPY ended without a base archive")
			}
			if s.wantManifest && !s.inManifest {
				return false, s.protocol("COPY ended without the manifest")
			}
			s.phase = phEndSet
			return false, nil
		}
	case phComplete:
		if cc, ok := msg.(*pgproto3.CommandComplete); ok && string(cc.CommandTag) == "BASE_BACKUP" {
			s.phase = phReady
			return false, nil
		}
	}
	return false, s.unexpected(msg)
}

func (s *backupSession) handleResultSet(msg pgproto3.BackendMessage) error {
	switch m := msg.(type) {
	case *pgproto3.RowDescription:
		if s.set.described {
			return s.protocol("second RowDescription in one result set")
		}
		s.set = resultSet{described: true, fields: len(m.Fields)}
		return nil
	case *pgproto3.DataRow:
		if !s.set.described {
			return s.protocol("DataRow before RowDescription")
		}
		if len(m.Values) != s.set.fields {
			return s.protocol("DataRow has %d values, RowDescription %d", len(m.Values), s.set.fields)
		}
		if len(s.set.rows) >= 1<<16 {
			return s.protocol("too many rows")
		}
		row := make([][]byte, len(m.Values))
		for i, v := range m.Values {
			if v != nil {
				row[i] = append([]byte{}, v...)
			}
		}
		s.set.rows = append(s.set.rows, row)
		return nil
	case *pgproto3.CommandComplete:
		if !s.set.described {
			return s.protocol("CommandComplete %q without a result set", m.CommandTag)
		}
		set := s.set
		s.set = resultSet{}
		switch s.phase {
		case phStartSet:
			lsn, tli, err := s.positionRow(set, "start")
			if err != nil {
				return err
			}
			s.res.Start, s.res.StartTimeline = lsn, tli
			s.phase = phTablespaceSet
		case phTablespaceSet:
			ts, err := s.tablespaces(set)
			if err != nil {
				return err
			}
			s.res.Tablespaces = ts
			s.phase = phCopyOut
			start := Start{LSN: s.res.Start, Timeline: s.res.StartTimeline, Tablespaces: append([]Tablespace(nil), ts...)}
			if err := s.sink.Start(start); err != nil {
				return s.sinkError(err)
			}
		case phEndSet:
			lsn, tli, err := s.positionRow(set, "end")
			if err != nil {
				return err
			}
			s.res.End, s.res.EndTimeline = lsn, tli
			s.phase = phComplete
		}
		return nil
	}
	return s.unexpected(msg)
}

func (s *backupSession) positionRow(set resultSet, what string) (wal.LSN, uint32, error) {
	if set.fields != 2 || len(set.rows) != 1 {
		return 0, 0, s.protocol("%s position: want 1 row of 2 columns, got %d rows of %d", what, len(set.rows), set.fields)
	}
	r := set.rows[0]
	lsn, err := wal.ParseLSN(string(r[0]))
	if err != nil {
		return 0, 0, s.protocol("%s position: %v", what, err)
	}
	tli, err := strconv.ParseUint(string(r[1]), 10, 32)
	if err != nil || tli == 0 {
		return 0, 0, s.protocol("%s timeline %q", what, r[1])
	}
	return lsn, uint32(tli), nil
}

func (s *backupSession) tablespaces(set resultSet) ([]Tablespace, error) {
	if set.fields != 3 {
		return nil, s.protocol("tablespace list has %d columns, want 3", set.fields)
	}
	var out []Tablespace
	dataDirs := 0
	for _, r := range set.rows {
		t := Tablespace{SizeKB: -1, Location: string(r[1])}
		if r[0] == nil {
			dataDirs++
		} else {
			oid, err := strconv.ParseUint(string(r[0]), 10, 32)
			if err != nil || oid == 0 {
				return nil, s.protocol("tablespace oid %q", r[0])
			}
			t.OID = uint32(oid)
		}
		if r[2] != nil {
			n, err := strconv.ParseInt(string(r[2]), 10, 64)
			if err != nil || n < 0 {
				return nil, s.protocol("tablespace size %q", r[2])
			}
			t.SizeKB = n
		}
		out = append(out, t)
	}
	if dataDirs != 1 {
		return nil, s.protocol("tablespace list has %d data directory rows, want 1", dataDirs)
	}
	return out, nil
}

func (s *backupSession) handleCopyData(payload []byte) error {
	m, err := DecodeCopyData(payload)
	if err != nil {
		return s.protocol("%v", err)
	}
	switch m.Kind {
	case KindNewArchive:
		if s.inManifest {
			return s.protocol("new archive %q after the manifest", m.Name)
		}
		if !validArchiveName(m.Name) {
			return s.protocol("unexpected archive name %q", m.Name)
		}
		for _, a := range s.res.Archives {
			if a.Name == m.Name {
				return s.protocol("archive %q sent twice", m.Name)
			}
		}
		if err := s.endArchive(); err != nil {
			return err
		}
		s.res.Archives = append(s.res.Archives, Archive{Name: m.Name, Location: m.Location})
		s.archive = len(s.res.Archives) - 1
		if err := s.sink.BeginArchive(m.Name, m.Location); err != nil {
			return s.sinkError(err)
		}
	case KindData:
		switch {
		case s.inManifest:
			s.res.ManifestBytes += int64(len(m.Data))
			if err := s.sink.ManifestData(m.Data); err != nil {
				return s.sinkError(err)
			}
		case s.archive >= 0:
			s.res.Archives[s.archive].Bytes += int64(len(m.Data))
			if err := s.sink.ArchiveData(m.Data); err != nil {
				return s.sinkError(err)
			}
		default:
			return s.protocol("archive data before any archive began")
		}
	case KindProgress:
		s.res.BytesDone = m.Progress
		s.sink.Progress(m.Progress)
	case KindManifest:
		if s.inManifest {
			return s.protocol("second manifest")
		}
		if err := s.endArchive(); err != nil {
			return err
		}
		s.inManifest = true
	}
	return nil
}

func (s *backupSession) endArchive() error {
	if s.archive < 0 {
		return nil
	}
	s.archive = -1
	if err := s.sink.EndArchive(); err != nil {
		return s.sinkError(err)
	}
	return nil
}

func (s *backupSession) sawBase() bool {
	for _, a := range s.res.Archives {
		if strings.HasPrefix(a.Name, "base.tar") {
			return true
		}
	}
	return false
}

// validArchiveName accepts what the server sends: "base.tar" or
// "<oid>.tar", optionally compressed. Anything else could be a path and
// must never reach a file system.
func validArchiveName(name string) bool {
	for _, ext := range []string{".gz", ".lz4", ".zst"} {
		if strings.HasSuffix(name, ".tar"+ext) {
			name = strings.TrimSuffix(name, ext)
			break
		}
	}
	stem, ok := strings.CutSuffix(name, ".tar")
	if !ok {
		return false
	}
	if stem == "base" {
		return true
	}
	oid, err := strconv.ParseUint(stem, 10, 32)
	return err == nil && oid != 0 && strconv.FormatUint(oid, 10) == stem
}

// noteChecksumFailure remembers the file named by a checksum WARNING, so
// the XX001 error that ends the backup can say which files are damaged.
func (s *backupSession) noteChecksumFailure(n *pgconn.Notice) {
	var name string
	var ok bool
	if rest, found := strings.CutPrefix(n.Message, `checksum verification failed in file "`); found {
		name, _, ok = strings.Cut(rest, `", block `)
	} else if rest, found := strings.CutPrefix(n.Message, `file "`); found {
		name, _, ok = strings.Cut(rest, `" has a total of `)
	}
	if !ok || name == "" {
		return
	}
	if s.failures == nil {
		s.failures = map[string]bool{}
	}
	if !s.failures[name] && len(s.failures) < 1<<16 {
		s.failures[name] = true
		s.res.ChecksumFailures = append(s.res.ChecksumFailures, name)
	}
}

func (s *backupSession) finalError(r redactor) error {
	if s.serverErr == nil {
		return nil
	}
	return r.redactError(classifyCommand(s.op, s.serverErr, s.res.ChecksumFailures))
}

func (s *backupSession) protocol(format string, args ...any) error {
	return &Error{Op: s.op, Kind: ErrProtocol, Reason: fmt.Sprintf(format, args...)}
}

func (s *backupSession) unexpected(msg pgproto3.BackendMessage) error {
	return s.protocol("unexpected %T in phase %d", msg, s.phase)
}

func (s *backupSession) sinkError(err error) error {
	return &Error{Op: s.op, Reason: err.Error(), Err: err}
}
