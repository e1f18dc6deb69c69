// Package incremental reads the INCREMENTAL.* files of PostgreSQL 17+
// incremental backups and rebuilds full relation files from a backup chain
// exactly as pg_combinebackup does.
//
// It owns the file format and the choice of which backup supplies each block
// of a rebuilt file. It does not find files or open archives: the caller
// describes each backup's version of one file as a [Source] (absent, a plain
// file, or an INCREMENTAL file) with an io.ReaderAt over its bytes, so blocks
// can be served from compressed archives with random access.
//
// # INCREMENTAL file layout
//
// All integers are uint32 in the server's byte order, little-endian on every
// platform PostgreSQL is built for in practice (x86-64, arm64):
//
//	offset 0        ┌──────────────────────────────┐
//	                │ magic 0xd3ae1f0d  (0d 1f ae d3)│
//	       4        │ block count N   (≤ 131072)    │
//	       8        │ truncation_block_length (≤ 131072)
//	      12        ├──────────────────────────────┤
//	                │ N block numbers, relative to  │
//	                │ the segment, strictly rising  │
//	  12+4N         ├──────────────────────────────┤
//	                │ zero padding to a multiple of │  only when N > 0
//	                │ 8192                          │
//	      H         ├──────────────────────────────┤
//	                │ N block images of 8192 bytes, │
//	                │ in the order of the numbers   │
//	H+8192N         └──────────────────────────────┘
//
//	H = 12 when N = 0 (the whole file is 12 bytes), else 12+4N rounded up to 8192.
//
// The server's comment says "magic, truncation length, block count"; the
// writer and pg_combinebackup both use the order drawn above.
//
// # Reconstruction
//
// The rebuilt file is max(truncation_block_length, highest block + 1)
// blocks of the latest INCREMENTAL file long. Each block comes from the
// newest backup that has it: the latest file's own blocks first, then, for
// blocks below the latest truncation_block_length only, each older
// INCREMENTAL file in turn, and finally the first plain file met walking back
// (which ends the search); blocks nobody has are zeros. [MakePlan] computes
// that choice as runs of blocks; [Reconstruct] writes them in order with
// memory bounded by one read buffer.
package incremental
