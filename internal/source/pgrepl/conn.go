package pgrepl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/holdfast-backup/holdfast/internal/wal"
)

// Supported server majors.
const (
	MinMajor = 15
	MaxMajor = 18
)

// DefaultApplicationName is sent in the startup packet unless the conninfo or
// an option sets another.
const DefaultApplicationName = "holdfast"

// Option adjusts Connect.
type Option func(*connectConfig)

type connectConfig struct {
	appName string
	dial    pgconn.DialFunc
}

// WithApplicationName sets application_name (shown in pg_stat_replication
// and the server log). An application_name in the conninfo wins.
func WithApplicationName(name string) Option {
	return func(c *connectConfig) { c.appName = name }
}

// WithDialFunc replaces the dialer, e.g. to go through a tunnel.
func WithDialFunc(d pgconn.DialFunc) Option {
	return func(c *connectConfig) { c.dial = d }
}

// Conn is a physical replication connection (replication=true). It is not
// safe for concurrent use: one command at a time.
type Conn struct {
	pg      *pgconn.PgConn
	rd      *streamReader // what pgproto3 reads the socket through
	target  string        // "host=… port=… user=…", for error messages
	user    string
	secrets redactor
	version int // server_version_num
}

// System is the IDENTIFY_SYSTEM answer.
type System struct {
	SystemID uint64
	Timeline uint32
	XLogPos  wal.LSN
}

// Connect opens a physical replication connection. conninfo is a libpq
// keyword/value string or a postgres:// URI; PG* environment variables, the
// password file and sslmode are honoured as libpq does (pgconn.ParseConfig);
// under sslmode=prefer a server without TLS costs one connection, as with
// libpq (see preferOnOneSocket).
// It refuses servers older than 15 or newer than 18 (ErrServerVersion).
// Errors are *Error values classified with the package sentinels; they never
// contain the password.
func Connect(ctx context.Context, conninfo string, opts ...Option) (*Conn, error) {
	secrets := secretsIn(conninfo)
	cc := connectConfig{appName: DefaultApplicationName}
	for _, o := range opts {
		o(&cc)
	}
	cfg, err := pgconn.ParseConfig(conninfo)
	if err != nil {
		return nil, secrets.redactError(parseConfigError(err))
	}
	if cfg.Password != "" {
		secrets = append(secrets, cfg.Password)
	}
	cfg.RuntimeParams["replication"] = "true"
	if _, ok := cfg.RuntimeParams["application_name"]; !ok && cc.appName != "" {
		cfg.RuntimeParams["application_name"] = cc.appName
	}
	// A physical walsender does not use the database; drop it so the
	// startup packet is what pg_basebackup-like tools send.
	cfg.Database = ""
	if cc.dial != nil {
		cfg.DialFunc = cc.dial
	}
	preferOnOneSocket(cfg)
	// A base backup is a stream of 32 kB CopyData messages (128 kB for
	// WAL); pgproto3 reads at least 8 kB at a time. A larger buffer in
	// front of the socket fetches many messages per read system call
	// (the benchmark counted twice pg_basebackup's reads without it).
	// pgconn builds a frontend for each attempt, one after another; the
	// last one built is the connection's.
	var rd *streamReader
	cfg.BuildFrontend = func(r io.Reader, w io.Writer) *pgproto3.Frontend {
		rd = newStreamReader(r, readBuffer)
		return pgproto3.NewFrontend(rd, w)
	}
	target := describeTarget(cfg)
	op := "connect to " + target

	pg, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, secrets.redactError(classifyConnect(ctx, op, cfg.User, err))
	}
	c := &Conn{pg: pg, rd: rd, target: target, user: cfg.User, secrets: secrets}
	if err := c.detectVersion(ctx); err != nil {
		c.pg.Close(context.Background())
		return nil, secrets.redactError(err)
	}
	return c, nil
}

func parseConfigError(err error) error {
	reason := "invalid connection string"
	var pce *pgconn.ParseConfigError
	if errors.As(err, &pce) {
		// The error text quotes the (partly redacted) connection string
		// between backquotes; only what follows it is shown.
		text := pce.Error()
		if i := strings.Index(text, "`: "); i >= 0 && strings.HasPrefix(text, "cannot parse `") {
			reason += ": " + oneLine(text[strings.LastIndex(text, "`: ")+3:])
		}
		return &Error{Op: "parse connection string", Kind: ErrOption, Reason: reason, Err: errors.Unwrap(pce)}
	}
	return &Error{Op: "parse connection string", Kind: ErrOption, Reason: reason + ": " + oneLine(err.Error())}
}

func describeTarget(cfg *pgconn.Config) string {
	return fmt.Sprintf("host=%s port=%d user=%s", cfg.Host, cfg.Port, cfg.User)
}

// detectVersion asks SHOW server_version_num (a replication command since
// PostgreSQL 10) and falls back to the server_version parameter status.
func (c *Conn) detectVersion(ctx context.Context) error {
	op := "connect to " + c.target
	num := 0
	v, err := c.Show(ctx, "server_version_num")
	if err == nil {
		num, err = strconv.Atoi(strings.TrimSpace(v))
	}
	if err != nil || num <= 0 {
		if ctx.Err() != nil {
			return &Error{Op: op, Reason: ctx.Err().Error(), Err: ctx.Err()}
		}
		num = versionNumFromString(c.pg.ParameterStatus("server_version"))
	}
	if num <= 0 {
		return &Error{Op: op, Kind: ErrServerVersion,
			Reason: fmt.Sprintf("cannot tell the server version (server_version %q)", c.pg.ParameterStatus("server_version"))}
	}
	c.version = num
	major := num / 10000
	switch {
	case major < MinMajor:
		return &Error{Op: op, Kind: ErrServerVersion,
			Reason: fmt.Sprintf("server is PostgreSQL %s; Holdfast backs up PostgreSQL %d to %d: upgrade the server", c.versionString(), MinMajor, MaxMajor)}
	case major > MaxMajor:
		return &Error{Op: op, Kind: ErrServerVersion,
			Reason: fmt.Sprintf("server is PostgreSQL %s, newer than this Holdfast supports (%d to %d): upgrade Holdfast", c.versionString(), MinMajor, MaxMajor)}
	}
	return nil
}

// versionNumFromString reads "15.18 (Debian 15.18-0+deb12u1)" or "18beta1"
// as server_version_num would (150018, 180000).
func versionNumFromString(s string) int {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	major, err := strconv.Atoi(s[:i])
	if err != nil || major < 10 {
		return 0
	}
	minor := 0
	if i < len(s) && s[i] == '.' {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		minor, _ = strconv.Atoi(s[i+1 : j])
	}
	return major*10000 + minor
}

func (c *Conn) versionString() string {
	if v := c.pg.ParameterStatus("server_version"); v != "" {
		return v
	}
	return strconv.Itoa(c.version)
}

// ServerVersionNum is server_version_num, e.g. 170002.
func (c *Conn) ServerVersionNum() int { return c.version }

// Major is the server's major version (15..18).
func (c *Conn) Major() int { return c.version / 10000 }

// ServerVersion is the server_version the server reported, e.g.
// "15.18 (Debian 15.18-0+deb12u1)".
func (c *Conn) ServerVersion() string { return c.versionString() }

// Target names the server in messages: "host=… port=… user=…".
func (c *Conn) Target() string { return c.target }

// PID is the walsender's process id.
func (c *Conn) PID() uint32 { return c.pg.PID() }

// Close ends the session. Temporary replication slots it created vanish.
func (c *Conn) Close(ctx context.Context) error {
	return c.pg.Close(ctx)
}

// IsClosed reports whether the connection is closed (by Close, a network
// failure or a cancelled stream).
func (c *Conn) IsClosed() bool { return c.pg.IsClosed() }

// IdentifySystem runs IDENTIFY_SYSTEM.
func (c *Conn) IdentifySystem(ctx context.Context) (System, error) {
	const op = "IDENTIFY_SYSTEM"
	rows, err := c.simpleQuery(ctx, op, op)
	if err != nil {
		return System{}, err
	}
	if len(rows) != 1 || len(rows[0]) < 3 {
		return System{}, c.protocolError(op, "expected one row of at least 3 columns, got %d rows", len(rows))
	}
	r := rows[0]
	var s System
	if s.SystemID, err = strconv.ParseUint(string(r[0]), 10, 64); err != nil {
		return System{}, c.protocolError(op, "systemid %q: %v", r[0], err)
	}
	// timeline is int4 on 15 and int8 on 16+; text either way.
	tli, err := strconv.ParseUint(string(r[1]), 10, 32)
	if err != nil || tli == 0 {
		return System{}, c.protocolError(op, "timeline %q is not a timeline", r[1])
	}
	s.Timeline = uint32(tli)
	if s.XLogPos, err = wal.ParseLSN(string(r[2])); err != nil {
		return System{}, c.protocolError(op, "xlogpos: %v", err)
	}
	return s, nil
}

// Show runs the replication command SHOW name and returns the setting as
// the server prints it ("16MB", "replica", "on").
func (c *Conn) Show(ctx context.Context, name string) (string, error) {
	if !validGUCName(name) {
		return "", &Error{Op: "SHOW", Kind: ErrOption, Reason: fmt.Sprintf("%q is not a setting name", name)}
	}
	op := "SHOW " + name
	rows, err := c.simpleQuery(ctx, op, op)
	if err != nil {
		return "", err
	}
	if len(rows) != 1 || len(rows[0]) != 1 || rows[0][0] == nil {
		return "", c.protocolError(op, "expected one value")
	}
	return string(rows[0][0]), nil
}

// SegmentSize is SHOW wal_segment_size in bytes.
func (c *Conn) SegmentSize(ctx context.Context) (uint64, error) {
	v, err := c.Show(ctx, "wal_segment_size")
	if err != nil {
		return 0, err
	}
	n, err := wal.ParseSegmentSize(v)
	if err != nil {
		return 0, c.protocolError("SHOW wal_segment_size", "%v", err)
	}
	return n, nil
}

func validGUCName(s string) bool {
	if s == "" || len(s) > 63*2+1 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '.') {
			return false
		}
	}
	return s[0] != '.' && s[len(s)-1] != '.'
}

// simpleQuery runs one replication command that answers with at most one
// result set and returns its rows (copied: they outlive the read buffer).
func (c *Conn) simpleQuery(ctx context.Context, op, cmd string) ([][][]byte, error) {
	if c.pg.IsClosed() {
		return nil, c.closedError(op)
	}
	results, err := c.pg.Exec(ctx, cmd).ReadAll()
	if err != nil {
		return nil, c.commandError(ctx, op, err, nil)
	}
	var rows [][][]byte
	for _, r := range results {
		rows = append(rows, r.Rows...)
	}
	return rows, nil
}

// commandError turns an error from a command into an *Error. A context
// error closes the connection: the server may still be sending.
func (c *Conn) commandError(ctx context.Context, op string, err error, files []string) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		c.abort()
		return &Error{Op: op + " on " + c.target, Reason: ctxErr.Error(), Err: ctxErr}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return c.secrets.redactError(classifyCommand(op+" on "+c.target, pe, files))
	}
	if c.pg.IsClosed() {
		return &Error{Op: op + " on " + c.target, Kind: ErrClosed, Reason: "connection lost: " + leafMessage(err), Err: err}
	}
	return c.secrets.redactError(&Error{Op: op + " on " + c.target, Reason: leafMessage(err), Err: err})
}

func (c *Conn) protocolError(op, format string, args ...any) error {
	return &Error{Op: op + " on " + c.target, Kind: ErrProtocol, Reason: fmt.Sprintf(format, args...)}
}

func (c *Conn) closedError(op string) error {
	return &Error{Op: op + " on " + c.target, Kind: ErrClosed, Reason: "connection is closed"}
}

// abort closes the socket without waiting for the server: used when the
// session is in an unknown state (cancelled mid-stream, sink failure).
func (c *Conn) abort() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c.pg.Close(ctx)
}

// send writes frontend messages, bounded by ctx.
func (c *Conn) send(ctx context.Context, msgs ...pgproto3.FrontendMessage) error {
	fe := c.pg.Frontend()
	for _, m := range msgs {
		fe.Send(m)
	}
	_, release := watchDeadline(ctx, c.pg.Conn().SetWriteDeadline)
	err := fe.Flush()
	release()
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		c.abort()
	}
	return err
}

// watchDeadline returns a deadline timer on set (one of a connection's
// deadline setters) that ctx interrupts: when ctx ends, blocked socket
// operations fail at once through a deadline in the past. The caller may
// arm it with deadlines of its own. release stops watching and clears
// whatever deadline the timer set, even when the cancellation raced the
// release; a timer that set nothing costs no call of set.
func watchDeadline(ctx context.Context, set func(time.Time) error) (dt *deadlineTimer, release func()) {
	dt = &deadlineTimer{set: set}
	stop := context.AfterFunc(ctx, dt.interrupt)
	return dt, func() {
		stop()
		dt.stop()
	}
}

// deadlineTimer sets a connection's deadline (set) from more than one
// goroutine: the reader's arm and consume, and interrupt, which puts it
// in the past so a blocked operation fails at once. After stop, which
// clears it, an interrupt does nothing.
type deadlineTimer struct {
	mu      sync.Mutex
	set     func(time.Time) error
	at      time.Time
	woken   bool
	stopped bool
}

// arm makes operations wait until t, unless an interruption is pending;
// the deadline is set only when t changes.
func (d *deadlineTimer) arm(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.woken && !d.stopped && !t.Equal(d.at) {
		d.set(t)
		d.at = t
	}
}

// interrupt makes the waiting operation, or the next one, time out.
func (d *deadlineTimer) interrupt() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.stopped {
		d.woken, d.at = true, time.Unix(1, 0)
		d.set(d.at)
	}
}

// interrupted reports whether an interruption is pending.
func (d *deadlineTimer) interrupted() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.woken
}

// consume clears a pending interruption after an operation timed out.
func (d *deadlineTimer) consume() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.woken = false
}

// stop clears the deadline it set, for good.
func (d *deadlineTimer) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	if !d.at.IsZero() {
		d.set(time.Time{})
		d.at = time.Time{}
	}
}
