package amdumpd

import (
	"bufio"
	"errors"
	"io"
	"regexp"
	"strings"
	"sync"
)

// Verb is the kind of a CTL command line.
type Verb int

// The commands of amdumpd, plus Invalid for every other line.
const (
	CmdInvalid  Verb = iota // anything else: answered "invalid command '<line>'"
	CmdConfig               // "CONFIG <name>"
	CmdFeatures             // "FEATURES <hex>"
	CmdList                 // "LIST"
	CmdDisk                 // "DISK <quoted disk>"
	CmdDump                 // "DUMP"
	CmdCheck                // "CHECK"
	CmdEnd                  // "END", or a line of only digits
)

var verbNames = [...]string{"invalid", "CONFIG", "FEATURES", "LIST", "DISK", "DUMP", "CHECK", "END"}

func (v Verb) String() string {
	if v < 0 || int(v) >= len(verbNames) {
		return "invalid"
	}
	return verbNames[v]
}

// Command is one parsed command line.
type Command struct {
	Verb Verb
	Arg  string // CONFIG's name, FEATURES' string, DISK's quoted name, verbatim
	Line string // the line without its LF and one trailing CR
}

// ParseCommand parses a line as amdumpd does: one trailing LF and then
// one CR are removed, keywords are case-sensitive and must match the whole
// line, arguments follow one space and are taken verbatim.
func ParseCommand(line string) Command {
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	c := Command{Line: line}
	switch line {
	case "LIST":
		c.Verb = CmdList
	case "DUMP":
		c.Verb = CmdDump
	case "CHECK":
		c.Verb = CmdCheck
	case "END":
		c.Verb = CmdEnd
	default:
		verb, arg, ok := strings.Cut(line, " ")
		switch {
		case ok && verb == "CONFIG":
			c.Verb, c.Arg = CmdConfig, arg
		case ok && verb == "FEATURES":
			c.Verb, c.Arg = CmdFeatures, arg
		case ok && verb == "DISK":
			c.Verb, c.Arg = CmdDisk, arg
		case allDigits(line):
			c.Verb = CmdEnd
		}
	}
	return c
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String returns the command as a line, LF included.
func (c Command) String() string {
	switch c.Verb {
	case CmdConfig, CmdFeatures, CmdDisk:
		return c.Verb.String() + " " + c.Arg + "\n"
	case CmdList, CmdDump, CmdCheck, CmdEnd:
		return c.Verb.String() + "\n"
	}
	return c.Line + "\n"
}

// configName is what Holdfast accepts as a CONFIG name (Amanda accepts
// any path, "../../x" included). Compiled on first use: a package-level
// regexp costs every command's start.
var configName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`) })

// ValidConfigName reports whether name may be used with CONFIG.
func ValidConfigName(name string) bool { return configName().MatchString(name) }

// Reply lines, byte for byte as amdumpd 3.5.1 writes them (without LF).
const (
	ReplyDuplicateConfig = "ERROR duplicate CONFIG command"
	ReplyConfigErrors    = "ERROR configuration errors; aborting connection"
	ReplyDisklistErrors  = "ERROR Errors processing disklist"
	ReplyNoPeer          = "no authenticated peer name is available; rejecting request."
	ReplyNoConfigList    = "CONFIG must be set before listing the disk"
	ReplyNoConfigDisk    = "CONFIG must be set before setting the disk"
	ReplyNoConfigBackup  = "CONFIG must be set before doing a backup"
	ReplyBusy            = "BUSY Amanda is busy, retry later"
	ReplyEndList         = "ENDLIST"
	ReplyChecking        = "CHECKING"
	ReplyEndCheck        = "ENDCHECK"
	ReplyDumping         = "DUMPING"
	ReplyEndDump         = "ENDDUMP"
)

// Holdfast's own reply lines, where amdumpd 3.5.1 says nothing or has no
// equivalent.
const (
	// ReplyLineTooLong ends a session whose client sent an over-long line.
	ReplyLineTooLong = "ERROR command line too long; aborting connection"
	// ReplyIdle ends a session that stayed silent for the idle timeout.
	ReplyIdle = "ERROR idle timeout; closing connection"
)

// ReplyPeerMismatch is amdumpd's answer to CONFIG when the peer is not a
// host of the configuration (no "ERROR " prefix, as in 3.5.1).
func ReplyPeerMismatch(host string) string {
	return "The peer host '" + host + "' doesn't match a host in the disklist."
}

// ReplyInvalid answers a line that is no command.
func ReplyInvalid(line string) string { return "invalid command '" + line + "'" }

// ErrLineTooLong is returned by LineReader for a line over its limit.
var ErrLineTooLong = errors.New("amdumpd: line too long")

// LineReader reads LF-terminated lines with a length limit. Bytes after
// the last LF at the end of the input are not a line.
type LineReader struct {
	r   *bufio.Reader
	max int
}

// NewLineReader reads lines of at most max bytes (LF excluded) from r.
func NewLineReader(r io.Reader, max int) *LineReader {
	return &LineReader{r: bufio.NewReaderSize(r, 4096), max: max}
}

// ReadLine returns the next line without its LF. After ErrLineTooLong the
// reader is positioned inside that line and should be abandoned.
func (lr *LineReader) ReadLine() (string, error) {
	var long []byte
	for {
		frag, err := lr.r.ReadSlice('\n')
		if len(long)+len(frag) > lr.max+1 {
			return "", ErrLineTooLong
		}
		switch {
		case err == nil:
			if long == nil {
				return string(frag[:len(frag)-1]), nil
			}
			long = append(long, frag...)
			return string(long[:len(long)-1]), nil
		case errors.Is(err, bufio.ErrBufferFull):
			long = append(long, frag...)
		default:
			if err == io.EOF && len(long)+len(frag) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
	}
}

// Buffered reports whether a complete line can be read without blocking.
func (lr *LineReader) Buffered() bool {
	n := lr.r.Buffered()
	if n == 0 {
		return false
	}
	b, _ := lr.r.Peek(n)
	return strings.IndexByte(string(b), '\n') >= 0
}
