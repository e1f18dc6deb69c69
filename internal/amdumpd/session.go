package amdumpd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/holdfast-backup/holdfast/internal/amanda"
)

// FeatureDumpResults is the feature bit a client sets (in the REQ's
// features= option or with FEATURES) to receive a DONE line for every
// disk dumped. Amanda 3.5.1 defines bits 0..148; this one is far above.
const FeatureDumpResults = 255

// ErrDumpFailed is matched by the errors of failed disks, both those the
// service returns and those the Client returns.
var ErrDumpFailed = errors.New("amdumpd: dump failed")

// DiskError is one failed disk of a DUMP.
type DiskError struct {
	Host, Disk string
	Reason     string
}

func (e *DiskError) Error() string {
	disk := e.Disk
	if e.Host != "" {
		disk = e.Host + ":" + disk
	}
	return fmt.Sprintf("amdumpd: dump of %s failed: %s", disk, e.Reason)
}

// Is makes errors.Is(err, ErrDumpFailed) true.
func (e *DiskError) Is(target error) bool { return target == ErrDumpFailed }

// session is the state of one CTL conversation: the configuration (set
// once), the peer's disks and the accumulated DISK selection. exec runs one
// command to completion; it never reads the stream.
type session struct {
	backend  Backend
	host     string          // declared host of the peer; "" if unknown
	features amanda.Features // the client's
	w        *bufio.Writer

	cfg      Config
	disks    []string // of host, in configuration order
	selected []string // DISK selection, without duplicates
	failures []error  // failed disks, for the session's result
}

func (s *session) line(l string) { s.w.WriteString(l + "\n") }

// safeLines turns text from the backend into reply lines that cannot end a
// reply early: split at line breaks, and a line that a client would take
// for a terminator (ENDLIST/ENDCHECK/ENDDUMP, or starting with BUSY or
// CONFIG, on which amdump_client stops) is indented.
func safeLines(text string) []string {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	for i, l := range lines {
		l = strings.ReplaceAll(l, "\r", " ")
		switch {
		case l == ReplyEndList, l == ReplyEndCheck, l == ReplyEndDump,
			strings.HasPrefix(l, "BUSY"), strings.HasPrefix(l, "CONFIG"):
			l = "  " + l
		}
		lines[i] = l
	}
	return lines
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)), " ")
}

// exec runs one command and reports whether the session is over. An
// error also ends it.
func (s *session) exec(ctx context.Context, cmd Command) (end bool, err error) {
	switch cmd.Verb {
	case CmdConfig:
		return s.config(ctx, cmd.Arg)
	case CmdFeatures:
		if f, err := amanda.ParseFeatures(cmd.Arg); err == nil {
			s.features = f
		}
		s.line("FEATURES " + amanda.Amanda351Features)
	case CmdList:
		if s.cfg == nil {
			s.line(ReplyNoConfigList)
			break
		}
		for _, d := range s.disks {
			s.line(amanda.Quote(d))
		}
		s.line(ReplyEndList)
	case CmdDisk:
		if s.cfg == nil {
			s.line(ReplyNoConfigDisk)
			break
		}
		s.disk(amanda.Unquote(cmd.Arg))
	case CmdCheck:
		return false, s.check(ctx)
	case CmdDump:
		return false, s.dump(ctx)
	case CmdEnd:
		return true, nil
	default:
		s.line(ReplyInvalid(cmd.Line))
	}
	return false, nil
}

func (s *session) config(ctx context.Context, name string) (bool, error) {
	if s.cfg != nil {
		s.line(ReplyDuplicateConfig)
		return true, nil
	}
	if !ValidConfigName(name) {
		s.line(ReplyConfigErrors)
		return true, fmt.Errorf("amdumpd: CONFIG %s: invalid configuration name", strconv.Quote(name))
	}
	cfg, err := s.backend.Config(ctx, name)
	if err != nil {
		s.line(ReplyConfigErrors)
		return true, fmt.Errorf("amdumpd: CONFIG %s: %w", name, err)
	}
	if s.host == "" {
		s.line(ReplyNoPeer)
		return true, nil
	}
	disks, ok := cfg.Disks(s.host)
	if !ok {
		s.line(ReplyPeerMismatch(s.host))
		return true, nil
	}
	s.cfg, s.disks = cfg, disks
	return false, nil
}

func (s *session) disk(name string) {
	if !slices.Contains(s.disks, name) {
		s.line("ERROR unknown disk " + amanda.Quote(name))
		return
	}
	if !slices.Contains(s.selected, name) {
		s.selected = append(s.selected, name)
	}
	echo := name
	if strings.ContainsAny(name, "\r\n") {
		echo = amanda.Quote(name) // Amanda echoes it raw and breaks the line framing
	}
	s.line("DISK " + echo + " added")
}

// target is what CHECK and DUMP act on: the DISK selection, or every disk
// of the host.
func (s *session) target() []string {
	if len(s.selected) > 0 {
		return slices.Clone(s.selected)
	}
	return slices.Clone(s.disks)
}

// reporter writes a reply's header (CHECKING, DUMPING) once, at the first
// report or when the call returns without BUSY, and guards the writer:
// the backend may report from its own goroutines, never after returning.
type reporter struct {
	s       *session
	header  string
	mu      sync.Mutex
	started bool
	closed  bool
}

func (r *reporter) start() {
	if !r.started {
		r.started = true
		r.s.line(r.header)
	}
}

func (r *reporter) do(fn func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.start()
	fn()
	r.s.w.Flush()
}

// finish stops reports and tells whether the header went out.
func (r *reporter) finish() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return r.started
}

func (s *session) check(ctx context.Context) error {
	if s.cfg == nil {
		s.line(ReplyNoConfigBackup)
		return nil
	}
	r := &reporter{s: s, header: ReplyChecking}
	err := s.cfg.Check(ctx, s.host, s.target(), func(text string) {
		r.do(func() {
			for _, l := range safeLines(text) {
				s.line(l)
			}
		})
	})
	started := r.finish()
	if errors.Is(err, ErrBusy) && !started {
		s.line(ReplyBusy)
		return nil
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	r.start()
	if err != nil {
		s.line("ERROR " + oneLine(err.Error()))
	}
	s.line(ReplyEndCheck)
	return nil
}

func (s *session) dump(ctx context.Context) error {
	if s.cfg == nil {
		s.line(ReplyNoConfigBackup)
		return nil
	}
	disks := s.target()
	done := make(map[string]bool, len(disks))
	r := &reporter{s: s, header: ReplyDumping}
	var failed []error
	fail := func(disk, reason string) {
		reason = oneLine(reason)
		s.line("FAILED " + amanda.Quote(disk) + " " + reason)
		failed = append(failed, &DiskError{Host: s.host, Disk: disk, Reason: reason})
	}
	err := s.cfg.Dump(ctx, s.host, disks, func(ev DumpEvent) {
		r.do(func() {
			switch ev.State {
			case DumpDone:
				done[ev.Disk] = true
				if s.features.Has(FeatureDumpResults) {
					s.line("DONE " + amanda.Quote(ev.Disk) + " " + strconv.Itoa(ev.Level) + " " + amanda.Quote(ev.Backup))
				}
			case DumpFailed:
				done[ev.Disk] = true
				reason := "unknown error"
				if ev.Err != nil {
					reason = ev.Err.Error()
				}
				fail(ev.Disk, reason)
			}
		})
	})
	started := r.finish()
	if errors.Is(err, ErrBusy) && !started {
		s.line(ReplyBusy)
		return nil
	}
	r.start()
	// A failed disk is never silent: every disk without a result fails
	// with the engine's error.
	reason := "the backup engine reported no result"
	if err != nil {
		reason = err.Error()
	}
	all := true
	for _, d := range disks {
		if !done[d] {
			all = false
			fail(d, reason)
		}
	}
	if err != nil && all {
		s.line("ERROR " + oneLine(err.Error()))
	}
	s.failures = append(s.failures, failed...)
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	s.line(ReplyEndDump)
	return nil
}
