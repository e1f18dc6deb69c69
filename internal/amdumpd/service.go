package amdumpd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/holdfast-backup/holdfast/internal/amanda"
)

// Defaults of the Service's limits.
const (
	DefaultIdleTimeout   = 15 * time.Minute
	DefaultMaxLineLength = 4096
)

// CTL is the stream a session runs on: an *amanda.Stream, or a net.Conn
// in tests.
type CTL interface {
	io.Reader
	io.Writer
	SetReadDeadline(t time.Time) error
}

// Peer is what a session knows of its client.
type Peer struct {
	Host     string          // Name of the declared host; "" if unknown
	Features amanda.Features // from the REQ's features= option
	// Draining, when closed, ends the session before its next command.
	Draining <-chan struct{}
}

// Service is the amdumpd service. It implements amanda.Handler, so it is
// registered as Server.Services["amdumpd"]. A Service may serve many
// sessions at once.
type Service struct {
	Backend Backend
	// IdleTimeout ends a session whose client sends no command for this
	// long while nothing runs (DefaultIdleTimeout). Amanda has none.
	IdleTimeout time.Duration
	// MaxLineLength bounds a command line (DefaultMaxLineLength); a longer
	// one ends the session. Amanda has none.
	MaxLineLength int
}

var _ amanda.Handler = (*Service)(nil)

// ServeAmanda answers the REQ as amdumpd does and runs the session on the
// CTL stream. An auth= option that differs from the transport's name is
// refused with amdumpd's own text.
func (svc *Service) ServeAmanda(ctx context.Context, call *amanda.Call) error {
	opts := call.Request.Options()
	if auth, ok := opts.Get("auth"); ok && auth != call.Auth {
		return call.Reject(ctx, fmt.Sprintf("recover program requested auth '%s', but amandad is using auth '%s'", auth, call.Auth))
	}
	st, err := call.Connect(ctx)
	if err != nil {
		return err
	}
	peer := Peer{Host: call.Peer.Host, Draining: call.Draining()}
	if v, ok := opts.Get("features"); ok {
		peer.Features, _ = amanda.ParseFeatures(v)
	}
	return svc.ServeCTL(ctx, st, peer)
}

// ServeCTL runs one session on ctl until END, a digits-only line, the
// client's end of the stream, a fatal CONFIG answer, the idle timeout or
// draining. It returns the disks that failed (matching ErrDumpFailed) and
// I/O or configuration errors, for the caller to log; none of them has
// been hidden from the client.
func (svc *Service) ServeCTL(ctx context.Context, ctl CTL, peer Peer) error {
	idle := svc.IdleTimeout
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	maxLine := svc.MaxLineLength
	if maxLine <= 0 {
		maxLine = DefaultMaxLineLength
	}
	s := &session{backend: svc.Backend, host: peer.Host, features: peer.Features, w: bufio.NewWriterSize(ctl, 4096)}
	lr := NewLineReader(ctl, maxLine)

	// Wake a Read blocked on the next command when the server drains or
	// the connection ends.
	stopWake := make(chan struct{})
	defer close(stopWake)
	go func() {
		select {
		case <-peer.Draining:
		case <-ctx.Done():
		case <-stopWake:
			return
		}
		ctl.SetReadDeadline(time.Unix(1, 0))
	}()
	draining := func() bool {
		select {
		case <-peer.Draining:
			return true
		case <-ctx.Done():
			return true
		default:
			return false
		}
	}

	for {
		if draining() {
			return s.result(context.Cause(ctx))
		}
		ctl.SetReadDeadline(time.Now().Add(idle))
		if draining() {
			return s.result(context.Cause(ctx))
		}
		line, err := lr.ReadLine()
		ctl.SetReadDeadline(time.Time{})
		switch {
		case err == nil:
		case errors.Is(err, ErrLineTooLong):
			s.line(ReplyLineTooLong)
			return s.result(errors.Join(err, s.w.Flush()))
		case errors.Is(err, os.ErrDeadlineExceeded):
			if draining() {
				return s.result(context.Cause(ctx))
			}
			s.line(ReplyIdle)
			return s.result(s.w.Flush())
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return s.result(nil)
		default:
			return s.result(err)
		}
		end, err := s.exec(ctx, ParseCommand(line))
		if ferr := s.w.Flush(); err == nil && ferr != nil {
			err = fmt.Errorf("amdumpd: write reply: %w", ferr)
		}
		if err != nil || end {
			return s.result(err)
		}
	}
}

// result joins the session's failed disks to err.
func (s *session) result(err error) error {
	return errors.Join(append([]error{err}, s.failures...)...)
}
