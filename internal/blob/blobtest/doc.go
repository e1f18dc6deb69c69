// Package blobtest holds what every blob.Store is tested with, and the
// stores other packages use to test their failure paths:
//
//   - Run, the conformance suite: visibility only after Commit, Abort and
//     failed commits leave nothing, PutIfAbsent is exclusive under
//     concurrency, OpenRange bounds, List order and prefix semantics, key
//     validation, Delete, context cancellation and a large streamed object.
//     The local, S3 and in-memory stores all run it.
//   - Mem, an in-memory store with the same semantics.
//   - Faulty, a wrapper that fails the Nth write, commit, PutIfAbsent, read
//     (or any other operation) with a chosen error such as syscall.ENOSPC,
//     or performs the operation and then reports failure (a lost reply), or
//     corrupts a read.
//
// The package imports testing and is meant for tests only.
package blobtest
