// Package backup runs one backup of one disk: it chooses the level, drives
// the replication client (BASE_BACKUP on one connection, WAL streaming on a
// second), pipes every archive through the archive writer into the
// repository, checks every file against the server's manifest on the way in,
// and commits the backup by writing backup.json last. A backup that fails at
// any point leaves nothing committed and never touches earlier backups.
package backup
