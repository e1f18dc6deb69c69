// Package archive owns the stored form of one tablespace archive: the tar
// stream PostgreSQL sends, kept byte for byte, optionally compressed as a
// sequence of independent zstd frames, plus an index that makes any member or
// block readable with one ranged read and one small decompression.
//
// Writer takes the tar bytes in any chunking, walks the headers, hashes every
// regular file, compresses frames in parallel and returns the member list and
// the serialized index. Reader reads members at random through the index.
// StreamReader walks a stored archive from start to end without an index.
// The package knows nothing of storage, manifests or backups.
//
// # Stored archive (base.tar or base.tar.zst)
//
// The uncompressed bytes are exactly the tar stream as received: 512-byte
// ustar headers, data padded to 512 bytes, two zero blocks at the end (and
// any further zero blocks that followed them). Sizes of 8 GiB and more use
// GNU base-256 in the size field. PAX and GNU long-name headers are refused,
// PostgreSQL never sends them.
//
// With Zstd the object is the concatenation of independent zstd frames
// (RFC 8878), each compressing one contiguous range of the tar, with the
// content size in its header, a content checksum, and a window no smaller
// than the frame (single segment). It is one valid zstd stream: `zstd -d`,
// `tar --zstd -xf` and pg_verifybackup 18 (`-F t`) read it. With None the
// object is the tar itself and frames only name ranges of it.
//
// # Frames
//
// The tar is cut into frames of at most FrameSize uncompressed bytes (default
// 4 MiB). Cuts happen only at
//
//   - a member's header offset (the frame then starts with the header),
//   - a member's DataOffset + k*DataAlign, k >= 1, inside its data, where
//     DataAlign is 1 MiB (for FrameSize under 2 MiB: the largest power of
//     two not above FrameSize/2, at least 8 KiB),
//   - the start of the trailer, and block boundaries after its two blocks.
//
// Between two consecutive cut points lies a segment; the writer appends
// segments to the current frame and starts a new frame when the next segment
// would push it past FrameSize. A segment is never longer than
// 512+DataAlign <= FrameSize, so every frame respects the cap. Consequences:
// a member's header is in the same frame as its first data bytes; a PostgreSQL
// page (8 KiB at a data offset multiple of 8192) never straddles two frames;
// small members share frames.
//
// # Index (the .idx object), version 1
//
// All integers little-endian; uvarint and varint are encoding/binary's
// (varint zigzag), always in their shortest form.
//
//	offset  size  field
//	0       8     magic "HFTARIDX"
//	8       2     version = 1
//	10      1     compression: 0 none, 1 zstd
//	11      1     D, per-file digest length (0 = no digests), at most 64
//	12      4     FrameSize, cap on a frame's uncompressed size
//	16      4     DataAlign, power of two in [8 KiB, 1 MiB], <= FrameSize/2
//	20      8     raw size: uncompressed tar length, trailer included
//	28      8     stored size: length of the stored object
//	36      ...   frame table:
//	                uvarint  frame count
//	                per frame, in order:
//	                  uvarint raw length      (1..FrameSize)
//	                  uvarint stored length   (= raw length for none)
//	...     ...   member table:
//	                uvarint  member count
//	                per member, in stream order:
//	                  byte    type flag: '0' file, '5' dir, '2' symlink,
//	                          '1' '3' '4' '6' other header-only types
//	                  uvarint name length (1..256), name bytes
//	                  uvarint link length (0..100), link target bytes
//	                  uvarint mode (permission bits)
//	                  uvarint size (0 unless type '0')
//	                  varint  mtime (Unix seconds)
//	                  D bytes digest of the data, type '0' only
//	end-4   4     CRC-32C (Castagnoli) of every byte before it
//
// Offsets are not stored, they follow from sizes: frame i starts at the sum of
// the previous frames' raw (stored) lengths, and member i's header starts
// where member i-1's padded data ends (the first at 0); the trailer starts
// after the last member. ParseIndex checks that frames tile both the raw and
// the stored bytes exactly, that members end before the 1024-byte trailer,
// that every cut obeys the frame rules, and that counts fit in the bytes
// present, so a damaged index is refused before anything large is
// allocated. Readers refuse versions they do not know.
package archive
