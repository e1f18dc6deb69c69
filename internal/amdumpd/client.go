package amdumpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/holdfast-backup/holdfast/internal/amanda"
)

// ErrRefused is matched by every refusal: the transport's (NAK or ERROR
// REP, *amanda.RefusedError) and the service's (*ReplyError).
var ErrRefused = amanda.ErrRefused

// ErrUnknownDisk is returned by Client.Select for a disk the server did
// not list; nothing is sent for it (the real amdumpd never answers an
// unknown DISK).
var ErrUnknownDisk = errors.New("amdumpd: unknown disk")

// ErrClosed is returned when the server ended the session before
// answering.
var ErrClosed = errors.New("amdumpd: server closed the session")

// ReplyError is an answer of the server that refuses a command.
type ReplyError struct {
	Command string // the command line sent, without LF
	Line    string // the server's line
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("amdumpd: %s: %s", e.Command, e.Line)
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *ReplyError) Is(target error) bool { return target == ErrRefused }

// ClientFeatures is the feature set the Client announces: Amanda 3.5.1's,
// plus FeatureDumpResults.
func ClientFeatures() amanda.Features {
	f, _ := amanda.ParseFeatures(amanda.Amanda351Features)
	return f.With(FeatureDumpResults)
}

// Client is a session with an amdumpd service (Holdfast's or Amanda's).
// Its methods must not be called concurrently.
type Client struct {
	cc     *amanda.ClientConn
	st     *amanda.Stream
	lr     *LineReader
	listed []string // from the last LIST
	broken error    // sticky: the stream is unusable
}

// MaxReplyLine bounds one reply line read by the Client.
const MaxReplyLine = 64 * 1024

// Dial connects through d to the amdumpd service at addr ("host:port") and
// opens its CTL stream. hostname goes into the REQ's hostname= option, as
// amservice puts its host argument there. A refusal of the request
// matches ErrRefused.
func Dial(ctx context.Context, d *amanda.Dialer, addr, hostname string) (*Client, error) {
	req := amanda.NewRequest(d.User, "amdumpd", amanda.Options{
		{Key: "features", Value: ClientFeatures().String()},
		{Key: "hostname", Value: hostname},
	})
	cc, err := d.Dial(ctx, addr, req)
	if err != nil {
		return nil, err
	}
	st, err := cc.Stream("CTL")
	if err != nil {
		cc.Close()
		return nil, err
	}
	return &Client{cc: cc, st: st, lr: NewLineReader(st, MaxReplyLine)}, nil
}

// send writes one command line.
func (c *Client) send(cmd string) error {
	if c.broken != nil {
		return c.broken
	}
	if _, err := c.st.Write([]byte(cmd + "\n")); err != nil {
		c.broken = err
		return err
	}
	return nil
}

// readLine reads one reply line; ctx ends the wait.
func (c *Client) readLine(ctx context.Context) (string, error) {
	if c.broken != nil {
		return "", c.broken
	}
	c.st.SetReadDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { c.st.SetReadDeadline(time.Unix(1, 0)) })
	line, err := c.lr.ReadLine()
	stop()
	if err != nil {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		} else if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = ErrClosed
		}
		c.broken = err
		return "", err
	}
	return line, nil
}

// Config selects the configuration. amdumpd answers nothing on success,
// so a FEATURES command follows it: its answer proves CONFIG passed. An
// unknown configuration or a peer the configuration does not know
// matches ErrRefused; the server then closes the session.
func (c *Client) Config(ctx context.Context, name string) error {
	cmd := "CONFIG " + name
	if strings.ContainsAny(name, "\r\n") {
		return fmt.Errorf("amdumpd: invalid configuration name %q", name)
	}
	if err := c.send(cmd); err != nil {
		return err
	}
	if err := c.send("FEATURES " + ClientFeatures().String()); err != nil {
		return err
	}
	line, err := c.readLine(ctx)
	if err != nil {
		return fmt.Errorf("amdumpd: %s: %w", cmd, err)
	}
	if strings.HasPrefix(line, "FEATURES ") {
		return nil
	}
	c.broken = &ReplyError{Command: cmd, Line: line}
	return c.broken
}

// List returns the disks the server holds for this host, unquoted.
func (c *Client) List(ctx context.Context) ([]string, error) {
	if err := c.send("LIST"); err != nil {
		return nil, err
	}
	var disks []string
	for {
		line, err := c.readLine(ctx)
		if err != nil {
			return nil, fmt.Errorf("amdumpd: LIST: %w", err)
		}
		switch {
		case line == ReplyEndList:
			c.listed = disks
			return disks, nil
		case strings.HasPrefix(line, "CONFIG "), strings.HasPrefix(line, "ERROR "):
			// A disk name with a space is always quoted, so these are
			// never disks.
			return nil, &ReplyError{Command: "LIST", Line: line}
		}
		disks = append(disks, amanda.Unquote(line))
	}
}

// Select restricts CHECK and DUMP to disks (by default they act on every
// disk of the host). Disks are checked against LIST first, which is run
// if it has not been; an unknown one fails with ErrUnknownDisk before
// anything is sent.
func (c *Client) Select(ctx context.Context, disks ...string) error {
	if c.listed == nil {
		if _, err := c.List(ctx); err != nil {
			return err
		}
	}
	for _, d := range disks {
		if !slices.Contains(c.listed, d) {
			return fmt.Errorf("%w: %s", ErrUnknownDisk, strconv.Quote(d))
		}
	}
	for _, d := range disks {
		cmd := "DISK " + amanda.Quote(d)
		if err := c.send(cmd); err != nil {
			return err
		}
		line, err := c.readLine(ctx)
		if err != nil {
			return fmt.Errorf("amdumpd: %s: %w", cmd, err)
		}
		if !strings.HasPrefix(line, "DISK ") {
			return &ReplyError{Command: cmd, Line: line}
		}
	}
	return nil
}

// runReply sends cmd (CHECK or DUMP) and reads its reply: header, lines,
// end. BUSY gives ErrBusy.
func (c *Client) runReply(ctx context.Context, cmd, header, end string, line func(string)) error {
	if err := c.send(cmd); err != nil {
		return err
	}
	first, err := c.readLine(ctx)
	if err != nil {
		return fmt.Errorf("amdumpd: %s: %w", cmd, err)
	}
	switch {
	case strings.HasPrefix(first, "BUSY"):
		return ErrBusy
	case first != header:
		return &ReplyError{Command: cmd, Line: first}
	}
	for {
		l, err := c.readLine(ctx)
		if err != nil {
			return fmt.Errorf("amdumpd: %s: %w", cmd, err)
		}
		if l == end {
			return nil
		}
		line(l)
	}
}

// Check runs the server's preflight and returns its lines (between
// CHECKING and ENDCHECK). A dump running on the server gives ErrBusy; a
// check that could not run returns the lines and a *ReplyError.
func (c *Client) Check(ctx context.Context) ([]string, error) {
	var lines []string
	var failed error
	err := c.runReply(ctx, "CHECK", ReplyChecking, ReplyEndCheck, func(l string) {
		lines = append(lines, l)
		if strings.HasPrefix(l, "ERROR ") && failed == nil {
			failed = &ReplyError{Command: "CHECK", Line: l}
		}
	})
	if err != nil {
		return lines, err
	}
	return lines, failed
}

// DumpedDisk is one disk a DUMP committed.
type DumpedDisk struct {
	Disk   string
	Level  int
	Backup string
}

// DumpResult is what a DUMP reported.
type DumpResult struct {
	Done  []DumpedDisk // from DONE lines (Holdfast servers only)
	Lines []string     // every other line between DUMPING and ENDDUMP
}

// Dump runs the backup of the selected disks (or all of the host's) and
// waits for it; report, if not nil, sees every line as it arrives. A dump
// running already gives ErrBusy; failed disks are returned as
// *DiskError values (matching ErrDumpFailed), joined.
func (c *Client) Dump(ctx context.Context, report func(line string)) (DumpResult, error) {
	var res DumpResult
	var failed []error
	err := c.runReply(ctx, "DUMP", ReplyDumping, ReplyEndDump, func(l string) {
		if report != nil {
			report(l)
		}
		if d, ok := parseDone(l); ok {
			res.Done = append(res.Done, d)
			return
		}
		if e, ok := parseFailed(l); ok {
			failed = append(failed, e)
		}
		res.Lines = append(res.Lines, l)
	})
	if err != nil {
		return res, errors.Join(append([]error{err}, failed...)...)
	}
	return res, errors.Join(failed...)
}

// splitQuoted splits off the first word of s, which may be quoted (with
// spaces inside quotes): Amanda's quoted form of a disk name.
func splitQuoted(s string) (word, rest string, ok bool) {
	if !strings.HasPrefix(s, `"`) {
		word, rest, _ = strings.Cut(s, " ")
		return word, rest, word != ""
	}
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			word, rest = s[:i+1], strings.TrimPrefix(s[i+1:], " ")
			return word, rest, true
		}
	}
	return "", "", false
}

func parseDone(l string) (DumpedDisk, bool) {
	rest, ok := strings.CutPrefix(l, "DONE ")
	if !ok {
		return DumpedDisk{}, false
	}
	qdisk, rest, ok := splitQuoted(rest)
	if !ok {
		return DumpedDisk{}, false
	}
	lv, qid, _ := strings.Cut(rest, " ")
	level, err := strconv.Atoi(lv)
	if err != nil {
		return DumpedDisk{}, false
	}
	return DumpedDisk{Disk: amanda.Unquote(qdisk), Level: level, Backup: amanda.Unquote(qid)}, true
}

func parseFailed(l string) (*DiskError, bool) {
	rest, ok := strings.CutPrefix(l, "FAILED ")
	if !ok {
		return nil, false
	}
	qdisk, reason, ok := splitQuoted(rest)
	if !ok {
		return nil, false
	}
	return &DiskError{Disk: amanda.Unquote(qdisk), Reason: reason}, true
}

// Close ends the session politely: END, then wait (up to 10 s or ctx) for
// the server to close the stream, close ours and the connection.
func (c *Client) Close(ctx context.Context) error {
	defer c.cc.Close()
	if c.broken == nil {
		if err := c.send("END"); err == nil {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			select {
			case <-c.st.PeerClosed():
			case <-c.cc.Done():
			case <-ctx.Done():
			}
		}
	}
	c.st.Close()
	return nil
}
