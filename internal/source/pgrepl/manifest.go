package pgrepl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// UploadManifest sends a prior backup's backup_manifest with
// UPLOAD_MANIFEST (17+), so that the next BaseBackup on this connection can
// be Incremental. The manifest stays attached to this session only. A
// manifest the server refuses gives ErrManifest (with the server's reason:
// version 1 manifest, other system, checksum mismatch, parse error); a read
// error from r aborts the upload and is returned wrapped.
func (c *Conn) UploadManifest(ctx context.Context, r io.Reader) error {
	const op = "UPLOAD_MANIFEST"
	if c.Major() < 17 {
		return &Error{Op: op + " on " + c.target, Kind: ErrServerVersion,
			Reason: fmt.Sprintf("incremental backups need PostgreSQL 17 or later, the server is %s: take a full backup", c.versionString())}
	}
	if c.pg.IsClosed() {
		return c.closedError(op)
	}
	er := &errReader{r: r}
	_, err := c.pg.CopyFrom(ctx, er, op)
	if er.err != nil && !errors.Is(er.err, io.EOF) {
		// pgconn sent CopyFail; the server's answer to it says nothing new.
		return &Error{Op: op + " on " + c.target, Reason: "read manifest: " + er.err.Error(), Err: er.err}
	}
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if ctx.Err() == nil && errors.As(err, &pe) {
		return c.secrets.redactError(classifyUpload(op+" on "+c.target, pe))
	}
	return c.commandError(ctx, op, err, nil)
}

func classifyUpload(op string, pe *pgconn.PgError) error {
	reason := serverReason(pe)
	switch {
	case strings.Contains(pe.Message, "version 1 does not support incremental"):
		reason += ": the parent backup came from a server older than 17; take a full backup"
	case strings.HasPrefix(pe.Message, "system identifier in backup manifest"):
		reason += ": the parent backup belongs to another database system; take a full backup"
	case pe.Code == codeFeatureNotSupported:
		// 15 and 16 do not know the command and treat it as SQL.
		return &Error{Op: op, Kind: ErrServerVersion, Err: pe,
			Reason: reason + ": the server does not support UPLOAD_MANIFEST (PostgreSQL 17 or later needed); take a full backup"}
	default:
		reason += ": the parent backup's manifest is damaged or not a backup_manifest; verify it or take a full backup"
	}
	return &Error{Op: op, Kind: ErrManifest, Err: pe, Reason: reason}
}

// errReader remembers the error of the reader it wraps, because pgconn
// turns it into a CopyFail and returns the server's answer instead.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}
