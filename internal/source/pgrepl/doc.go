// Package pgrepl is Holdfast's PostgreSQL replication client: it connects
// as a physical walsender (replication=true) to servers 15 to 18 and runs
// IDENTIFY_SYSTEM, SHOW, TIMELINE_HISTORY, CREATE_REPLICATION_SLOT,
// UPLOAD_MANIFEST, BASE_BACKUP and START_REPLICATION. Every difference
// between PostgreSQL versions that the backup engine could notice lives
// here. It is built on pgx's pgconn and pgproto3 only; the facts it relies
// on are in spec/postgres-basebackup.md (§1–5, §10, §13–15).
//
// # Layers
//
// As every protocol package in Holdfast, it has three layers:
//
//   - Pure codecs, fuzzed: DecodeCopyData for the BASE_BACKUP stream,
//     DecodeWALMessage and StandbyStatus for the WAL stream, the
//     BaseBackupOptions.Command builder, and the pg_wal.tar header writer.
//   - Session state machines that know nothing of sockets: the BASE_BACKUP
//     response (result sets, COPY, archive boundaries, notices, errors) and
//     the START_REPLICATION exchange. Tests feed them message by message.
//   - The connection layer (Conn): context, deadlines, cancellation, status
//     timers, and turning errors into *Error values for people. It reads the
//     socket through its own buffer (streamReader); during BASE_BACKUP over
//     TCP it batches reads with SO_RCVLOWAT, so the kernel wakes it per
//     megabyte instead of per segment, with a 2 ms bound on any wait.
//
// # BASE_BACKUP CopyData payloads
//
// After CopyOutResponse, every CopyData payload starts with a kind byte:
//
//	'n' archive-name NUL tablespace-location NUL   a new archive begins
//	'd' bytes...                                   archive bytes; manifest bytes after 'm'
//	'p' Int64 (big-endian)                         bytes done, whole backup, uncompressed
//	'm'                                            the manifest follows
//
// An archive ends at the next 'n', at 'm' or at CopyDone. Archives come
// user tablespaces first, base.tar last. The Sink sees BeginArchive,
// ArchiveData..., EndArchive for each, then ManifestData....
//
// # START_REPLICATION CopyData payloads
//
//	server 'w'  Int64 WAL start | Int64 server WAL end | Int64 send time | WAL bytes
//	server 'k'  Int64 server WAL end | Int64 send time | Byte1 reply requested
//	client 'r'  Int64 write | Int64 flush | Int64 apply | Int64 client time | Byte1 reply requested
//
// Times are microseconds since 2000-01-01 UTC (PGTime).
//
// # Taking a backup with streamed WAL
//
// What pg_basebackup -X stream does, in the order that is safe:
//
//	main, _ := pgrepl.Connect(ctx, conninfo)
//	sys, _ := main.IdentifySystem(ctx)
//	walc, _ := pgrepl.Connect(ctx, conninfo)
//	slot, _ := walc.CreateTemporarySlot(ctx) // before BASE_BACKUP: retains the WAL from its start
//	// in a goroutine, once Sink.Start has reported the start position:
//	walc.StreamWAL(ctx, pgrepl.StreamOptions{Start: st.LSN, Timeline: st.Timeline, Slot: slot, SystemID: sys.SystemID}, walTar, stopAt)
//	res, err := main.BaseBackup(ctx, opts, sink) // opts.WaitForArchive false
//	stopAt <- res.End                           // the streamer ends its archive and returns
//
// pg_wal.tar is then byte-compatible with pg_basebackup's (-Ft -X stream):
// members named by segment, mode 0600, full segment size, an
// archive_status/<segment>.done member after every segment received whole,
// the last (partial) segment zero-padded without one, and two zero blocks.
//
// # Errors
//
// Every failure is an *Error whose text is one line saying what was
// attempted on which server, why it failed and what to do. It wraps a
// classification sentinel (ErrAuth, ErrNoReplication, ErrPrivilege,
// ErrWALLevel, ErrChecksumFailure, ...) for errors.Is, and the
// *pgconn.PgError or network error for errors.As. Passwords never appear in
// error text. The server's messages are matched on SQLSTATE and, where a
// SQLSTATE covers several causes, on message text, here and nowhere else;
// lc_messages other than English defeats the latter (the classification
// then falls back to the bare server message).
//
// A Conn runs one command at a time. A cancelled context interrupts the
// socket at once; the connection is then closed, because the server may
// still be sending.
package pgrepl
