package manifest

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrInvalid reports a value that cannot be written as a manifest PostgreSQL
// would accept (a bad version, an empty or duplicate path, a checksum of the
// wrong length, no WAL range).
var ErrInvalid = errors.New("manifest: invalid value")

// Encode writes m in the server's exact layout with a correct
// Manifest-Checksum; m.Checksum is ignored. Paths must be unique.
func Encode(w io.Writer, m *Manifest) error {
	seen := make(map[string]struct{}, len(m.Files))
	for i := range m.Files {
		if _, ok := seen[m.Files[i].Path]; ok {
			return fmt.Errorf("%w: duplicate path %q", ErrInvalid, m.Files[i].Path)
		}
		seen[m.Files[i].Path] = struct{}{}
	}
	mw := NewWriter(w, m.Version, m.SystemIdentifier)
	for i := range m.Files {
		if err := mw.WriteFile(&m.Files[i]); err != nil {
			return err
		}
	}
	return mw.Finish(m.WALRanges)
}

// Writer writes a manifest one file at a time, so a data directory of any
// size can be described in constant memory. It writes exactly the bytes the
// server writes (see the package documentation) and hashes them on the way.
// Errors are sticky: after one, every call returns it.
//
// Writer does not look for duplicate paths, which would cost memory in
// proportion to the file count; callers walking a directory have none.
type Writer struct {
	w     *bufio.Writer // 64 KiB
	sha   hash.Hash
	line  []byte // one file line, reused
	files int
	err   error
	sum   string
}

// NewWriter starts a manifest of the given version (1 or 2) on w. The system
// identifier is written for version 2 and must be zero for version 1.
func NewWriter(w io.Writer, version int, systemIdentifier uint64) *Writer {
	mw := &Writer{w: bufio.NewWriterSize(w, 64<<10), sha: sha256.New()}
	switch {
	case version == 1 && systemIdentifier != 0:
		mw.err = fmt.Errorf("%w: version 1 has no System-Identifier", ErrInvalid)
	case version == 1:
		mw.emit([]byte("{ \"" + versionKey + "\": 1,\n\"Files\": ["))
	case version == 2:
		b := []byte("{ \"" + versionKey + "\": 2,\n\"System-Identifier\": ")
		b = strconv.AppendUint(b, systemIdentifier, 10)
		mw.emit(append(b, ",\n\"Files\": ["...))
	default:
		mw.err = fmt.Errorf("%w: unsupported manifest version %d", ErrInvalid, version)
	}
	return mw
}

// emit writes b to the output and to the manifest checksum.
func (mw *Writer) emit(b []byte) {
	if mw.err != nil {
		return
	}
	mw.sha.Write(b)
	if _, err := mw.w.Write(b); err != nil {
		mw.err = fmt.Errorf("write manifest: %w", err)
	}
}

// WriteFile adds one file. Its Algorithm may be given in any case; "" or
// NONE means no checksum.
func (mw *Writer) WriteFile(f *File) error {
	if mw.err != nil {
		return mw.err
	}
	alg, err := checkFile(f)
	if err != nil {
		mw.err = err
		return err
	}
	b := mw.line[:0]
	if mw.files == 0 {
		b = append(b, '\n')
	} else {
		b = append(b, ",\n"...)
	}
	mw.files++
	if utf8.ValidString(f.Path) {
		b = append(b, `{ "Path": `...)
		b = appendJSONString(b, f.Path)
		b = append(b, ", "...)
	} else {
		b = append(b, `{ "Encoded-Path": "`...)
		b = hex.AppendEncode(b, []byte(f.Path))
		b = append(b, `", `...)
	}
	b = append(b, `"Size": `...)
	b = strconv.AppendInt(b, f.Size, 10)
	b = append(b, `, "Last-Modified": `...)
	b = appendJSONString(b, f.LastModified)
	if alg != AlgNone {
		b = append(b, `, "Checksum-Algorithm": "`...)
		b = append(b, alg...)
		b = append(b, `", "Checksum": "`...)
		b = hex.AppendEncode(b, f.Checksum)
		b = append(b, '"')
	}
	b = append(b, " }"...)
	mw.line = b
	mw.emit(b)
	return mw.err
}

// checkFile refuses what Parse would refuse, and returns the canonical
// algorithm name.
func checkFile(f *File) (string, error) {
	switch {
	case f.Path == "":
		return "", fmt.Errorf("%w: empty path", ErrInvalid)
	case strings.IndexByte(f.Path, 0) >= 0:
		return "", fmt.Errorf("%w: path %q contains a NUL byte", ErrInvalid, f.Path)
	case f.Size < 0:
		return "", fmt.Errorf("%w: %q: negative size %d", ErrInvalid, f.Path, f.Size)
	case !utf8.ValidString(f.LastModified) || strings.IndexByte(f.LastModified, 0) >= 0:
		return "", fmt.Errorf("%w: %q: Last-Modified %q is not NUL-free UTF-8", ErrInvalid, f.Path, f.LastModified)
	}
	alg := AlgNone
	if f.Algorithm != "" {
		a, err := CanonicalAlgorithm(f.Algorithm)
		if err != nil {
			return "", fmt.Errorf("%w: %q: %w", ErrInvalid, f.Path, err)
		}
		alg = a
	}
	if want := digestSize(alg); len(f.Checksum) != want {
		return "", fmt.Errorf("%w: %q: checksum has %d bytes, %s needs %d", ErrInvalid, f.Path, len(f.Checksum), alg, want)
	}
	return alg, nil
}

// Finish writes the WAL ranges and the Manifest-Checksum and flushes. It
// does not close the underlying writer.
func (mw *Writer) Finish(ranges []WALRange) error {
	if mw.err != nil {
		return mw.err
	}
	if len(ranges) == 0 {
		mw.err = fmt.Errorf("%w: no WAL range", ErrInvalid)
		return mw.err
	}
	b := append(mw.line[:0], "\n],\n\"WAL-Ranges\": [\n"...)
	for i, r := range ranges {
		if r.Start > r.End {
			mw.err = fmt.Errorf("%w: WAL range %d: start %v after end %v", ErrInvalid, i+1, r.Start, r.End)
			return mw.err
		}
		if i > 0 {
			b = append(b, ",\n"...)
		}
		b = append(b, `{ "Timeline": `...)
		b = strconv.AppendUint(b, uint64(r.Timeline), 10)
		b = append(b, `, "Start-LSN": "`...)
		b = append(b, r.Start.String()...)
		b = append(b, `", "End-LSN": "`...)
		b = append(b, r.End.String()...)
		b = append(b, `" }`...)
	}
	b = append(b, "\n],\n"...)
	mw.emit(b)
	mw.sum = hex.EncodeToString(mw.sha.Sum(nil))
	b = append(b[:0], `"Manifest-Checksum": "`...)
	b = append(b, mw.sum...)
	b = append(b, "\"}\n"...)
	if _, err := mw.w.Write(b); err != nil && mw.err == nil {
		mw.err = fmt.Errorf("write manifest: %w", err)
	}
	if err := mw.w.Flush(); err != nil && mw.err == nil {
		mw.err = fmt.Errorf("write manifest: %w", err)
	}
	if mw.err == nil {
		// A second Finish must not append a second tail.
		mw.err = errFinished
		return nil
	}
	return mw.err
}

var errFinished = fmt.Errorf("%w: manifest already finished", ErrInvalid)

// Checksum returns the Manifest-Checksum written by Finish, or "" before.
func (mw *Writer) Checksum() string { return mw.sum }

// appendJSONString quotes s as PostgreSQL's escape_json does: the two-letter
// escapes for \b \f \n \r \t " and \, \u00xx (lowercase) for the other
// control bytes, every other byte as is.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= ' ' && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '\b':
			b = append(b, `\b`...)
		case '\f':
			b = append(b, `\f`...)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		case '\t':
			b = append(b, `\t`...)
		case '"':
			b = append(b, `\"`...)
		case '\\':
			b = append(b, `\\`...)
		default:
			const digits = "0123456789abcdef"
			b = append(b, '\\', 'u', '0', '0', digits[c>>4], digits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
