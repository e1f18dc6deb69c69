package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Sentinel errors. The errors returned carry a full message; these are for
// errors.Is.
var (
	ErrNotFound    = errors.New("config: no such config")
	ErrInvalidName = errors.New("config: invalid config name")
	ErrInvalidHost = errors.New("config: invalid host name")
	ErrInvalidDisk = errors.New("config: invalid disk name")
	ErrUnknownHost = errors.New("config: unknown host")
	ErrUnknownDisk = errors.New("config: unknown disk")

	ErrInvalidConnInfo = errors.New("config: invalid PostgreSQL connection string")
)

// kindError is an error whose message stands alone but which still matches
// a sentinel with errors.Is.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// DefaultDir is where config files live when neither a flag nor EnvDir says
// otherwise.
const DefaultDir = "/etc/holdfast"

// EnvDir is the environment variable that overrides DefaultDir.
const EnvDir = "HOLDFAST_CONFIG_DIR"

// MaxNameLen is the longest config name, in bytes.
const MaxNameLen = 64

// Dir returns the config directory: flag if it is set, else $HOLDFAST_CONFIG_DIR,
// else /etc/holdfast.
func Dir(flag string) string {
	if flag != "" {
		return flag
	}
	if d := os.Getenv(EnvDir); d != "" {
		return d
	}
	return DefaultDir
}

// ValidName checks a config name: 1 to 64 of A-Z a-z 0-9 . _ -, starting
// with a letter or digit. Such a name can neither hold a path separator nor
// be "." or "..", so <dir>/<name>.yaml always stays inside dir.
func ValidName(name string) error {
	if why := nameProblem(name); why != "" {
		return &kindError{fmt.Sprintf("invalid config name %q: %s", name, why), ErrInvalidName}
	}
	return nil
}

const nameRule = "use letters, digits, '.', '_' and '-', starting with a letter or digit"

func nameProblem(name string) string {
	switch {
	case name == "":
		return "it is empty; " + nameRule
	case len(name) > MaxNameLen:
		return fmt.Sprintf("it is %d bytes long; use at most %d", len(name), MaxNameLen)
	case !isAlnum(name[0]):
		return fmt.Sprintf("it starts with %s; %s", describeByte(name, 0), nameRule)
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return fmt.Sprintf("it contains %s; %s", describeByte(name, i), nameRule)
		}
	}
	return ""
}

// describeByte names the character at s[i] for a message, without printing
// anything unprintable.
func describeByte(s string, i int) string {
	r, _ := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError || !unicode.IsPrint(r) || r == ' ' {
		return fmt.Sprintf("%U", r)
	}
	return fmt.Sprintf("'%c'", r)
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// ValidHost checks a client host name: dot-separated labels of letters,
// digits and '-', each 1 to 63 bytes, starting and ending with a letter or
// digit, at most 253 bytes in all. Host names are compared without regard to
// case; a Config holds them in lower case.
func ValidHost(host string) error {
	if why := hostProblem(host); why != "" {
		return &kindError{fmt.Sprintf("invalid host name %q: %s", host, why), ErrInvalidHost}
	}
	return nil
}

const hostRule = "use letters, digits, '-' and '.', e.g. db1 or db1.example.com"

func hostProblem(host string) string {
	if host == "" {
		return "it is empty; " + hostRule
	}
	if len(host) > 253 {
		return fmt.Sprintf("it is %d bytes long; use at most 253", len(host))
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; !isAlnum(c) && c != '.' && c != '-' {
			return fmt.Sprintf("it contains %s; %s", describeByte(host, i), hostRule)
		}
	}
	for label := range strings.SplitSeq(host, ".") {
		switch {
		case label == "":
			return "it has an empty label (a leading, trailing or doubled '.'); remove the extra '.'"
		case len(label) > 63:
			return fmt.Sprintf("its label %q is %d bytes long; labels are at most 63", label, len(label))
		case label[0] == '-' || label[len(label)-1] == '-':
			return fmt.Sprintf("its label %q starts or ends with '-'; labels start and end with a letter or digit", label)
		}
	}
	return ""
}

// MaxDiskKeyLen is the longest DiskKey a valid disk name may have: one path
// component on every common file system.
const MaxDiskKeyLen = 255

// ValidDisk checks a disk name. Any UTF-8 text is allowed, spaces and '/'
// included (Amanda disk names are often paths), except: the empty name,
// control characters, white space at either end, and names whose DiskKey
// would be longer than 255 bytes (each byte other than A-Z a-z 0-9 . _ -
// counts three).
func ValidDisk(disk string) error {
	if why := diskProblem(disk); why != "" {
		return &kindError{fmt.Sprintf("invalid disk name %q: %s", disk, why), ErrInvalidDisk}
	}
	return nil
}

func diskProblem(disk string) string {
	if disk == "" {
		return "it is empty; give the disk a name, e.g. pg-main"
	}
	if !utf8.ValidString(disk) {
		return "it is not valid UTF-8; write the name in UTF-8"
	}
	for _, r := range disk {
		if unicode.IsControl(r) {
			return fmt.Sprintf("it contains the control character %U; remove it", r)
		}
	}
	first, _ := utf8.DecodeRuneInString(disk)
	last, _ := utf8.DecodeLastRuneInString(disk)
	if unicode.IsSpace(first) || unicode.IsSpace(last) {
		return "it starts or ends with white space; remove it"
	}
	if n := len(DiskKey(disk)); n > MaxDiskKeyLen {
		return fmt.Sprintf("it is too long: %d bytes once encoded for the repository, at most %d; use a shorter name", n, MaxDiskKeyLen)
	}
	return ""
}

// DiskKey encodes a disk name as one file-system-safe path component, for
// repository paths and object keys. Bytes in A-Z a-z 0-9 . _ - are kept,
// except a leading '.'; every other byte becomes %XX (upper-case hex), so
// "pg main" is "pg%20main" and "/var/lib/pgsql" is "%2Fvar%2Flib%2Fpgsql".
//
// The encoding is injective (decoding %XX gives the name back), and its
// result is never empty, ".", "..", a hidden file name, or contains '/' or
// NUL. The empty name, which ValidDisk refuses, encodes as "%", which no
// other name produces. Keys are case-sensitive, as Linux file systems and S3
// are.
func DiskKey(disk string) string {
	if disk == "" {
		return "%"
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(disk))
	for i := 0; i < len(disk); i++ {
		c := disk[i]
		if isAlnum(c) || c == '_' || c == '-' || c == '.' && i > 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// List returns the names of the configs in dir: every <name>.yaml whose name
// passes ValidName and which is a regular file or a symbolic link, sorted.
// Other entries are ignored.
func List(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list configs in %s: %w", dir, err)
	}
	var names []string
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".yaml")
		if !ok || ValidName(name) != nil {
			continue
		}
		if t := e.Type(); t.IsRegular() || t&os.ModeSymlink != 0 {
			names = append(names, name)
		}
	}
	return names, nil
}

// listHint is the end of a "config not found" message.
func listHint(dir, name string) string {
	if _, err := os.Lstat(filepath.Join(dir, name+".yml")); err == nil {
		return fmt.Sprintf("rename %s.yml to %s.yaml", name, name)
	}
	names, _ := List(dir)
	if len(names) == 0 {
		return "create it (there are no configs in " + dir + ")"
	}
	return "known configs: " + strings.Join(names, ", ")
}
