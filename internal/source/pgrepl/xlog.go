package pgrepl

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/holdfast-backup/holdfast/internal/wal"
)

// Kinds of START_REPLICATION CopyData payloads (spec §2).
const (
	KindXLogData      Kind = 'w' // server: WAL bytes
	KindKeepalive     Kind = 'k' // server: primary keepalive
	KindStandbyStatus Kind = 'r' // client: standby status update
)

// Sizes of the fixed parts.
const (
	xlogDataHeaderLen = 1 + 8 + 8 + 8
	keepaliveLen      = 1 + 8 + 8 + 1
	standbyStatusLen  = 1 + 8 + 8 + 8 + 8 + 1
)

// WALMessage is a decoded server message of the WAL stream: XLogData ('w')
// or a primary keepalive ('k').
type WALMessage struct {
	Kind Kind
	// WALStart is the WAL position of Data ('w' only).
	WALStart wal.LSN
	// WALEnd is the end of WAL on the server.
	WALEnd wal.LSN
	// SendTime is the server clock in microseconds since 2000-01-01 UTC.
	SendTime int64
	// ReplyRequested asks for a status update at once ('k' only).
	ReplyRequested bool
	// Data is the WAL ('w' only); it aliases the decoded payload.
	Data []byte
}

// DecodeWALMessage decodes a CopyData payload sent by the server after
// START_REPLICATION. Data aliases payload.
func DecodeWALMessage(payload []byte) (WALMessage, error) {
	if len(payload) == 0 {
		return WALMessage{}, fmt.Errorf("%w: empty CopyData", errMalformed)
	}
	m := WALMessage{Kind: Kind(payload[0])}
	switch m.Kind {
	case KindXLogData:
		if len(payload) < xlogDataHeaderLen {
			return WALMessage{}, fmt.Errorf("%w: XLogData of %d bytes, header alone is %d", errMalformed, len(payload), xlogDataHeaderLen)
		}
		m.WALStart = wal.LSN(binary.BigEndian.Uint64(payload[1:]))
		m.WALEnd = wal.LSN(binary.BigEndian.Uint64(payload[9:]))
		m.SendTime = int64(binary.BigEndian.Uint64(payload[17:]))
		m.Data = payload[xlogDataHeaderLen:]
		if uint64(m.WALStart)+uint64(len(m.Data)) < uint64(m.WALStart) {
			return WALMessage{}, fmt.Errorf("%w: XLogData at %s runs past the end of the WAL address space", errMalformed, m.WALStart)
		}
	case KindKeepalive:
		if len(payload) != keepaliveLen {
			return WALMessage{}, fmt.Errorf("%w: keepalive of %d bytes, want %d", errMalformed, len(payload), keepaliveLen)
		}
		m.WALEnd = wal.LSN(binary.BigEndian.Uint64(payload[1:]))
		m.SendTime = int64(binary.BigEndian.Uint64(payload[9:]))
		m.ReplyRequested = payload[17] != 0
	default:
		return WALMessage{}, fmt.Errorf("%w: unknown WAL stream message kind 0x%02x", errMalformed, payload[0])
	}
	return m, nil
}

// AppendEncode appends the payload encoding of m to dst (for tests and fake
// servers).
func (m WALMessage) AppendEncode(dst []byte) []byte {
	dst = append(dst, byte(m.Kind))
	switch m.Kind {
	case KindXLogData:
		dst = binary.BigEndian.AppendUint64(dst, uint64(m.WALStart))
		dst = binary.BigEndian.AppendUint64(dst, uint64(m.WALEnd))
		dst = binary.BigEndian.AppendUint64(dst, uint64(m.SendTime))
		dst = append(dst, m.Data...)
	case KindKeepalive:
		dst = binary.BigEndian.AppendUint64(dst, uint64(m.WALEnd))
		dst = binary.BigEndian.AppendUint64(dst, uint64(m.SendTime))
		dst = append(dst, boolByte(m.ReplyRequested))
	}
	return dst
}

// StandbyStatus is the client's status update ('r'). Positions are "last
// byte + 1"; zero means invalid (not reported).
type StandbyStatus struct {
	Write, Flush, Apply wal.LSN
	ClientTime          int64 // microseconds since 2000-01-01 UTC
	ReplyRequested      bool
}

// AppendEncode appends the 34-byte payload of s to dst.
func (s StandbyStatus) AppendEncode(dst []byte) []byte {
	dst = append(dst, byte(KindStandbyStatus))
	dst = binary.BigEndian.AppendUint64(dst, uint64(s.Write))
	dst = binary.BigEndian.AppendUint64(dst, uint64(s.Flush))
	dst = binary.BigEndian.AppendUint64(dst, uint64(s.Apply))
	dst = binary.BigEndian.AppendUint64(dst, uint64(s.ClientTime))
	return append(dst, boolByte(s.ReplyRequested))
}

// DecodeStandbyStatus decodes an 'r' payload (for tests and fake servers).
func DecodeStandbyStatus(p []byte) (StandbyStatus, error) {
	if len(p) != standbyStatusLen || Kind(p[0]) != KindStandbyStatus {
		return StandbyStatus{}, fmt.Errorf("%w: not a standby status update (%d bytes)", errMalformed, len(p))
	}
	return StandbyStatus{
		Write:          wal.LSN(binary.BigEndian.Uint64(p[1:])),
		Flush:          wal.LSN(binary.BigEndian.Uint64(p[9:])),
		Apply:          wal.LSN(binary.BigEndian.Uint64(p[17:])),
		ClientTime:     int64(binary.BigEndian.Uint64(p[25:])),
		ReplyRequested: p[33] != 0,
	}, nil
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// pgEpoch is PostgreSQL's timestamp origin.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// PGTime converts t to microseconds since 2000-01-01 UTC, the clock of the
// replication protocol.
func PGTime(t time.Time) int64 {
	return t.Sub(pgEpoch).Microseconds()
}
