package pgrepl

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Classification sentinels. Every error this package returns for a known
// cause wraps one of them (test with errors.Is); server errors also keep the
// *pgconn.PgError reachable with errors.As.
var (
	// ErrUnreachable: the server could not be reached (connection refused,
	// unknown host, no socket, timeout, server starting up or shutting down).
	ErrUnreachable = errors.New("pgrepl: server unreachable")
	// ErrAuth: authentication failed (wrong password, unknown role, role
	// without LOGIN).
	ErrAuth = errors.New("pgrepl: authentication failed")
	// ErrTLS: the TLS handshake or certificate verification failed.
	ErrTLS = errors.New("pgrepl: TLS failure")
	// ErrNoReplication: pg_hba.conf has no line allowing a physical
	// replication connection for this user and host.
	ErrNoReplication = errors.New("pgrepl: replication connection not allowed by pg_hba.conf")
	// ErrPrivilege: the role lacks the REPLICATION attribute.
	ErrPrivilege = errors.New("pgrepl: role lacks the REPLICATION attribute")
	// ErrTooManyConnections: no free WAL sender or connection slot.
	ErrTooManyConnections = errors.New("pgrepl: no free WAL sender")
	// ErrServerVersion: the server's major version is outside 15..18, or a
	// feature needs a newer server (UPLOAD_MANIFEST, INCREMENTAL: 17+).
	ErrServerVersion = errors.New("pgrepl: unsupported server version")
	// ErrWALLevel: wal_level is minimal (or WAL senders are disabled).
	ErrWALLevel = errors.New("pgrepl: wal_level too low for backups")
	// ErrChecksumFailure: the server found data pages whose checksums do not
	// match. The backup stream itself was complete.
	ErrChecksumFailure = errors.New("pgrepl: data page checksum failure")
	// ErrSummarizeWAL: an incremental backup was asked for but summarize_wal
	// is off.
	ErrSummarizeWAL = errors.New("pgrepl: WAL summarization is not enabled")
	// ErrIncremental: an incremental backup cannot be taken against the
	// uploaded manifest (summaries missing or incomplete, WAL ranges that do
	// not match this server's history). A full backup is the way out.
	ErrIncremental = errors.New("pgrepl: incremental backup impossible")
	// ErrManifest: the server rejected an uploaded manifest.
	ErrManifest = errors.New("pgrepl: manifest rejected")
	// ErrSystemMismatch: two connections, or a connection and a manifest,
	// belong to different database systems.
	ErrSystemMismatch = errors.New("pgrepl: system identifier mismatch")
	// ErrTimelineSwitch: the server switched timelines while WAL was being
	// streamed (a standby was promoted).
	ErrTimelineSwitch = errors.New("pgrepl: timeline switch during WAL streaming")
	// ErrOption: an option was rejected before anything was sent.
	ErrOption = errors.New("pgrepl: invalid option")
	// ErrProtocol: the server sent something the protocol does not allow
	// here. Corruption or a bug, never the user's fault.
	ErrProtocol = errors.New("pgrepl: protocol violation")
	// ErrClosed: the connection was closed (after a cancellation or a failed
	// stream) and cannot be used again.
	ErrClosed = errors.New("pgrepl: connection closed")
)

// Error is a failure explained for people: Op says what was attempted and on
// which server, Reason why it failed and what to do about it. Kind is one of
// the package sentinels (or nil) and Err the underlying cause, usually a
// *pgconn.PgError or a network error; both are reachable with errors.Is/As.
type Error struct {
	Op     string
	Reason string
	Kind   error
	Err    error
}

// Error is "<Op>: <Reason>".
func (e *Error) Error() string {
	if e.Op == "" {
		return e.Reason
	}
	return e.Op + ": " + e.Reason
}

// Unwrap returns the classification and the cause.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// SQLSTATE values this package reacts to.
const (
	codeInvalidPassword     = "28P01"
	codeInvalidAuthSpec     = "28000"
	codeInsufficientPriv    = "42501"
	codeTooManyConnections  = "53300"
	codeCannotConnectNow    = "57P03"
	codeDataCorrupted       = "XX001"
	codeFeatureNotSupported = "0A000"
	codeAdminShutdown       = "57P01"
)

// serverReason renders a server error as one line: message, SQLSTATE and
// detail. Hints are left to the caller, which knows better advice.
func serverReason(pe *pgconn.PgError) string {
	s := oneLine(pe.Message) + " (SQLSTATE " + pe.Code + ")"
	if pe.Detail != "" {
		s += ": " + oneLine(pe.Detail)
	}
	return s
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, "\r\n", "; ")
	return strings.ReplaceAll(s, "\n", "; ")
}

// classifyConnect turns an error from pgconn.ConnectConfig into an *Error.
// user is the role name from the configuration (for advice), op the
// operation text naming the server.
func classifyConnect(ctx context.Context, op, user string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return &Error{Op: op, Reason: ctxErr.Error(), Err: ctxErr}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return classifyStartupError(op, user, pe)
	}
	reason := leafMessage(err)
	var (
		dnsErr  *net.DNSError
		opErr   *net.OpError
		certErr *tls.CertificateVerificationError
		uaErr   x509.UnknownAuthorityError
		hostErr x509.HostnameError
		invErr  x509.CertificateInvalidError
		recErr  tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &certErr), errors.As(err, &uaErr), errors.As(err, &hostErr),
		errors.As(err, &invErr), errors.As(err, &recErr):
		return &Error{Op: op, Kind: ErrTLS, Err: err,
			Reason: reason + ": check sslmode, sslrootcert and the server certificate"}
	case errors.As(err, &dnsErr):
		return &Error{Op: op, Kind: ErrUnreachable, Err: err,
			Reason: reason + ": check the host name"}
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOENT),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		pgconn.Timeout(err), errors.As(err, &opErr):
		return &Error{Op: op, Kind: ErrUnreachable, Err: err,
			Reason: reason + ": check that PostgreSQL is running and that host, port and listen_addresses are right"}
	}
	return &Error{Op: op, Reason: reason, Err: err}
}

// classifyStartupError maps the FATAL errors a walsender start-up can end
// with. Texts differ between versions (see the spec §1.3); SQLSTATEs do not,
// except that 28000 covers both pg_hba rejections and roles that may not
// log in, which only the message tells apart.
func classifyStartupError(op, user string, pe *pgconn.PgError) error {
	reason := serverReason(pe)
	switch pe.Code {
	case codeInvalidPassword:
		return &Error{Op: op, Kind: ErrAuth, Err: pe,
			Reason: reason + ": check the password (connection string, PGPASSWORD or the password file)"}
	case codeInvalidAuthSpec:
		if strings.Contains(pe.Message, "pg_hba.conf") {
			return &Error{Op: op, Kind: ErrNoReplication, Err: pe,
				Reason: reason + `: add a line such as "host replication ` + user +
					` <client address>/32 scram-sha-256" to pg_hba.conf (the database column must be "replication"; "all" does not match) and reload the server`}
		}
		return &Error{Op: op, Kind: ErrAuth, Err: pe,
			Reason: reason + ": check that role " + quoteIdent(user) + " exists and may log in (ALTER ROLE " + quoteIdent(user) + " LOGIN)"}
	case codeInsufficientPriv:
		return &Error{Op: op, Kind: ErrPrivilege, Err: pe,
			Reason: "role " + quoteIdent(user) + " has no REPLICATION attribute (" + oneLine(pe.Message) +
				"): ALTER ROLE " + quoteIdent(user) + " REPLICATION"}
	case codeTooManyConnections:
		if strings.Contains(pe.Message, "max_wal_senders") && strings.Contains(pe.Message, "(currently 0)") {
			return &Error{Op: op, Kind: ErrWALLevel, Err: pe,
				Reason: reason + ": WAL senders are disabled; set wal_level = replica and max_wal_senders to at least 2 in postgresql.conf and restart the server"}
		}
		return &Error{Op: op, Kind: ErrTooManyConnections, Err: pe,
			Reason: reason + ": raise max_wal_senders (a backup with streamed WAL needs 2) or wait for other backups and standbys to disconnect"}
	case codeCannotConnectNow, codeAdminShutdown:
		return &Error{Op: op, Kind: ErrUnreachable, Err: pe, Reason: reason + ": retry when the server is up"}
	}
	return &Error{Op: op, Err: pe, Reason: reason}
}

// classifyCommand maps an ErrorResponse to a replication command. files are
// the names collected from checksum WARNINGs, reported with XX001.
func classifyCommand(op string, pe *pgconn.PgError, files []string) error {
	reason := serverReason(pe)
	msg := pe.Message
	switch {
	case pe.Code == codeDataCorrupted:
		r := reason
		if len(files) > 0 {
			r += ": in " + quoteList(files, 10)
		}
		return &Error{Op: op, Kind: ErrChecksumFailure, Err: pe,
			Reason: r + ": the server's data files are damaged; the backup stream was complete but must not be trusted — investigate the storage and recover the damaged relations"}
	case strings.Contains(msg, "WAL level not sufficient"):
		return &Error{Op: op, Kind: ErrWALLevel, Err: pe,
			Reason: reason + ": set wal_level = replica in postgresql.conf and restart the server"}
	case strings.Contains(msg, "unless WAL summarization is enabled"):
		return &Error{Op: op, Kind: ErrSummarizeWAL, Err: pe,
			Reason: reason + ": ALTER SYSTEM SET summarize_wal = on; SELECT pg_reload_conf(); then take a full backup to start a new chain"}
	case strings.Contains(msg, "must UPLOAD_MANIFEST"):
		return &Error{Op: op, Kind: ErrManifest, Err: pe, Reason: reason}
	case strings.HasPrefix(msg, "WAL summaries are required"),
		strings.HasPrefix(msg, "WAL summarization is not progressing"),
		strings.HasPrefix(msg, "manifest requires WAL"),
		strings.HasPrefix(msg, "manifest contains no required WAL ranges"),
		strings.Contains(msg, "found in manifest, but not in this server's history"):
		r := reason
		if pe.Hint != "" {
			r += " (" + oneLine(pe.Hint) + ")"
		}
		return &Error{Op: op, Kind: ErrIncremental, Err: pe,
			Reason: r + ": take a full backup instead"}
	case pe.Code == codeTooManyConnections:
		return &Error{Op: op, Kind: ErrTooManyConnections, Err: pe, Reason: reason}
	}
	if pe.Hint != "" {
		reason += ": " + oneLine(pe.Hint)
	}
	return &Error{Op: op, Err: pe, Reason: reason}
}

// leafMessage is the text of the most specific errors in err's tree, one
// line, duplicates removed. pgconn wraps dial errors in layers that repeat
// the address; the leaves (e.g. "dial tcp 127.0.0.1:1: connect: connection
// refused") say it all. A *net.OpError or *net.DNSError counts as a leaf: its
// text already carries its cause.
func leafMessage(err error) string {
	var msgs []string
	seen := map[string]bool{}
	var walk func(e error)
	walk = func(e error) {
		if u, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range u.Unwrap() {
				walk(x)
			}
			return
		}
		switch e.(type) {
		case *net.OpError, *net.DNSError:
		default:
			if next := errors.Unwrap(e); next != nil {
				walk(next)
				return
			}
		}
		if m := oneLine(e.Error()); !seen[m] {
			seen[m] = true
			msgs = append(msgs, m)
		}
	}
	walk(err)
	if len(msgs) == 0 {
		return oneLine(err.Error())
	}
	return strings.Join(msgs, "; ")
}

func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

func quoteList(names []string, max int) string {
	var b strings.Builder
	for i, n := range names {
		if i == max {
			fmt.Fprintf(&b, " and %d more", len(names)-max)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", n)
	}
	return b.String()
}

// redactor removes secrets from text that may have picked them up.
type redactor []string

func (r redactor) redact(s string) string {
	for _, secret := range r {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}

// redactError rewrites err's text with r while keeping its chain.
func (r redactor) redactError(err error) error {
	if err == nil || len(r) == 0 {
		return err
	}
	if e, ok := err.(*Error); ok {
		c := *e
		c.Op, c.Reason = r.redact(c.Op), r.redact(c.Reason)
		return &c
	}
	text := err.Error()
	if red := r.redact(text); red != text {
		return &redactedError{text: red, err: err}
	}
	return err
}

type redactedError struct {
	text string
	err  error
}

func (e *redactedError) Error() string { return e.text }
func (e *redactedError) Unwrap() error { return e.err }

// secretsIn finds password values in a conninfo string, best effort: the
// value of every password= keyword (quoted or not, raw and unescaped) and the
// password part of a URI's user information (raw and percent-decoded). Values
// shorter than 3 bytes are ignored so that redaction does not shred ordinary
// words.
func secretsIn(conninfo string) redactor {
	var out redactor
	add := func(s string) {
		if len(s) >= 3 {
			out = append(out, s)
		}
		if u, err := url.QueryUnescape(s); err == nil && u != s && len(u) >= 3 {
			out = append(out, u)
		}
	}
	lower := strings.ToLower(conninfo)
	for i := 0; ; {
		j := strings.Index(lower[i:], "password")
		if j < 0 {
			break
		}
		i += j + len("password")
		rest := strings.TrimLeft(conninfo[i:], " \t")
		if !strings.HasPrefix(rest, "=") {
			continue
		}
		rest = strings.TrimLeft(rest[1:], " \t")
		if strings.HasPrefix(rest, "'") {
			rest = rest[1:]
			var b strings.Builder
			n := 0
			for ; n < len(rest) && rest[n] != '\''; n++ {
				if rest[n] == '\\' && n+1 < len(rest) {
					n++
				}
				b.WriteByte(rest[n])
			}
			add(rest[:n])
			add(b.String())
			continue
		}
		end := strings.IndexAny(rest, " \t&#")
		if end < 0 {
			end = len(rest)
		}
		add(rest[:end])
	}
	for _, scheme := range []string{"postgres://", "postgresql://"} {
		if !strings.HasPrefix(lower, scheme) {
			continue
		}
		authority, _, _ := strings.Cut(conninfo[len(scheme):], "/")
		authority, _, _ = strings.Cut(authority, "?")
		if at := strings.LastIndex(authority, "@"); at >= 0 {
			if _, pw, ok := strings.Cut(authority[:at], ":"); ok {
				add(pw)
			}
		}
	}
	return out
}
