// Package local is the blob store in a local directory: the repository's
// default home.
//
// A key is a path under the root ("cfg/host/disk/id/base.tar.zst"); its
// directories are created on demand and removed when Delete leaves them
// empty. Keys therefore form a tree: a key cannot also be a directory of
// other keys ("a/b" and "a/b/c" cannot both exist), which the repository's
// layout never needs.
//
// Durability, once per object and never per write:
//
//	Create      open  dir/.tmp-<random>  (O_CREAT|O_EXCL, 0640)
//	Write       through a 1 MiB bufio.Writer (the upload's only buffer)
//	Commit      flush, fsync(file), renameat(.tmp-… → name),
//	            fsync(dir) and each ancestor up to the root
//	Abort       unlink the temporary file
//	PutIfAbsent write+fsync a temporary file, linkat(2) it to the name
//	            (EEXIST → blob.ErrExists, atomically), unlink the
//	            temporary name, fsync(dir) and ancestors
//
// A failed Write (ENOSPC, EIO) removes the temporary file at once and makes
// the upload fail; errors wrap the key and the system error, so callers
// can test errors.Is(err, syscall.ENOSPC).
//
// Safety: every path is resolved from an open handle on the root, one
// openat(2) per segment with O_NOFOLLOW, so no symbolic link anywhere
// under the root is followed (ErrSymlink) and nothing outside it is
// reached. Keys are checked with blob.CheckKey, and no segment may start
// with TempPrefix. Readers refuse anything but regular files.
//
// Temporary files of writers that crashed stay behind, invisible to List;
// CleanTemp removes the stale ones.
package local
