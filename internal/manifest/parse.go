package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/holdfast-backup/holdfast/internal/wal"
)

const versionKey = "PostgreSQL-Backup-Manifest-Version"

// Parse reads a backup_manifest, checks its Manifest-Checksum, and returns
// its contents. The rules are PostgreSQL's (parse_manifest.c) with the
// additions listed in the package documentation; every error matches
// ErrCorrupt and is a *ParseError naming the line.
func Parse(data []byte) (*Manifest, error) {
	p := parser{data: data}
	m, err := p.manifest()
	if err != nil {
		return nil, err
	}
	if err := p.verifyChecksum(m.Checksum); err != nil {
		return nil, err
	}
	return m, nil
}

// parser is a small JSON scanner specialised to the manifest's shape: any
// value that is not where the server would put it is an error, so it never
// needs to skip over unknown values.
type parser struct {
	data []byte
	pos  int
	// scratch holds the decoded form of a string that had escapes; it is
	// reused, so results of str are valid only until the next call.
	scratch []byte
	// slab is carved into the files' checksums: one allocation per 64 KiB
	// of digests instead of one per file.
	slab []byte
}

func (p *parser) errAt(at int, format string, args ...any) error {
	if at > len(p.data) {
		at = len(p.data)
	}
	return &ParseError{Line: 1 + bytes.Count(p.data[:at], []byte{'\n'}), Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// peek skips white space and returns the next byte, or 0 at the end.
func (p *parser) peek() byte {
	p.skipSpace()
	if p.pos >= len(p.data) {
		return 0
	}
	return p.data[p.pos]
}

// found describes what sits at p.pos, for error messages.
func (p *parser) found() string {
	if p.pos >= len(p.data) {
		return "end of manifest"
	}
	c := p.data[p.pos]
	switch {
	case c == '"':
		return "a string"
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == '-' || '0' <= c && c <= '9':
		return "a number"
	case bytes.HasPrefix(p.data[p.pos:], []byte("true")), bytes.HasPrefix(p.data[p.pos:], []byte("false")):
		return "a boolean"
	case bytes.HasPrefix(p.data[p.pos:], []byte("null")):
		return "null"
	case ' ' < c && c < utf8.RuneSelf:
		return strconv.QuoteRune(rune(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

func (p *parser) expect(c byte, what string) error {
	if p.peek() != c || p.pos >= len(p.data) {
		return p.errAt(p.pos, "expected %s, found %s", what, p.found())
	}
	p.pos++
	return nil
}

// colon reads the : after the key name.
func (p *parser) colon(name string) error {
	if p.peek() != ':' {
		return p.errAt(p.pos, "expected : after %q, found %s", name, p.found())
	}
	p.pos++
	return nil
}

// where names the value being read, for error messages. It is formatted
// only when there is an error, so the happy path does not allocate.
type where struct {
	obj   string // "file", "WAL range", or "" at the top level
	n     int    // 1-based position of the object
	field string // the field, or "field name" while reading a key
}

func (w where) String() string {
	if w.obj == "" {
		return w.field
	}
	return fmt.Sprintf("%s %d: %s", w.obj, w.n, w.field)
}

// str reads a JSON string. The result aliases p.data or p.scratch.
func (p *parser) str(what where) ([]byte, error) {
	if p.peek() != '"' {
		return nil, p.errAt(p.pos, "%s: expected a string, found %s", what, p.found())
	}
	start := p.pos
	p.pos++
	for i := p.pos; i < len(p.data); i++ {
		switch c := p.data[i]; {
		case c == '"':
			s := p.data[p.pos:i]
			if !utf8.Valid(s) {
				return nil, p.errAt(start, "%s: string is not valid UTF-8", what)
			}
			p.pos = i + 1
			return s, nil
		case c == '\\':
			return p.strEscaped(what, start)
		case c < ' ':
			return nil, p.errAt(i, "%s: control character 0x%02x must be escaped", what, c)
		}
	}
	return nil, p.errAt(start, "%s: unterminated string", what)
}

// strEscaped finishes a string that contains escapes, decoding into scratch.
func (p *parser) strEscaped(what where, start int) ([]byte, error) {
	b := p.scratch[:0]
	i := p.pos
	for i < len(p.data) {
		c := p.data[i]
		switch {
		case c == '"':
			if !utf8.Valid(b) {
				return nil, p.errAt(start, "%s: string is not valid UTF-8", what)
			}
			p.scratch = b
			p.pos = i + 1
			return b, nil
		case c < ' ':
			return nil, p.errAt(i, "%s: control character 0x%02x must be escaped", what, c)
		case c != '\\':
			b = append(b, c)
			i++
			continue
		}
		if i+1 >= len(p.data) {
			break
		}
		switch e := p.data[i+1]; e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := hex4(p.data[i+2:])
			if !ok {
				return nil, p.errAt(i, "%s: malformed \\u escape", what)
			}
			i += 4
			switch {
			case r == 0:
				return nil, p.errAt(i, "%s: \\u0000 is not allowed", what)
			case utf16.IsSurrogate(r):
				lo, ok := rune(0), false
				if r < 0xdc00 && i+7 < len(p.data) && p.data[i+2] == '\\' && p.data[i+3] == 'u' {
					lo, ok = hex4(p.data[i+4:])
				}
				r = utf16.DecodeRune(r, lo)
				if !ok || r == utf8.RuneError {
					return nil, p.errAt(i, "%s: unpaired Unicode surrogate", what)
				}
				i += 6
			}
			b = utf8.AppendRune(b, r)
		default:
			return nil, p.errAt(i, "%s: invalid escape \\%c", what, e)
		}
		i += 2
	}
	return nil, p.errAt(start, "%s: unterminated string", what)
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// uint reads a JSON number that must be a non-negative integer ≤ max.
// PostgreSQL reads these with strtou64, so fractions and exponents are
// errors, not values to round.
func (p *parser) uint(what where, max uint64) (uint64, error) {
	c := p.peek()
	if c != '-' && (c < '0' || c > '9') {
		return 0, p.errAt(p.pos, "%s: expected a number, found %s", what, p.found())
	}
	start := p.pos
	end := start
	for end < len(p.data) {
		c := p.data[end]
		if !('0' <= c && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
			break
		}
		end++
	}
	tok := p.data[start:end]
	var v uint64
	for i, c := range tok {
		if c < '0' || c > '9' {
			return 0, p.errAt(start, "%s: %s is not a non-negative integer", what, tok)
		}
		if i == 1 && tok[0] == '0' {
			return 0, p.errAt(start, "%s: malformed number %s", what, tok)
		}
		d := uint64(c - '0')
		if v > (max-d)/10 {
			return 0, p.errAt(start, "%s: %s is out of range", what, tok)
		}
		v = v*10 + d
	}
	p.pos = end
	return v, nil
}

// sum returns n bytes of the checksum slab.
func (p *parser) sum(n int) []byte {
	if cap(p.slab)-len(p.slab) < n {
		p.slab = make([]byte, 0, max(n, 64<<10))
	}
	s := p.slab[len(p.slab) : len(p.slab)+n : len(p.slab)+n]
	p.slab = p.slab[:len(p.slab)+n]
	return s
}

func (p *parser) manifest() (*Manifest, error) {
	m := new(Manifest)
	if err := p.expect('{', "the manifest's opening {"); err != nil {
		return nil, err
	}
	keyAt := p.pos
	if p.peek() != '"' {
		return nil, p.errAt(p.pos, "expected version indicator %q, found %s", versionKey, p.found())
	}
	key, err := p.str(where{field: "field name"})
	if err != nil {
		return nil, err
	}
	if string(key) != versionKey {
		return nil, p.errAt(keyAt, "expected version indicator %q, found field %q", versionKey, key)
	}
	if err := p.colon(versionKey); err != nil {
		return nil, err
	}
	valueAt := p.pos
	v, err := p.uint(where{field: versionKey}, math.MaxInt32)
	if err != nil {
		return nil, err
	}
	if v != 1 && v != 2 {
		return nil, p.errAt(valueAt, "unexpected manifest version %d", v)
	}
	m.Version = int(v)

	var sawSysID, sawFiles, sawWAL bool
	var sysIDAt int
	for {
		if p.peek() == '}' {
			return nil, p.errAt(p.pos, "missing Manifest-Checksum, which must be the last field")
		}
		if err := p.expect(',', ", or } after a top-level field"); err != nil {
			return nil, err
		}
		p.skipSpace()
		keyAt := p.pos
		key, err := p.str(where{field: "field name"})
		if err != nil {
			return nil, err
		}
		name := string(key)
		if err := p.colon(name); err != nil {
			return nil, err
		}
		dup := false
		switch name {
		case "System-Identifier":
			dup, sawSysID, sysIDAt = sawSysID, true, keyAt
			if !dup {
				m.SystemIdentifier, err = p.uint(where{field: name}, math.MaxUint64)
			}
		case "Files":
			dup, sawFiles = sawFiles, true
			if !dup {
				err = p.files(m)
			}
		case "WAL-Ranges":
			dup, sawWAL = sawWAL, true
			if !dup {
				err = p.walRanges(m, keyAt)
			}
		case "Manifest-Checksum":
			at := p.pos
			v, err := p.str(where{field: name})
			if err != nil {
				return nil, err
			}
			if len(v) != 2*sha256.Size || !isHex(v) {
				return nil, p.errAt(at, "invalid manifest checksum %q", v)
			}
			m.Checksum = string(bytes.ToLower(v))
			if p.peek() != '}' {
				return nil, p.errAt(p.pos, "expected } after Manifest-Checksum, which must be the last field, found %s", p.found())
			}
			p.pos++
			p.skipSpace()
			if p.pos != len(p.data) {
				return nil, p.errAt(p.pos, "found %s after the manifest's closing }", p.found())
			}
			switch {
			case m.Version >= 2 && !sawSysID:
				return nil, p.errAt(keyAt, "missing System-Identifier, required in version %d", m.Version)
			case m.Version == 1 && sawSysID:
				return nil, p.errAt(sysIDAt, "System-Identifier is not part of version 1")
			case !sawFiles:
				return nil, p.errAt(keyAt, "missing Files")
			case !sawWAL:
				return nil, p.errAt(keyAt, "missing WAL-Ranges")
			}
			return m, nil
		case versionKey:
			dup = true
		default:
			return nil, p.errAt(keyAt, "unrecognized top-level field %q", name)
		}
		if dup {
			return nil, p.errAt(keyAt, "duplicate top-level field %q", name)
		}
		if err != nil {
			return nil, err
		}
	}
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func (p *parser) files(m *Manifest) error {
	if err := p.expect('[', "Files: an array"); err != nil {
		return err
	}
	if p.peek() == ']' {
		p.pos++
		return nil
	}
	// One file per line: the line count bounds the file count and saves
	// regrowing both the slice and the set.
	hint := bytes.Count(p.data[p.pos:], []byte{'\n'})
	m.Files = make([]File, 0, hint)
	seen := make(map[string]struct{}, hint)
	var lastMod string
	for {
		p.skipSpace()
		at := p.pos
		f, err := p.file(len(m.Files)+1, &lastMod)
		if err != nil {
			return err
		}
		if _, ok := seen[f.Path]; ok {
			return p.errAt(at, "file %d: duplicate path %q", len(m.Files)+1, f.Path)
		}
		seen[f.Path] = struct{}{}
		m.Files = append(m.Files, f)
		switch p.peek() {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return nil
		default:
			return p.errAt(p.pos, "Files: expected , or ] after file %d, found %s", len(m.Files), p.found())
		}
	}
}

// The fields of a file object, as bits of a set.
const (
	fPath = 1 << iota
	fEncodedPath
	fSize
	fLastModified
	fAlgorithm
	fChecksum
)

// fileField returns the bit of a file object's key, 0 if unknown.
func fileField(key []byte) (int, string) {
	switch string(key) {
	case "Path":
		return fPath, "Path"
	case "Encoded-Path":
		return fEncodedPath, "Encoded-Path"
	case "Size":
		return fSize, "Size"
	case "Last-Modified":
		return fLastModified, "Last-Modified"
	case "Checksum-Algorithm":
		return fAlgorithm, "Checksum-Algorithm"
	case "Checksum":
		return fChecksum, "Checksum"
	}
	return 0, ""
}

// file reads one file object. lastMod carries the previous Last-Modified so
// that runs of equal times share one string.
func (p *parser) file(n int, lastMod *string) (File, error) {
	var f File
	at := p.pos
	if p.peek() != '{' {
		return f, p.errAt(p.pos, "file %d: expected an object, found %s", n, p.found())
	}
	p.pos++
	var (
		have            int
		size            uint64
		sizeAt, sumAt   int
		rawPath         []byte // decoded Encoded-Path
		badPath, badSum []byte // the offending text, kept for the message
		alg             string
		badAlg          []byte
		w               = where{obj: "file", n: n}
	)
	if p.peek() == '}' {
		p.pos++
	} else {
		for {
			p.skipSpace()
			keyAt := p.pos
			w.field = "field name"
			key, err := p.str(w)
			if err != nil {
				return f, err
			}
			bit, name := fileField(key)
			if bit == 0 {
				return f, p.errAt(keyAt, "file %d: unexpected file field %q", n, key)
			}
			w.field = name
			if have&bit != 0 {
				return f, p.errAt(keyAt, "file %d: duplicate field %q", n, w.field)
			}
			have |= bit
			if err := p.colon(w.field); err != nil {
				return f, err
			}
			if bit == fSize {
				sizeAt = p.pos
				if size, err = p.uint(w, math.MaxUint64); err != nil {
					return f, err
				}
			} else {
				valueAt := p.pos
				v, err := p.str(w)
				if err != nil {
					return f, err
				}
				switch bit {
				case fPath:
					f.Path = string(v)
				case fEncodedPath:
					if len(v)%2 != 0 || !isHex(v) {
						badPath = append([]byte(nil), v...)
						break
					}
					rawPath = make([]byte, len(v)/2)
					hex.Decode(rawPath, v)
				case fLastModified:
					if string(v) != *lastMod {
						*lastMod = string(v)
					}
					f.LastModified = *lastMod
				case fAlgorithm:
					if alg = canonicalBytes(v); alg == "" {
						badAlg = append([]byte(nil), v...)
					}
				case fChecksum:
					sumAt = valueAt
					if len(v)%2 != 0 || !isHex(v) {
						badSum = append([]byte(nil), v...)
						break
					}
					if len(v) > 0 {
						f.Checksum = p.sum(len(v) / 2)
						hex.Decode(f.Checksum, v)
					}
				}
			}
			if c := p.peek(); c == '}' {
				p.pos++
				break
			} else if c != ',' {
				return f, p.errAt(p.pos, "file %d: expected , or } after %q, found %s", n, w.field, p.found())
			}
			p.pos++
		}
	}

	// The checks and their order follow json_manifest_finalize_file.
	switch {
	case have&(fPath|fEncodedPath) == 0:
		return f, p.errAt(at, "file %d: missing path name", n)
	case have&fPath != 0 && have&fEncodedPath != 0:
		return f, p.errAt(at, "file %d: both path name and encoded path name", n)
	case have&fSize == 0:
		return f, p.errAt(at, "file %d: missing size", n)
	case have&fChecksum != 0 && have&fAlgorithm == 0:
		return f, p.errAt(at, "file %d: checksum without algorithm", n)
	case badPath != nil:
		return f, p.errAt(at, "file %d: could not decode file name %q", n, badPath)
	}
	if have&fEncodedPath != 0 {
		f.Path = string(rawPath)
	}
	switch {
	case f.Path == "":
		return f, p.errAt(at, "file %d: empty path name", n)
	case strings.IndexByte(f.Path, 0) >= 0:
		return f, p.errAt(at, "file %d: path name %q contains a NUL byte", n, f.Path)
	case size > math.MaxInt64:
		return f, p.errAt(sizeAt, "file %d %q: size %d is out of range", n, f.Path, size)
	case badAlg != nil:
		return f, p.errAt(at, "file %d %q: unrecognized checksum algorithm %q", n, f.Path, badAlg)
	case badSum != nil:
		return f, p.errAt(sumAt, "file %d %q: invalid checksum %q", n, f.Path, badSum)
	}
	f.Size = int64(size)
	if alg != AlgNone {
		f.Algorithm = alg
	}
	if want := digestSize(f.Algorithm); len(f.Checksum) != want {
		if have&fChecksum == 0 {
			return f, p.errAt(at, "file %d %q: %s checksum missing", n, f.Path, f.Algorithm)
		}
		return f, p.errAt(sumAt, "file %d %q: checksum has %d bytes, %s needs %d", n, f.Path, len(f.Checksum), algName(f.Algorithm), want)
	}
	return f, nil
}

// canonicalBytes is CanonicalAlgorithm without the allocation of converting
// b for the common, exact spelling; "" when b names no algorithm.
func canonicalBytes(b []byte) string {
	for _, a := range [...]string{AlgCRC32C, AlgSHA256, AlgSHA224, AlgSHA384, AlgSHA512, AlgNone} {
		if string(b) == a {
			return a
		}
	}
	a, _ := CanonicalAlgorithm(string(b))
	return a
}

func algName(a string) string {
	if a == "" {
		return AlgNone
	}
	return a
}

func (p *parser) walRanges(m *Manifest, keyAt int) error {
	if err := p.expect('[', "WAL-Ranges: an array"); err != nil {
		return err
	}
	if p.peek() == ']' {
		return p.errAt(keyAt, "WAL-Ranges is empty")
	}
	for {
		r, err := p.walRange(len(m.WALRanges) + 1)
		if err != nil {
			return err
		}
		m.WALRanges = append(m.WALRanges, r)
		switch p.peek() {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return nil
		default:
			return p.errAt(p.pos, "WAL-Ranges: expected , or ] after range %d, found %s", len(m.WALRanges), p.found())
		}
	}
}

func (p *parser) walRange(n int) (WALRange, error) {
	var r WALRange
	if p.peek() != '{' {
		return r, p.errAt(p.pos, "WAL range %d: expected an object, found %s", n, p.found())
	}
	at := p.pos
	p.pos++
	const (
		hTLI = 1 << iota
		hStart
		hEnd
	)
	var have int
	w := where{obj: "WAL range", n: n}
	if p.peek() == '}' {
		p.pos++
	} else {
		for {
			p.skipSpace()
			keyAt := p.pos
			w.field = "field name"
			key, err := p.str(w)
			if err != nil {
				return r, err
			}
			var bit int
			switch string(key) {
			case "Timeline":
				bit, w.field = hTLI, "Timeline"
			case "Start-LSN":
				bit, w.field = hStart, "Start-LSN"
			case "End-LSN":
				bit, w.field = hEnd, "End-LSN"
			default:
				return r, p.errAt(keyAt, "WAL range %d: unexpected WAL range field %q", n, key)
			}
			if have&bit != 0 {
				return r, p.errAt(keyAt, "WAL range %d: duplicate field %q", n, w.field)
			}
			have |= bit
			if err := p.colon(w.field); err != nil {
				return r, err
			}
			if bit == hTLI {
				v, err := p.uint(w, math.MaxUint32)
				if err != nil {
					return r, err
				}
				r.Timeline = uint32(v)
			} else {
				valueAt := p.pos
				v, err := p.str(w)
				if err != nil {
					return r, err
				}
				lsn, err := wal.ParseLSN(string(v))
				if err != nil {
					return r, p.errAt(valueAt, "%s: could not parse LSN %q", w, v)
				}
				if bit == hStart {
					r.Start = lsn
				} else {
					r.End = lsn
				}
			}
			if c := p.peek(); c == '}' {
				p.pos++
				break
			} else if c != ',' {
				return r, p.errAt(p.pos, "WAL range %d: expected , or } after %q, found %s", n, w.field, p.found())
			}
			p.pos++
		}
	}
	switch {
	case have&hTLI == 0:
		return r, p.errAt(at, "WAL range %d: missing timeline", n)
	case have&hStart == 0:
		return r, p.errAt(at, "WAL range %d: missing start LSN", n)
	case have&hEnd == 0:
		return r, p.errAt(at, "WAL range %d: missing end LSN", n)
	case r.Start > r.End:
		return r, p.errAt(at, "WAL range %d: start LSN %v is after end LSN %v", n, r.Start, r.End)
	}
	return r, nil
}

// verifyChecksum checks the SHA-256 of everything before the last line, as
// verify_manifest_checksum does.
func (p *parser) verifyChecksum(want string) error {
	last := bytes.LastIndexByte(p.data, '\n')
	penultimate := -1
	if last > 0 {
		penultimate = bytes.LastIndexByte(p.data[:last], '\n')
	}
	lastLine := len(p.data) - 1
	switch {
	case penultimate < 0:
		return p.errAt(lastLine, "expected at least 2 lines")
	case last != len(p.data)-1:
		return p.errAt(lastLine, "last line not newline-terminated")
	}
	got := sha256.Sum256(p.data[:penultimate+1])
	if hex.EncodeToString(got[:]) != want {
		return p.errAt(lastLine, "manifest checksum mismatch: computed %x, manifest says %s", got, want)
	}
	return nil
}
