// Package manifest reads and writes PostgreSQL's backup_manifest, versions 1
// (servers 13–16) and 2 (17, 18), and computes the per-file checksums it
// names.
//
// It owns the manifest's grammar and byte layout, the Manifest-Checksum, and
// the checksum algorithms (NONE, CRC32C, SHA224, SHA256, SHA384, SHA512). It
// knows nothing of archives, storage or connections: callers hand it the
// manifest bytes exactly as the server sent them and get typed values back,
// or hand it values and get the bytes pg_verifybackup and pg_combinebackup
// expect.
//
// # Layout
//
// The server writes, and [Writer] reproduces, one JSON object whose lines are
// fixed ("⏎" is a newline byte, "…" elided text):
//
//	{ "PostgreSQL-Backup-Manifest-Version": 2,⏎          first key, 1 or 2
//	"System-Identifier": 7710952871990011363,⏎           version 2 only, bare uint64
//	"Files": [⏎
//	{ "Path": "backup_label", "Size": 227, "Last-Modified": "2024-05-01 10:00:00 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "1b2f0a9c" },⏎
//	{ "Encoded-Path": "6261642fff", "Size": 0, "Last-Modified": "…" },⏎
//	…
//	{ … last file … }⏎
//	],⏎
//	"WAL-Ranges": [⏎
//	{ "Timeline": 2, "Start-LSN": "0/5000000", "End-LSN": "0/5000100" },⏎
//	{ "Timeline": 1, "Start-LSN": "0/4000028", "End-LSN": "0/5000000" }⏎
//	],⏎
//	"Manifest-Checksum": "<64 lowercase hex>"}⏎
//	└──────────── SHA-256 covers every byte above this last line ────────────┘
//
// A file object is one line: "Path" (JSON-escaped: \" \\ \b \f \n \r \t, other
// control bytes as \u00xx, everything else verbatim) or, when the name is not
// valid UTF-8, "Encoded-Path" (hex of the raw bytes); "Size" in bytes;
// "Last-Modified" in UTC; and, unless checksums were turned off,
// "Checksum-Algorithm" and "Checksum" (lowercase hex of the digest; for
// CRC32C the four bytes of the CRC in little-endian order).
//
// # Reading
//
// [Parse] is strict in the way PostgreSQL's own parser is (the version key
// first, known keys only, Path or Encoded-Path but not both, Size required,
// no Checksum without Checksum-Algorithm, all three WAL range keys,
// Manifest-Checksum last and correct) and stricter where the server never
// writes anything else:
//
//   - values must have the JSON type the server writes (Size 12, not "12"),
//     and numbers must be plain non-negative integers;
//   - keys may not repeat within an object, nor paths within the manifest;
//   - Files and a non-empty WAL-Ranges must be present, version 2 needs
//     System-Identifier and version 1 may not have it;
//   - a path may not be empty or contain NUL, a WAL range may not end
//     before it starts;
//   - a checksum must have its algorithm's length (PostgreSQL leaves that
//     to pg_verifybackup).
//
// Every failure is a [*ParseError] that matches [ErrCorrupt] and names the
// line.
package manifest
