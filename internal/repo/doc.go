// Package repo is the repository format: where a backup's objects live, the
// backup.json metadata record that commits a backup, and the catalog of
// committed backups. It stores through a blob.Store and knows nothing of
// PostgreSQL connections.
//
// Layout (keys relative to the store's root):
//
//	holdfast-repo.json                          {"format":"holdfast-repository","version":1,...}
//	<config>/<host>/<disk-key>/<backup-id>/
//	    base.tar.zst | base.tar                 data directory archive
//	    <spcoid>.tar.zst                        one per user tablespace
//	    pg_wal.tar.zst                          WAL streamed during the backup
//	    <archive>.idx                           random-access index of each archive
//	    backup_manifest                         the server's manifest, byte for byte
//	    backup.json                             written last, with a create-if-absent: the commit
//
// A backup exists if and only if its backup.json exists. Objects of a
// directory without backup.json are leftovers of a failed or running backup.
package repo
