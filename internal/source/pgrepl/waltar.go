package pgrepl

import (
	"fmt"
	"io"
	"time"

	"github.com/holdfast-backup/holdfast/internal/wal"
)

const tarBlock = 512

// zeros is a shared source of padding; never written to.
var zeros [64 << 10]byte

// walTar writes streamed WAL as the pg_wal.tar that pg_basebackup -Ft
// -X stream writes (observed with pg_basebackup 15):
//
//	[<tli>.history, archive_status/<tli>.history.done]   timeline > 1 only
//	<segment>                      mode 0600, full segment size
//	archive_status/<segment>.done  empty, only after a segment received whole
//	...
//	<last segment>                 zero-padded to full size, no .done when partial
//	1024 zero bytes
//
// It streams: a segment's header is written when its first byte arrives
// (the size is known: the segment size), its bytes as they come. Nothing is
// buffered.
type walTar struct {
	w       io.Writer
	segSize uint64
	tli     uint32
	now     func() time.Time

	pos      wal.LSN // next WAL byte expected
	seg      string  // segment member open, "" if none
	segments []string
	written  int64 // bytes written to w
	err      error // sticky
}

func newWALTar(w io.Writer, tli uint32, segSize uint64, start wal.LSN, now func() time.Time) *walTar {
	return &walTar{w: w, tli: tli, segSize: segSize, pos: start, now: now}
}

// writeWAL appends data, which starts at t.pos, splitting it at segment
// boundaries.
func (t *walTar) writeWAL(data []byte) error {
	for len(data) > 0 && t.err == nil {
		if t.seg == "" {
			t.seg = wal.SegmentName(t.tli, t.pos, t.segSize)
			t.header(t.seg, int64(t.segSize))
		}
		room := t.segSize - uint64(t.pos)%t.segSize
		n := uint64(len(data))
		if n > room {
			n = room
		}
		t.write(data[:n])
		t.pos += wal.LSN(n)
		data = data[n:]
		if uint64(t.pos)%t.segSize == 0 {
			t.segments = append(t.segments, t.seg)
			t.header("archive_status/"+t.seg+".done", 0)
			t.seg = ""
		}
	}
	return t.err
}

// writeFile adds a small whole file (a timeline history file) and its
// .done marker.
func (t *walTar) writeFile(name string, content []byte) error {
	t.header(name, int64(len(content)))
	t.write(content)
	t.pad(int64(len(content)))
	t.header("archive_status/"+name+".done", 0)
	return t.err
}

// finish zero-pads an incomplete last segment to full size and writes the
// end-of-archive blocks.
func (t *walTar) finish() error {
	if t.seg != "" {
		rest := t.segSize - uint64(t.pos)%t.segSize
		t.zeros(int64(rest))
		t.segments = append(t.segments, t.seg)
		t.seg = ""
	}
	t.zeros(2 * tarBlock)
	return t.err
}

func (t *walTar) write(p []byte) {
	if t.err != nil {
		return
	}
	n, err := t.w.Write(p)
	t.written += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		t.err = fmt.Errorf("write pg_wal.tar: %w", err)
	}
}

func (t *walTar) zeros(n int64) {
	for n > 0 && t.err == nil {
		k := min(n, int64(len(zeros)))
		t.write(zeros[:k])
		n -= k
	}
}

func (t *walTar) pad(size int64) {
	if r := size % tarBlock; r != 0 {
		t.zeros(tarBlock - r)
	}
}

func (t *walTar) header(name string, size int64) {
	var h [tarBlock]byte
	tarHeader(&h, name, size, 0o600, t.now())
	t.write(h[:])
}

// tarHeader fills a ustar header the way PostgreSQL's src/port/tar.c does
// (spec §6.1): numeric fields as zero-padded octal followed by a space,
// uname and gname "postgres", uid and gid 0 as pg_basebackup writes them
// for pg_wal.tar. name must be at most 99 bytes; size below 8 GiB.
func tarHeader(h *[tarBlock]byte, name string, size int64, mode uint32, mtime time.Time) {
	*h = [tarBlock]byte{}
	copy(h[0:99], name)
	octal(h[100:108], uint64(mode&0o7777))
	octal(h[108:116], 0)
	octal(h[116:124], 0)
	octal(h[124:136], uint64(size))
	octal(h[136:148], uint64(max(mtime.Unix(), 0)))
	h[156] = '0'
	copy(h[257:263], "ustar\x00")
	copy(h[263:265], "00")
	copy(h[265:297], "postgres")
	copy(h[297:329], "postgres")
	octal(h[329:337], 0)
	octal(h[337:345], 0)
	// The checksum is computed with its own field as spaces.
	copy(h[148:156], "        ")
	sum := uint64(0)
	for _, b := range h {
		sum += uint64(b)
	}
	octal(h[148:156], sum)
}

// octal writes v as len(dst)-1 zero-padded octal digits and a space.
func octal(dst []byte, v uint64) {
	n := len(dst) - 1
	for i := n - 1; i >= 0; i-- {
		dst[i] = byte('0' + v&7)
		v >>= 3
	}
	dst[n] = ' '
}
