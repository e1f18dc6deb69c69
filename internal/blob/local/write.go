package local

import (
	"os"

	"golang.org/x/sys/unix"
)

const (
	// writeBufferSize is the bufio buffer of one Upload: the only memory an
	// upload holds. Writes at least this big go straight to the file.
	writeBufferSize = 1 << 20

	// writebackChunk is how many bytes an upload writes before it asks the
	// kernel to start writing them to disk.
	writebackChunk = 8 << 20
)

// writeBehind writes to f and starts the writeback of every full
// writebackChunk as soon as it is written (sync_file_range with
// SYNC_FILE_RANGE_WRITE, which starts I/O and waits for nothing). Without
// it the kernel would hold a whole archive dirty until Commit's fsync,
// which would then write it all while the backup waits; with it the disk
// works while the stream is still arriving. Durability still comes from
// that fsync alone. Where sync_file_range is not supported the hint is
// dropped.
//
// Measured against the alternative, O_DIRECT in aligned 4 MiB writes: on
// the project's VM (virtio disk with a volatile cache) direct writes made
// a 1 GiB backup slower (2.6 s against 2.1 s), so the page cache stays.
type writeBehind struct {
	f               *os.File
	written, hinted int64 // bytes written; start of the range not yet handed to writeback
	noHint          bool
}

func (w *writeBehind) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.written += int64(n)
	if !w.noHint && w.written-w.hinted >= writebackChunk {
		end := w.written &^ (writebackChunk - 1)
		if unix.SyncFileRange(int(w.f.Fd()), w.hinted, end-w.hinted, unix.SYNC_FILE_RANGE_WRITE) != nil {
			w.noHint = true
		}
		w.hinted = end
	}
	return n, err
}
