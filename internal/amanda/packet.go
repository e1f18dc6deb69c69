package amanda

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// PacketType is the first byte of a packet on a stream transport.
type PacketType uint8

// Packet types, with the codes Amanda uses.
const (
	REQ  PacketType = 0 // request, client to server
	REP  PacketType = 1 // reply, server to client
	PREP PacketType = 2 // partial reply (sendsize only; never for amdumpd)
	ACK  PacketType = 3 // acknowledgement, both ways
	NAK  PacketType = 4 // refusal, server to client
)

func (t PacketType) String() string {
	switch t {
	case REQ:
		return "REQ"
	case REP:
		return "REP"
	case PREP:
		return "PREP"
	case ACK:
		return "ACK"
	case NAK:
		return "NAK"
	}
	return fmt.Sprintf("PacketType(%d)", uint8(t))
}

// Errors of the packet codec.
var (
	ErrBadPacket = errors.New("amanda: malformed packet")
	ErrNULInBody = errors.New("amanda: packet body contains a NUL byte")
)

// Packet is one message of the packet protocol: REQ, REP, ACK or NAK (PREP
// is decoded but never produced). Body is text; it cannot hold a NUL byte.
type Packet struct {
	Type PacketType
	Body string
}

// AppendPacket appends the frame payload of p to dst: the type byte, the
// body and a terminating NUL.
func AppendPacket(dst []byte, p Packet) ([]byte, error) {
	if p.Type > NAK {
		return dst, fmt.Errorf("encode packet: %w: type %d", ErrBadPacket, p.Type)
	}
	if strings.IndexByte(p.Body, 0) >= 0 {
		return dst, fmt.Errorf("encode %s: %w", p.Type, ErrNULInBody)
	}
	dst = append(dst, byte(p.Type))
	dst = append(dst, p.Body...)
	return append(dst, 0), nil
}

// ParsePacket decodes a frame payload. As in Amanda, byte 0 is the type and
// the body runs to the first NUL; a missing NUL is tolerated (amandad sends
// one such raw NAK when the peer's name does not resolve).
func ParsePacket(payload []byte) (Packet, error) {
	if len(payload) == 0 {
		return Packet{}, fmt.Errorf("%w: empty payload", ErrBadPacket)
	}
	t := PacketType(payload[0])
	if t > NAK {
		return Packet{}, fmt.Errorf("%w: unknown type byte 0x%02x", ErrBadPacket, payload[0])
	}
	body := payload[1:]
	if i := bytes.IndexByte(body, 0); i >= 0 {
		body = body[:i]
	}
	return Packet{Type: t, Body: string(body)}, nil
}
