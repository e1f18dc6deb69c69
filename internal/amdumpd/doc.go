// Package amdumpd is Amanda's client-initiated dump service, amdumpd, for
// Holdfast: the command codec, the session state machine, the Service
// that plugs into an amanda.Server, and a Client for Holdfast's own
// "holdfast client" command. It talks to the rest of Holdfast only
// through Backend and Config, which it declares.
//
// # The CTL stream
//
// After the amandad transport's handshake (package amanda), client and
// server exchange LF-terminated lines on the CTL stream; frame
// boundaries mean nothing. Commands run one at a time, in order:
//
//	client                     server
//	CONFIG amtest              (nothing when accepted)
//	FEATURES <hex>             FEATURES ffffffff9efefbfffffffffffffff3fffbf71f
//	LIST                       <quoted disk>... ENDLIST
//	DISK <quoted disk>         DISK <disk> added
//	CHECK                      CHECKING, one line per finding, ENDCHECK   | BUSY Amanda is busy, retry later
//	DUMP                       DUMPING, FAILED/DONE lines, ENDDUMP        | BUSY Amanda is busy, retry later
//	END  (or a digits line)    (server ends the stream)
//	anything else              invalid command '<line>'
//
// The replies are byte for byte those of Amanda 3.5.1 (see the Reply*
// constants and spec/amanda-protocol.md §5), with these deliberate
// differences:
//
//   - CONFIG names must match [A-Za-z0-9][A-Za-z0-9._-]*; any other name
//     gets "ERROR configuration errors; aborting connection" (Amanda
//     loads "../../x" as a path).
//   - BUSY means a dump of the configuration runs now, for CHECK and for
//     DUMP (3.5.1 answers BUSY to CHECK forever after the first amdump,
//     and never to DUMP).
//   - A DISK that names no disk of the host gets one line, "ERROR unknown
//     disk <quoted>" (Amanda answers nothing and a waiting client hangs).
//     A disk name with a line break is echoed quoted.
//   - A failed disk is never silent: "FAILED <quoted disk> <reason>"
//     between DUMPING and ENDDUMP. amdump_client prints such lines as it
//     prints amdump's own output. Clients that announce FeatureDumpResults
//     also get "DONE <quoted disk> <level> <quoted backup id>" per disk.
//   - The end of the client's stream is a half-close: a running command
//     finishes (its replies are still sent) and the session ends.
//   - Limits Amanda lacks: a command line of at most 4 KiB and an idle
//     timeout between commands.
package amdumpd
