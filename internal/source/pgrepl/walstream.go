package pgrepl

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/holdfast-backup/holdfast/internal/wal"
)

// DefaultStatusInterval is how often a standby status update is sent when
// the server does not ask for one (pg_basebackup's --status-interval).
const DefaultStatusInterval = 10 * time.Second

// maxHistoryFile bounds a timeline history file read into memory.
const maxHistoryFile = 16 << 20

// StreamOptions say which WAL to stream.
type StreamOptions struct {
	// Start is the backup's start LSN; streaming begins at the start of its
	// segment, as pg_basebackup does.
	Start wal.LSN
	// Timeline is the backup's start timeline.
	Timeline uint32
	// SegmentSize is wal_segment_size in bytes; 0 asks the server.
	SegmentSize uint64
	// Slot is a replication slot to stream from. Empty: a temporary slot is
	// created first. Creating it with CreateTemporarySlot before
	// BASE_BACKUP starts is safer: the WAL from the backup's start is then
	// retained even if a checkpoint happens in between.
	Slot string
	// SystemID, if not zero, must equal this server's (IDENTIFY_SYSTEM);
	// pass the one the backup connection saw.
	SystemID uint64
	// StatusInterval between standby status updates; 0 means 10 s.
	StatusInterval time.Duration
	// OnNotice, if set, receives NOTICE/WARNING messages of the stream.
	OnNotice func(*pgconn.Notice)
}

// StreamResult describes a finished WAL stream.
type StreamResult struct {
	Start    wal.LSN  // first byte streamed (a segment start)
	End      wal.LSN  // first byte not received; the rest of its segment was zero-padded
	Segments []string // segment members written, in order
	Bytes    int64    // bytes of pg_wal.tar written to w
}

// StreamWAL connects with conninfo and streams WAL as pg_basebackup
// -X stream does; see (*Conn).StreamWAL. The connection is closed at the
// end.
func StreamWAL(ctx context.Context, conninfo string, opts StreamOptions, w io.Writer, stopAt <-chan wal.LSN, copts ...Option) (StreamResult, error) {
	c, err := Connect(ctx, conninfo, copts...)
	if err != nil {
		return StreamResult{}, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	return c.StreamWAL(ctx, opts, w, stopAt)
}

// CreateTemporarySlot creates a TEMPORARY PHYSICAL replication slot with
// RESERVE_WAL and returns its name. It lives as long as this session and
// keeps the WAL from the last checkpoint's redo position on.
func (c *Conn) CreateTemporarySlot(ctx context.Context) (string, error) {
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	// Slot names: lower-case letters, digits and underscores, < 64 bytes.
	name := fmt.Sprintf("holdfast_%d_%s", c.pg.PID(), hex.EncodeToString(rnd[:]))
	cmd := "CREATE_REPLICATION_SLOT " + quoteSlotName(name) + " TEMPORARY PHYSICAL (RESERVE_WAL)"
	if _, err := c.simpleQuery(ctx, "CREATE_REPLICATION_SLOT", cmd); err != nil {
		return "", err
	}
	return name, nil
}

// TimelineHistory runs TIMELINE_HISTORY tli and returns the history file's
// name and content. Timeline 1 has none.
func (c *Conn) TimelineHistory(ctx context.Context, tli uint32) (name string, content []byte, err error) {
	op := "TIMELINE_HISTORY " + strconv.FormatUint(uint64(tli), 10)
	rows, err := c.simpleQuery(ctx, op, op)
	if err != nil {
		return "", nil, err
	}
	if len(rows) != 1 || len(rows[0]) != 2 || rows[0][0] == nil {
		return "", nil, c.protocolError(op, "expected one row of 2 columns")
	}
	name = string(rows[0][0])
	if want := fmt.Sprintf("%08X.history", tli); name != want {
		return "", nil, c.protocolError(op, "history file name %q, want %q", name, want)
	}
	if len(rows[0][1]) > maxHistoryFile {
		return "", nil, c.protocolError(op, "history file of %d bytes", len(rows[0][1]))
	}
	return name, rows[0][1], nil
}

// StreamWAL streams WAL from opts.Start's segment on opts.Timeline and
// writes it to w as a pg_wal.tar stream, exactly as pg_basebackup -Ft
// -X stream writes that file (see walTar). It sends a standby status
// update every StatusInterval and whenever the server asks.
//
// The stop position comes later, from the backup connection: send the
// backup's end LSN on stopAt. Streaming then ends as soon as all WAL
// before it has been written; the segment holding it is zero-padded to
// full size, the archive ended, and replication stopped cleanly (CopyDone,
// then the server's CopyDone, CommandCompletes and ReadyForQuery). Closing
// stopAt without a value, or cancelling ctx, abandons the stream with an
// error. w should not block for long: the server drops a client silent
// for wal_sender_timeout (60 s by default).
func (c *Conn) StreamWAL(ctx context.Context, opts StreamOptions, w io.Writer, stopAt <-chan wal.LSN) (StreamResult, error) {
	op := "stream WAL from " + c.target
	if opts.Timeline == 0 {
		return StreamResult{}, &Error{Op: op, Kind: ErrOption, Reason: "timeline 0"}
	}
	if c.pg.IsClosed() {
		return StreamResult{}, c.closedError("START_REPLICATION")
	}
	segSize := opts.SegmentSize
	if segSize == 0 {
		var err error
		if segSize, err = c.SegmentSize(ctx); err != nil {
			return StreamResult{}, err
		}
	} else if segSize < 1<<20 || segSize > 1<<30 || segSize&(segSize-1) != 0 {
		return StreamResult{}, &Error{Op: op, Kind: ErrOption, Reason: fmt.Sprintf("segment size %d is not a power of two between 1MB and 1GB", segSize)}
	}
	if opts.SystemID != 0 {
		sys, err := c.IdentifySystem(ctx)
		if err != nil {
			return StreamResult{}, err
		}
		if sys.SystemID != opts.SystemID {
			return StreamResult{}, &Error{Op: op, Kind: ErrSystemMismatch,
				Reason: fmt.Sprintf("the WAL connection reached database system %d, the backup is of system %d: both connections must reach the same server", sys.SystemID, opts.SystemID)}
		}
	}
	slot := opts.Slot
	if slot == "" {
		var err error
		if slot, err = c.CreateTemporarySlot(ctx); err != nil {
			return StreamResult{}, err
		}
	}
	interval := opts.StatusInterval
	if interval <= 0 {
		interval = DefaultStatusInterval
	}

	start := opts.Start.SegmentStart(segSize)
	tar := newWALTar(w, opts.Timeline, segSize, start, time.Now)
	res := StreamResult{Start: start, End: start}
	fill := func() StreamResult {
		res.End, res.Segments, res.Bytes = tar.pos, append([]string(nil), tar.segments...), tar.written
		return res
	}
	if opts.Timeline > 1 {
		name, content, err := c.TimelineHistory(ctx, opts.Timeline)
		if err != nil {
			return res, err
		}
		if err := tar.writeFile(name, content); err != nil {
			return fill(), &Error{Op: op, Reason: err.Error(), Err: err}
		}
	}

	cmd := fmt.Sprintf("START_REPLICATION SLOT %s PHYSICAL %s TIMELINE %d", quoteSlotName(slot), start, opts.Timeline)
	if err := c.send(ctx, &pgproto3.Query{String: cmd}); err != nil {
		return fill(), c.commandError(ctx, "START_REPLICATION", err, nil)
	}
	s := &streamSession{op: op, tar: tar, onNotice: opts.OnNotice}
	err := c.runStream(ctx, s, interval, stopAt)
	return fill(), err
}

// stopSignal carries the stop position from the watcher goroutine.
type stopSignal struct {
	mu     sync.Mutex
	known  bool
	closed bool // stopAt closed without a value
	lsn    wal.LSN
}

func (c *Conn) runStream(ctx context.Context, s *streamSession, interval time.Duration, stopAt <-chan wal.LSN) error {
	// A read waits at most until the next status update (rt.arm), and a
	// stop position or cancellation interrupts a waiting read at once:
	// one watcher for the whole stream, instead of a context, a timer and
	// pgconn's watcher per message.
	rt, release := watchDeadline(ctx, c.pg.Conn().SetReadDeadline)
	defer release()
	var stop stopSignal
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case lsn, ok := <-stopAt:
			stop.mu.Lock()
			stop.known, stop.closed, stop.lsn = ok, !ok, lsn
			stop.mu.Unlock()
			rt.interrupt()
		case <-done:
		}
	}()

	status := make([]byte, 0, standbyStatusLen)
	sendStatus := func(now time.Time) error {
		st := StandbyStatus{Write: s.tar.pos, Flush: s.tar.pos, ClientTime: PGTime(now)}
		if err := c.send(ctx, &pgproto3.CopyData{Data: st.AppendEncode(status[:0])}); err != nil {
			return c.commandError(ctx, "send standby status", err, nil)
		}
		return nil
	}
	nextStatus := time.Now().Add(interval)

	for {
		if s.phase == streamCopy {
			stop.mu.Lock()
			known, closed, lsn := stop.known, stop.closed, stop.lsn
			stop.mu.Unlock()
			if closed {
				c.abort()
				return &Error{Op: s.op, Reason: "stopped before the backup's end position was known"}
			}
			if known && s.tar.pos >= lsn {
				if err := s.tar.finish(); err != nil {
					c.abort()
					return &Error{Op: s.op, Reason: err.Error(), Err: err}
				}
				if err := c.send(ctx, &pgproto3.CopyDone{}); err != nil {
					return c.commandError(ctx, "end WAL streaming", err, nil)
				}
				s.phase = streamEnding
			}
		}

		rt.arm(nextStatus)
		msg, err := c.pg.ReceiveMessage(context.Background())
		if err != nil {
			if !c.pg.IsClosed() && pgconn.Timeout(err) {
				// Woken for a status update, a stop position or a
				// cancellation. ctx is checked after consume: a
				// cancellation that interrupted before it is seen here,
				// one after it interrupts the next read.
				rt.consume()
			}
			if ctx.Err() != nil {
				c.abort()
				return &Error{Op: s.op, Reason: "interrupted: " + ctx.Err().Error(), Err: ctx.Err()}
			}
			if !c.pg.IsClosed() && pgconn.Timeout(err) {
				if now := time.Now(); !now.Before(nextStatus) {
					if s.phase == streamCopy {
						if err := sendStatus(now); err != nil {
							return err
						}
					}
					nextStatus = now.Add(interval)
				}
				continue
			}
			c.abort()
			if s.serverErr != nil {
				return c.secrets.redactError(classifyCommand(s.op, s.serverErr, nil))
			}
			return &Error{Op: s.op, Kind: ErrClosed, Reason: "connection lost: " + leafMessage(err), Err: err}
		}
		reply, done, err := s.handle(msg)
		if err != nil {
			c.abort()
			return err
		}
		if done {
			return s.finalError(c.secrets)
		}
		if reply {
			nextStatus = time.Time{}
		}
		if s.phase == streamTimelineEnd && !s.sentDone {
			// The server ended our timeline; acknowledge so it sends the
			// next timeline's position and finishes.
			if err := c.send(ctx, &pgproto3.CopyDone{}); err != nil {
				return c.commandError(ctx, "end WAL streaming", err, nil)
			}
			s.sentDone = true
		}
		if now := time.Now(); !now.Before(nextStatus) {
			if s.phase == streamCopy {
				if err := sendStatus(now); err != nil {
					return err
				}
			}
			nextStatus = now.Add(interval)
		}
	}
}

// streamSession is the START_REPLICATION state machine: it checks the
// message order, feeds WAL to the tar writer and notices what the server
// asks for. No sockets.
type streamSession struct {
	op       string
	tar      *walTar
	onNotice func(*pgconn.Notice)

	phase     streamPhase
	serverErr *pgconn.PgError
	sentDone  bool
	nextTLI   string // from the end-of-timeline result set
	nextPos   string
}

type streamPhase int

const (
	streamStarting    streamPhase = iota // waiting for CopyBothResponse
	streamCopy                           // receiving WAL
	streamEnding                         // we sent CopyDone
	streamTimelineEnd                    // server sent CopyDone first
	streamEnded                          // CopyDone exchanged, awaiting ReadyForQuery
	streamDrain                          // after an ErrorResponse
)

// handle consumes one message. reply asks the caller to send a status
// update now; done follows ReadyForQuery.
func (s *streamSession) handle(msg pgproto3.BackendMessage) (reply, done bool, err error) {
	switch m := msg.(type) {
	case *pgproto3.NoticeResponse:
		if s.onNotice != nil {
			s.onNotice((*pgconn.Notice)(pgconn.ErrorResponseToPgError((*pgproto3.ErrorResponse)(m))))
		}
		return false, false, nil
	case *pgproto3.ParameterStatus, *pgproto3.NotificationResponse:
		return false, false, nil
	case *pgproto3.ErrorResponse:
		if s.serverErr == nil {
			s.serverErr = pgconn.ErrorResponseToPgError(m)
		}
		s.phase = streamDrain
		return false, false, nil
	case *pgproto3.ReadyForQuery:
		if s.phase != streamEnded && s.phase != streamDrain && s.phase != streamTimelineEnd {
			return false, true, s.protocol("ReadyForQuery while streaming")
		}
		return false, true, nil
	}
	switch s.phase {
	case streamDrain:
		return false, false, nil
	case streamStarting:
		if _, ok := msg.(*pgproto3.CopyBothResponse); ok {
			s.phase = streamCopy
			return false, false, nil
		}
	case streamCopy:
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			return s.copyData(m.Data)
		case *pgproto3.CopyDone:
			s.phase = streamTimelineEnd
			return false, false, nil
		}
	case streamEnding:
		switch msg.(type) {
		case *pgproto3.CopyData:
			// In flight before the server saw our CopyDone.
			return false, false, nil
		case *pgproto3.CopyDone:
			s.phase = streamEnded
			return false, false, nil
		}
	case streamTimelineEnd:
		switch m := msg.(type) {
		case *pgproto3.RowDescription:
			return false, false, nil
		case *pgproto3.DataRow:
			if len(m.Values) == 2 {
				s.nextTLI, s.nextPos = string(m.Values[0]), string(m.Values[1])
			}
			return false, false, nil
		case *pgproto3.CommandComplete:
			return false, false, nil
		}
	case streamEnded:
		if _, ok := msg.(*pgproto3.CommandComplete); ok {
			return false, false, nil
		}
	}
	return false, false, s.protocol("unexpected %T while streaming (phase %d)", msg, s.phase)
}

func (s *streamSession) copyData(payload []byte) (reply, done bool, err error) {
	m, err := DecodeWALMessage(payload)
	if err != nil {
		return false, false, s.protocol("%v", err)
	}
	switch m.Kind {
	case KindKeepalive:
		return m.ReplyRequested, false, nil
	case KindXLogData:
		if m.WALStart != s.tar.pos {
			return false, false, s.protocol("received WAL at %s, expected %s", m.WALStart, s.tar.pos)
		}
		if err := s.tar.writeWAL(m.Data); err != nil {
			return false, false, &Error{Op: s.op, Reason: err.Error(), Err: err}
		}
	}
	return false, false, nil
}

func (s *streamSession) finalError(r redactor) error {
	switch {
	case s.serverErr != nil:
		return r.redactError(classifyCommand(s.op, s.serverErr, nil))
	case s.phase == streamTimelineEnd:
		return &Error{Op: s.op, Kind: ErrTimelineSwitch,
			Reason: fmt.Sprintf("the server switched to timeline %s at %s before the backup's end was streamed (was a standby promoted?): take a new backup", s.nextTLI, s.nextPos)}
	}
	return nil
}

func (s *streamSession) protocol(format string, args ...any) error {
	return &Error{Op: s.op, Kind: ErrProtocol, Reason: fmt.Sprintf(format, args...)}
}
