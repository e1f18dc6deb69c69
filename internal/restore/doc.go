// Package restore writes a runnable data directory from a backup: the base
// archive into the target, each tablespace archive into its original or
// mapped directory with a pg_tblspc symlink to it, the streamed WAL into
// pg_wal, and the backup's manifest beside the files so pg_verifybackup can
// check the result.
//
// An incremental backup is restored by rebuilding every INCREMENTAL.* file
// from the chain, newest block wins, as pg_combinebackup does, reading the
// blocks it needs from the stored archives through their indexes; nothing
// is extracted to disk first.
//
// Path safety: member names are checked before anything is created; the
// only symlinks created are pg_tblspc/<oid>; files are created with
// O_EXCL|O_NOFOLLOW, so nothing is ever written outside the target and the
// tablespace directories, whatever an archive says.
package restore
