// Package wal holds the small vocabulary of PostgreSQL's write-ahead log that
// the rest of Holdfast shares: log sequence numbers, timelines and segment
// file names. It knows nothing of connections or storage.
package wal
