// Package amanda speaks Amanda's amandad transport (auth "bsdtcp"), on
// both sides: a Server that replaces amandad for Holdfast's services, and
// a Dialer that talks to the real amandad or to a Holdfast server. The
// facts come from spec/amanda-protocol.md, captured from Amanda 3.5.1.
//
// It is built in three layers:
//
//   - a pure codec: frames (ReadFrame, AppendFrame), packets
//     (ParsePacket, AppendPacket), REQ and REP bodies (Request, Reply,
//     Options), Amanda's quoting (Quote, Unquote) and feature strings
//     (Features). Every parser is fuzzed.
//   - the per-connection state machines: the server's (REQ → ACK → REP →
//     ACK → stream, with REP retransmission and duplicate REQs) and the
//     client's (REQ resent until ACKed, the REP's ACK sent before any
//     stream data), over a connection multiplexer that any net.Conn
//     (including net.Pipe) can carry.
//   - the Server: accept loop, peer identification against declared
//     Hosts, limits, deadlines and graceful Shutdown.
//
// # Frames
//
// Every byte of a connection belongs to a frame:
//
//	 0               4               8
//	+---------------+---------------+-------------------------+
//	| length (BE32) | handle (BE32) | payload (length bytes)  |
//	+---------------+---------------+-------------------------+
//
// A zero-length frame ends its handle; there is no other close signal.
// Readers refuse lengths above a limit (Amanda's is 4 MiB, MaxFrameSize;
// the Server's default is 64 KiB, ample for every real client) and the
// connection is dropped, since it cannot be resynchronised.
//
// # Packets
//
// A packet is the payload of one frame on the client's packet handle
// (amservice uses 1):
//
//	+------+----------------------------+------+
//	| type | body (text, no NUL)        | 0x00 |
//	+------+----------------------------+------+
//	  00 REQ   01 REP   02 PREP   03 ACK   04 NAK
//
// e.g. the ACK on handle 1 is 00 00 00 02 | 00 00 00 01 | 03 00.
//
// A session:
//
//	client                                  server
//	[h=1] REQ "SECURITY USER backup\n
//	           SERVICE amdumpd\n
//	           OPTIONS features=…;hostname=…;\n"
//	                                        [h=1] ACK
//	                                        [h=1] REP "CONNECT CTL 499999\n\n"
//	[h=1] ACK
//	                                        [h=1] <len 0>
//	[h=499999] stream data  <-------------> [h=499999] stream data
//	[h=499999] <len 0>      <-------------> [h=499999] <len 0>
//
// Refusals are a NAK ("ERROR <text>\n") followed by a zero-length frame
// on the packet handle, with amandad's texts where amandad has one.
//
// # Differences from amandad
//
// Peers are identified by declared address prefixes first, client
// certificate names over TLS, and forward-confirmed reverse DNS (exact
// names) only for hosts declared without addresses; the SECURITY USER
// must be one of the host's Users. A connection carries one request;
// frames on unknown handles are a protocol error instead of new requests;
// stream data sent before the REP's ACK is kept instead of killing the
// stream. The end of the client's stream is a half-close: the service may
// still answer.
package amanda
