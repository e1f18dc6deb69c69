package archive

import (
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sync"

	"github.com/holdfast-backup/holdfast/internal/crc32c"
)

// ScanOptions configure Scan.
type ScanOptions struct {
	// Hash makes a new hash for each regular member's data; nil hashes
	// nothing. The pieces of a member are hashed in order on Scan's
	// caller goroutine, unless CRC32C is set.
	Hash func() hash.Hash
	// CRC32C, when set, replaces Hash: each piece of a member is checksummed
	// with CRC-32C where its frame is decoded, in parallel, and the pieces
	// are combined in order; CRC32C turns the member's CRC into the digest
	// visit receives (PostgreSQL's manifests, for one, write it
	// little-endian).
	CRC32C func(crc uint32) []byte
	// Skip, when set, names members whose data need not be hashed (their
	// digest is nil).
	Skip func(m *Member) bool
	// Keep names small members whose data the caller wants; Kept then
	// receives it on Scan's goroutine, before visit sees the member. Only
	// members that lie in one frame are kept.
	Keep func(m *Member) bool
	Kept func(m *Member, data []byte)
	// Stored, when set, is fed the stored bytes in order: the whole object,
	// for a digest over it.
	Stored io.Writer
	// StoredCRC32C, when set, receives the CRC-32C of the whole stored
	// object when Scan returns nil. Each frame's is computed where it is
	// read, in parallel, and combined in order; in an uncompressed archive
	// with CRC32C it comes from the same pass as the members' CRCs.
	StoredCRC32C *uint32
	// Workers is how many frames are read and decoded at once; 0 selects
	// GOMAXPROCS.
	Workers int
	// ReadPieces lets a worker read an uncompressed frame in 256 KiB
	// pieces, each checksummed while it is in the core's cache: for a
	// reader where a read is a system call (a local file), not a request.
	ReadPieces bool
	// Buffers, when set, is where the workers take their buffers from
	// and leave them: give consecutive scans (a backup's archives) the
	// same one and the later ones reuse the pages the first faulted in.
	// Without it they come from and go back to a sync.Pool, which may or
	// may not still hold them for the next scan.
	Buffers *ScanBuffers
}

// ScanBuffers holds the buffers of finished Scan workers for the next
// scans that are given it. It is safe for concurrent use. Release hands
// them back to the package's pool when the caller is done.
type ScanBuffers struct {
	mu   sync.Mutex
	free []*workerBufs
}

func (b *ScanBuffers) take() *workerBufs {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n := len(b.free); n > 0 {
		w := b.free[n-1]
		b.free = b.free[:n-1]
		return w
	}
	return &workerBufs{}
}

func (b *ScanBuffers) give(w *workerBufs) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.free = append(b.free, w)
}

// Release gives every buffer held to the package's pool.
func (b *ScanBuffers) Release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, w := range b.free {
		w.release()
	}
	b.free = nil
}

// Scan checks a stored archive against its index, reading the stored
// object through ra (its size is idx.StoredSize; the caller checks the
// object's size and the index's integrity). Every frame is read, decoded
// and checked to decode to its size in the index, every member's header
// in the tar is checked to be the index's, and every regular member's
// data is hashed. Frames are read and decoded on several goroutines, at
// most Workers+2 at a time, so memory does not grow with the archive.
//
// visit is called on Scan's goroutine for every member in stream order,
// with the digest of its data (nil for members that are not regular
// files, skipped ones, or without a hash); its error stops the scan.
// Damage is reported as errors wrapping ErrCorrupt.
func Scan(ra io.ReaderAt, idx *Index, opt ScanOptions, visit func(m *Member, sum []byte) error) error {
	if err := idx.checkLayout(); err != nil {
		return err
	}
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	plan := planScan(idx, opt)
	s := &scanner{ra: ra, idx: idx, opt: opt, plan: plan}

	order := make(chan chan scanned, workers+2) // bounds the frames in flight
	jobs := make(chan scanJob)
	done := make(chan struct{})
	defer close(done)
	var working sync.WaitGroup
	for range workers {
		working.Go(func() { s.work(jobs) })
	}
	go func() {
		defer close(jobs)
		defer close(order)
		for i := range idx.Frames {
			reply := make(chan scanned, 1)
			select {
			case order <- reply:
			case <-done:
				return
			}
			select {
			case jobs <- scanJob{i: i, reply: reply}:
			case <-done:
				// Queued but never sent: answer it, or the drain below
				// would wait for it forever.
				reply <- scanned{err: errScanStopped}
				return
			}
		}
	}()
	defer func() {
		// On an early return, let the workers finish the frames in flight
		// and give their buffers back.
		go func() {
			for reply := range order {
				r := <-reply
				r.release()
			}
		}()
	}()

	c := consumer{s: s, visit: visit}
	for reply := range order {
		r := <-reply
		err := r.err
		if err == nil {
			err = c.frame(r)
		}
		r.release()
		if err != nil {
			return err
		}
	}
	err := c.finish()
	// Every frame was consumed, so the workers are leaving; wait until
	// they have given their buffers back, for the next scan to take.
	working.Wait()
	return err
}

// scanSpan is a piece of a regular member's data inside one frame.
type scanSpan struct {
	member      int
	from, to    int // in the frame's raw bytes
	first, last bool
	hash, keep  bool
}

// framePlan is what one frame holds: the headers to check and the data
// pieces to hash.
type framePlan struct {
	headers []int // members whose header block lies in this frame
	spans   []scanSpan
}

func planScan(idx *Index, opt ScanOptions) []framePlan {
	plan := make([]framePlan, len(idx.Frames))
	hashing := opt.Hash != nil || opt.CRC32C != nil
	fi := 0
	for mi := range idx.Members {
		m := &idx.Members[mi]
		fi = idx.frameFrom(fi, m.HeaderOffset)
		plan[fi].headers = append(plan[fi].headers, mi)
		if m.Type != TypeReg {
			continue
		}
		hash := hashing && (opt.Skip == nil || !opt.Skip(m))
		keep := opt.Keep != nil && opt.Kept != nil && opt.Keep(m)
		if !hash && !keep {
			continue
		}
		if m.Size == 0 {
			// Placed where its data would be, so a frame's spans stay in
			// offset order.
			at := int(m.DataOffset - idx.Frames[fi].RawOffset)
			plan[fi].spans = append(plan[fi].spans, scanSpan{member: mi, from: at, to: at, first: true, last: true, hash: hash, keep: keep})
			continue
		}
		if keep && idx.frameFrom(fi, m.DataOffset) != idx.frameFrom(fi, m.DataOffset+m.Size-1) {
			keep = false // spread over frames: not kept
			if !hash {
				continue
			}
		}
		for off, end := m.DataOffset, m.DataOffset+m.Size; off < end; {
			fi = idx.frameFrom(fi, off)
			f := &idx.Frames[fi]
			to := min(end, f.RawOffset+f.RawSize)
			plan[fi].spans = append(plan[fi].spans, scanSpan{
				member: mi,
				from:   int(off - f.RawOffset), to: int(to - f.RawOffset),
				first: off == m.DataOffset, last: to == end,
				hash: hash, keep: keep,
			})
			off = to
		}
	}
	return plan
}

// frameFrom returns the frame holding raw offset off, searching forward
// from frame i (offsets are visited in increasing order).
func (x *Index) frameFrom(i int, off int64) int {
	for i < len(x.Frames)-1 && off >= x.Frames[i].RawOffset+x.Frames[i].RawSize {
		i++
	}
	return i
}

// checkLayout refuses an index whose members do not lie in its frames in
// order, so planScan's offsets are all inside frames.
func (x *Index) checkLayout() error {
	var end int64
	for i := range x.Frames {
		f := &x.Frames[i]
		if f.RawOffset != end || f.RawSize <= 0 || f.RawSize > MaxFrameSize || f.StoredSize < 0 || uint64(f.StoredSize) > zstdBound(uint64(f.RawSize)) {
			return corruptf("index: frame %d (raw %d+%d) out of order or size", i, f.RawOffset, f.RawSize)
		}
		end += f.RawSize
	}
	if end != x.RawSize {
		return corruptf("index: frames cover %d raw bytes, index says %d", end, x.RawSize)
	}
	var next int64
	for i := range x.Members {
		m := &x.Members[i]
		if m.HeaderOffset < next || m.DataOffset != m.HeaderOffset+blockSize || m.Size < 0 || m.end() > x.RawSize {
			return corruptf("index: member %d %q (offset %d, size %d) out of order or outside the archive", i, m.Name, m.HeaderOffset, m.Size)
		}
		next = m.end()
	}
	return nil
}

type scanner struct {
	ra   io.ReaderAt
	idx  *Index
	opt  ScanOptions
	plan []framePlan
}

type scanJob struct {
	i     int
	reply chan scanned
}

// scanned is a worker's result for one frame.
type scanned struct {
	i      int
	stored []byte   // the stored bytes (nil once released)
	raw    []byte   // decoded bytes
	shared bool     // raw is stored (uncompressed)
	crcs   []uint32 // per span of the frame's plan, with CRC32C
	crc    uint32   // of the stored frame, with StoredCRC32C
	kept   [][]byte // per span of the frame's plan, copies of kept members
	err    error
}

func (r *scanned) release() {
	if r.raw != nil && !r.shared {
		putBuf(r.raw)
	}
	if r.stored != nil {
		putBuf(r.stored)
	}
	r.raw, r.stored = nil, nil
}

// scanChunk is how much of an uncompressed frame a worker reads at a time
// with ReadPieces when only CRCs leave it: the piece is still in the
// core's cache when it is checksummed. Reading 1.2 GiB from the page cache
// and CRC-ing it on two cores took 82 ms in 256 KiB pieces, 103 ms in
// 4 MiB ones.
const scanChunk = 256 << 10

// work is a worker goroutine. Its decoder skips zstd's content checksums
// when the caller digests the stored bytes: a stored object that matches
// its digest decodes to what was written, and the members' own digests
// cover their data. The checksum (XXH64 of every decoded byte) cost a
// tenth of a scan.
func (s *scanner) work(jobs <-chan scanJob) {
	checksums := s.opt.Stored == nil && s.opt.StoredCRC32C == nil
	// Unless the caller hashes or digests on its own goroutine, nothing but
	// CRCs and kept copies leaves the worker: it reads every frame into
	// the same buffers and decodes it into the same buffer (an
	// uncompressed frame it reads in chunks).
	var w *workerBufs
	if s.opt.Hash == nil && s.opt.Stored == nil {
		if b := s.opt.Buffers; b != nil {
			w = b.take()
			defer b.give(w)
		} else {
			w = &workerBufs{}
			defer w.release()
		}
	}
	for j := range jobs {
		r := scanned{i: j.i}
		r.err = s.frame(&r, checksums, w)
		j.reply <- r
	}
}

// workerBufs are a worker's own buffers, reused from frame to frame.
//
// They come from the pool, and through ScanOptions.Buffers a second scan
// (the WAL archive after the base one) reuses pages that are already
// mapped: each page a process touches for the first time costs a page
// fault, and on the virtual machines the benchmark ran on a fault took
// 10-20 µs. With a fresh decode buffer per worker, verify's scan of a
// zstd backup's 16 MiB WAL archive took 5-9 ms; reusing the base scan's,
// 1.6-3 ms. The stored bytes of a compressed frame stay in the worker
// too, rather than travelling with its result to Scan's goroutine: two
// buffers to fault in rather than one per frame in flight.
type workerBufs struct {
	raw, stored []byte
	pooled      [][]byte // given back by release
}

// rawBuf returns the worker's decode buffer (length 0), of capacity at
// least n.
func (w *workerBufs) rawBuf(n int) []byte {
	if cap(w.raw) < n {
		w.raw = w.get(n)
	}
	return w.raw[:0]
}

// storedBuf returns the worker's buffer for n stored bytes.
func (w *workerBufs) storedBuf(n int) []byte {
	if cap(w.stored) < n {
		// At least a huge page, so getBuf makes it of huge pages: a few
		// faults, not one per 4 KiB.
		w.stored = w.get(max(n, hugePage))
	}
	return w.stored[:n]
}

func (w *workerBufs) get(n int) []byte {
	b := getBuf(n)
	w.pooled = append(w.pooled, b)
	return b
}

func (w *workerBufs) release() {
	for _, b := range w.pooled {
		putBuf(b)
	}
	w.pooled = nil
}

// read fills p with the stored bytes at off, inside frame i.
func (s *scanner) read(i int, p []byte, off int64) error {
	n, err := s.ra.ReadAt(p, off)
	if n < len(p) {
		if err == nil || errors.Is(err, io.EOF) {
			return corruptf("stored archive ends at %d, inside frame %d of %d", off+int64(n), i, len(s.idx.Frames))
		}
		return fmt.Errorf("archive: read frame %d (stored bytes %d..%d): %w", i, off, off+int64(len(p)), err)
	}
	return nil
}

// frame reads, decodes and checks frame r.i. With w (the worker's
// buffers) the frame's bytes stay in them; without, they are handed back
// in r.stored and r.raw.
func (s *scanner) frame(r *scanned, checksums bool, w *workerBufs) error {
	f := &s.idx.Frames[r.i]
	p := &s.plan[r.i]
	if s.opt.CRC32C != nil && len(p.spans) > 0 {
		r.crcs = make([]uint32, len(p.spans))
	}
	if s.idx.Compression == None {
		if f.StoredSize != f.RawSize {
			return corruptf("frame %d: %d stored bytes for %d raw bytes in an uncompressed archive", r.i, f.StoredSize, f.RawSize)
		}
		if w != nil && s.opt.ReadPieces {
			// Read into the worker's buffer, in pieces of its size.
			if w.raw == nil {
				// Exactly a piece: the pool's buffers are frame-sized, and
				// a fresh 4 MiB one cost the first frame a millisecond or
				// two. ScanOptions.Buffers carries it to the next scan.
				w.raw = make([]byte, 0, scanChunk)
			}
			own := w.raw[:0:min(scanChunk, s.idx.FrameSize)]
			var cur windowCursor
			for lo := 0; lo < int(f.RawSize); lo += cap(own) {
				b := own[:min(cap(own), int(f.RawSize)-lo)]
				if err := s.read(r.i, b, f.StoredOffset+int64(lo)); err != nil {
					return err
				}
				if err := s.window(r, p, f, b, lo, &cur); err != nil {
					return err
				}
			}
			return nil
		}
	}
	var stored []byte
	if w != nil && s.idx.Compression != None {
		stored = w.storedBuf(int(f.StoredSize))
	} else {
		r.stored = getBuf(int(f.StoredSize))
		stored = r.stored
	}
	if err := s.read(r.i, stored, f.StoredOffset); err != nil {
		return err
	}
	if s.idx.Compression == None {
		r.raw, r.shared = stored, true
		return s.window(r, p, f, r.raw, 0, &windowCursor{})
	}
	if s.opt.StoredCRC32C != nil {
		r.crc = crc32c.Checksum(stored)
	}
	var dst []byte
	if w != nil {
		dst = w.rawBuf(max(s.idx.FrameSize, int(f.RawSize)))
	} else {
		dst = getBuf(int(f.RawSize))
	}
	out, err := decodeIndexed(dst, stored, r.i, f, checksums)
	if w == nil {
		r.raw = out // released to the pool whatever happened
	}
	if err != nil {
		return err
	}
	return s.window(r, p, f, out, 0, &windowCursor{})
}

// window checks the bytes [lo, lo+len(b)) of frame f (raw offsets inside
// the frame): the tar headers that start there, the CRCs of the pieces of
// member data there, copies of kept members. Windows of a frame come in
// order. An uncompressed frame's CRC (StoredCRC32C) is put together from
// the bytes between hashed pieces and the pieces' own CRCs, so each byte
// is checksummed once.
//
// A frame's headers and spans are in offset order, and cur carries the
// position in both lists from one window to the next, so a frame costs
// one pass over them whatever the number of windows.
func (s *scanner) window(r *scanned, p *framePlan, f *Frame, b []byte, lo int, cur *windowCursor) error {
	hi := lo + len(b)
	for ; cur.header < len(p.headers); cur.header++ {
		m := &s.idx.Members[p.headers[cur.header]]
		at := int(m.HeaderOffset - f.RawOffset)
		if at >= hi {
			break
		}
		if at+blockSize > int(f.RawSize) {
			return corruptAt(m.HeaderOffset, "header of member %q crosses frame %d", m.Name, r.i)
		}
		if at < lo || at+blockSize > hi {
			// Frames start on 512-byte boundaries (ParseIndex checks the
			// cuts) and pieces are multiples of 512: a header never
			// straddles two.
			return corruptAt(m.HeaderOffset, "header of member %q is not on a 512-byte boundary of frame %d", m.Name, r.i)
		}
		got, err := parseHeader(b[at-lo:at-lo+blockSize], m.HeaderOffset)
		if err != nil {
			return err
		}
		if !sameHeader(&got, m) {
			return corruptAt(m.HeaderOffset, "index says member %q (size %d), archive has %q (size %d)", m.Name, m.Size, got.Name, got.Size)
		}
	}
	stored := s.opt.StoredCRC32C != nil && s.idx.Compression == None
	pieces := stored && s.opt.CRC32C != nil
	pos := lo // with pieces: where the frame's CRC has got to
	for cur.span < len(p.spans) && p.spans[cur.span].to <= lo {
		cur.span++ // ended before this window (or empty)
	}
	for k := cur.span; k < len(p.spans) && p.spans[k].from < hi; k++ {
		sp := p.spans[k]
		from, to := max(sp.from, lo), min(sp.to, hi)
		if from >= to {
			continue
		}
		piece := b[from-lo : to-lo]
		if sp.keep {
			if r.kept == nil {
				r.kept = make([][]byte, len(p.spans))
			}
			r.kept[k] = append(r.kept[k], piece...)
		}
		if !sp.hash || s.opt.CRC32C == nil {
			continue
		}
		c := crc32c.Checksum(piece)
		r.crcs[k] = crc32c.Combine(r.crcs[k], c, int64(len(piece)))
		if pieces {
			r.crc = crc32c.Update(r.crc, b[pos-lo:from-lo])
			r.crc = crc32c.Combine(r.crc, c, int64(len(piece)))
			pos = to
		}
	}
	if stored {
		r.crc = crc32c.Update(r.crc, b[pos-lo:])
	}
	return nil
}

// windowCursor is where window got to in a frame's headers and spans.
type windowCursor struct{ header, span int }

// consumer puts the frames' results together in order on Scan's goroutine.
type consumer struct {
	s     *scanner
	visit func(m *Member, sum []byte) error
	next  int       // next member to visit
	h     hash.Hash // the open member's hash (Hash mode)
	crc   uint32    // the open member's CRC so far (CRC32C mode)
	whole uint32    // the stored object's CRC so far (StoredCRC32C)
}

func (c *consumer) frame(r scanned) error {
	if c.s.opt.Stored != nil {
		if _, err := c.s.opt.Stored.Write(r.stored); err != nil {
			return err
		}
	}
	if c.s.opt.StoredCRC32C != nil {
		c.whole = crc32c.Combine(c.whole, r.crc, c.s.idx.Frames[r.i].StoredSize)
	}
	for k, sp := range c.s.plan[r.i].spans {
		// Members before this one have no data to hash: visit them.
		if err := c.visitUpTo(sp.member); err != nil {
			return err
		}
		if sp.keep {
			data := []byte{} // an empty member has no piece
			if r.kept != nil && r.kept[k] != nil {
				data = r.kept[k]
			}
			c.s.opt.Kept(&c.s.idx.Members[sp.member], data)
		}
		if !sp.hash {
			if sp.last {
				if err := c.emit(sp.member, nil); err != nil {
					return err
				}
			}
			continue
		}
		if c.s.opt.CRC32C != nil {
			if sp.first {
				c.crc = r.crcs[k]
			} else {
				c.crc = crc32c.Combine(c.crc, r.crcs[k], int64(sp.to-sp.from))
			}
			if sp.last {
				if err := c.emit(sp.member, c.s.opt.CRC32C(c.crc)); err != nil {
					return err
				}
			}
			continue
		}
		if sp.first {
			c.h = c.s.opt.Hash()
		}
		c.h.Write(r.raw[sp.from:sp.to])
		if sp.last {
			if err := c.emit(sp.member, c.h.Sum(nil)); err != nil {
				return err
			}
		}
	}
	return nil
}

// visitUpTo visits the members before mi that carry no digest.
func (c *consumer) visitUpTo(mi int) error {
	for ; c.next < mi; c.next++ {
		if err := c.visit(&c.s.idx.Members[c.next], nil); err != nil {
			return err
		}
	}
	return nil
}

func (c *consumer) emit(mi int, sum []byte) error {
	if err := c.visitUpTo(mi); err != nil {
		return err
	}
	c.next = mi + 1
	return c.visit(&c.s.idx.Members[mi], sum)
}

func (c *consumer) finish() error {
	if err := c.visitUpTo(len(c.s.idx.Members)); err != nil {
		return err
	}
	if c.s.opt.StoredCRC32C != nil {
		*c.s.opt.StoredCRC32C = c.whole
	}
	return nil
}

var errScanStopped = errors.New("archive: scan stopped")
