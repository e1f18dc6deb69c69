// Package pgtest starts throwaway PostgreSQL clusters (15, 16, 17 and 18) for integration
// tests, and compares databases for restore tests.
//
// Start runs initdb and a server with its own port, a socket directory under /tmp, the
// settings a physical backup needs (wal_level=replica, wal senders, replication slots,
// summarize_wal on 17+), pg_hba lines for replication and a role "backup" with LOGIN
// REPLICATION. StartOnDataDir starts a server on a restored data directory: that is how a
// restore test proves the restore. Fingerprint digests every user table of every database, so
// a test can compare a source with its copy.
//
// PostgreSQL refuses to run as root. When the tests run as root, every PostgreSQL program runs
// as the OS user "postgres" (runuser -u postgres --, with an argument list: never a shell
// string), and pgtest hands it the directories it needs.
//
// Every cluster is torn down by t.Cleanup, even when the test fails or panics: the server is
// stopped immediately (SIGQUIT, like pg_ctl stop -m immediate) and its directory removed; a
// failed test first gets the tail of the server log. The server also receives SIGTERM if the
// test binary dies without cleaning up (a -timeout panic), so no postmaster outlives it.
//
// Binaries come from the cache that scripts/setup-testenv.sh fills (see package envtest):
// servers from pg/<major>/bin, the 17/18 client tools from pg-tools/<major>/bin. Require and
// Tools skip a test when they are missing, and fail it when CI=true.
package pgtest
