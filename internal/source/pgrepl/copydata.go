package pgrepl

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Kind is the first byte of a BASE_BACKUP CopyData payload.
type Kind byte

// BASE_BACKUP CopyData kinds (spec §5, item 9).
const (
	KindNewArchive Kind = 'n' // String archive name, String tablespace location
	KindData       Kind = 'd' // archive bytes, or manifest bytes after 'm'
	KindProgress   Kind = 'p' // Int64 bytes done, cumulative
	KindManifest   Kind = 'm' // manifest follows; no payload
)

// CopyMessage is one decoded BASE_BACKUP CopyData payload.
type CopyMessage struct {
	Kind Kind
	// Name and Location of a new archive ('n'). Location is "" for the
	// data directory.
	Name, Location string
	// Data of a 'd' message. It aliases the decoded payload.
	Data []byte
	// Progress of a 'p' message.
	Progress int64
}

// errMalformed is wrapped by DecodeCopyData and DecodeWALMessage errors.
var errMalformed = errors.New("malformed message")

// DecodeCopyData decodes a CopyData payload of the BASE_BACKUP stream. The
// returned Data aliases payload.
func DecodeCopyData(payload []byte) (CopyMessage, error) {
	if len(payload) == 0 {
		return CopyMessage{}, fmt.Errorf("%w: empty CopyData", errMalformed)
	}
	m := CopyMessage{Kind: Kind(payload[0])}
	body := payload[1:]
	switch m.Kind {
	case KindNewArchive:
		name, rest, ok := cutCString(body)
		if !ok {
			return CopyMessage{}, fmt.Errorf("%w: 'n' without archive name", errMalformed)
		}
		loc, rest, ok := cutCString(rest)
		if !ok {
			return CopyMessage{}, fmt.Errorf("%w: 'n' without tablespace location", errMalformed)
		}
		if len(rest) != 0 {
			return CopyMessage{}, fmt.Errorf("%w: 'n' has %d trailing bytes", errMalformed, len(rest))
		}
		m.Name, m.Location = string(name), string(loc)
	case KindData:
		m.Data = body
	case KindProgress:
		if len(body) != 8 {
			return CopyMessage{}, fmt.Errorf("%w: 'p' body is %d bytes, want 8", errMalformed, len(body))
		}
		m.Progress = int64(binary.BigEndian.Uint64(body))
		if m.Progress < 0 {
			return CopyMessage{}, fmt.Errorf("%w: negative progress %d", errMalformed, m.Progress)
		}
	case KindManifest:
		if len(body) != 0 {
			return CopyMessage{}, fmt.Errorf("%w: 'm' has %d payload bytes", errMalformed, len(body))
		}
	default:
		return CopyMessage{}, fmt.Errorf("%w: unknown CopyData kind 0x%02x", errMalformed, payload[0])
	}
	return m, nil
}

// AppendEncode appends the payload encoding of m to dst. Names must not
// contain NUL bytes.
func (m CopyMessage) AppendEncode(dst []byte) []byte {
	dst = append(dst, byte(m.Kind))
	switch m.Kind {
	case KindNewArchive:
		dst = append(dst, m.Name...)
		dst = append(dst, 0)
		dst = append(dst, m.Location...)
		dst = append(dst, 0)
	case KindData:
		dst = append(dst, m.Data...)
	case KindProgress:
		dst = binary.BigEndian.AppendUint64(dst, uint64(m.Progress))
	}
	return dst
}

func cutCString(b []byte) (s, rest []byte, ok bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return nil, nil, false
	}
	return b[:i], b[i+1:], true
}
