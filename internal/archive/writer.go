package archive

import (
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/holdfast-backup/holdfast/internal/crc32c"
)

// Writer stores one tar stream: it walks the tar as bytes arrive in any
// chunking, cuts the stream into frames, compresses frames in parallel,
// writes them in order to the underlying writer, hashes every regular file,
// and on Close returns the members and the index.
//
// Pipeline and memory bound: Write parses headers and copies bytes into the
// current frame buffer; a full frame goes to Concurrency compressor
// goroutines and, in stream order, to one output goroutine that hashes the
// frame's file data, waits for its compressed bytes and writes them. At most
// Concurrency+2 frames exist at once (one filling, Concurrency compressing,
// one writing); Write blocks only when all of them are in flight, that is
// when compression or the destination is slower than the input. Memory is
// about (Concurrency+2) x 2 x FrameSize plus one zstd encoder per compressor
// goroutine (about FrameSize each), whatever the archive's size, plus the
// member list.
//
// A Writer is not safe for concurrent use. Always call Close: it stops the
// goroutines even after an error.
type Writer struct {
	cfg writerConfig
	dst io.Writer
	err error // sticky; first parse or write error seen by Write

	// Tar walk state, owned by Write.
	pos     int64 // tar offset of the next input byte
	hdr     [blockSize]byte
	hdrN    int
	state   walkState
	members []Member
	cur     int   // index of the member whose data is being read
	dataEnd int64 // end of cur's data (before padding)
	memEnd  int64 // end of cur's padded data
	nextCut int64 // next in-member cut point (≤ memEnd)
	frame   *frame

	// Pipeline.
	// Bound: Concurrency+2 frames in all. Each channel can hold every frame,
	// so only taking from free ever blocks.
	free      chan *frame // frames ready for reuse
	allocated int         // frames made so far, ≤ cap(free)
	filled    bool        // a frame was ended because it was full
	work      chan *frame // to the compressors
	order     chan *frame // to the output goroutine, in stream order
	wg        sync.WaitGroup
	closed    bool

	// Owned by the output goroutine until wg.Wait returns.
	outMu      sync.Mutex
	outErr     error
	frames     []Frame
	storedSize int64
	storedSum  hash.Hash32
	fileHash   hash.Hash
	sums       []memberSum
}

type walkState int

const (
	stHeader   walkState = iota // collecting a header block
	stData                      // inside a member's data or padding
	stTrailer2                  // saw one zero block; the next must be zero
	stEnd                       // after the trailer: only zero blocks
)

// frame is one frame in the pipeline.
type frame struct {
	raw   []byte // uncompressed tar bytes, cap FrameSize
	out   []byte // compressed bytes (Zstd only)
	spans []span // regular-file data in raw, for hashing
	done  chan struct{}
}

// span is a piece of a regular member's data inside a frame. A member of
// size 0 gets one empty span so that it is hashed too.
type span struct {
	member      int
	from, to    int // in frame.raw
	first, last bool
}

type memberSum struct {
	member int
	sum    []byte
}

// framePool recycles frame buffers across Writers (one backup writes several
// archives, one after another); the per-Writer bound still holds because a
// Writer takes at most maxFrames of them.
var framePool sync.Pool

// NewWriter returns a Writer storing the tar stream written to it into w
// according to opt. Invalid options make every Write and Close fail.
func NewWriter(w io.Writer, opt Options) *Writer {
	cfg, err := opt.config()
	tw := &Writer{cfg: cfg, dst: w, err: err, storedSum: crc32c.New()}
	if err != nil {
		tw.closed = true
		return tw
	}
	if cfg.Hash != nil {
		tw.fileHash = cfg.Hash()
	}
	maxFrames := cfg.Concurrency + 2
	tw.free = make(chan *frame, maxFrames)
	tw.order = make(chan *frame, maxFrames)
	tw.wg.Go(tw.output)
	if cfg.Compression == Zstd {
		tw.work = make(chan *frame, maxFrames)
		for range cfg.Concurrency {
			tw.wg.Go(tw.compress)
		}
	}
	return tw
}

// Write consumes the next bytes of the tar stream. p may split headers and
// data anywhere. It returns an error wrapping ErrCorrupt when the stream is
// not a well-formed tar, or the destination's error; errors are sticky.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, errClosed
	}
	n := len(p)
	for len(p) > 0 {
		if w.frame == nil {
			if err := w.newFrame(); err != nil {
				return n - len(p), w.fail(err)
			}
		}
		if w.state == stData {
			k := int(min(int64(len(p)), w.nextCut-w.pos))
			w.data(p[:k])
			p = p[k:]
			if w.pos == w.nextCut {
				if err := w.dataCut(); err != nil {
					return n - len(p), w.fail(err)
				}
			}
			continue
		}
		k := copy(w.hdr[w.hdrN:], p)
		w.hdrN += k
		p = p[k:]
		if w.hdrN == blockSize {
			w.hdrN = 0
			if err := w.block(); err != nil {
				return n - len(p), w.fail(err)
			}
		}
	}
	return n, nil
}

func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return w.err
}

// block handles a complete 512-byte block outside member data.
func (w *Writer) block() error {
	b := w.hdr[:]
	switch w.state {
	case stHeader:
		if isZeroBlock(b) {
			// The trailer's two blocks stay in one frame.
			if err := w.boundary(2 * blockSize); err != nil {
				return err
			}
			w.state = stTrailer2
			w.append(b)
			return nil
		}
		m, err := parseHeader(b, w.pos)
		if err != nil {
			return err
		}
		w.members = append(w.members, m)
		w.cur = len(w.members) - 1
		w.memEnd = m.end()
		w.dataEnd = m.DataOffset + m.Size
		w.nextCut = min(m.DataOffset+int64(w.cfg.align), w.memEnd)
		if err := w.boundary(blockSize + w.nextCut - m.DataOffset); err != nil {
			return err
		}
		w.append(b)
		if m.Type == TypeReg && w.fileHash != nil && m.Size == 0 {
			w.frame.spans = append(w.frame.spans, span{member: w.cur, first: true, last: true})
		}
		if m.Size > 0 {
			w.state = stData
		}
	case stTrailer2:
		if !isZeroBlock(b) {
			return corruptAt(w.pos, "a single zero block inside the archive")
		}
		w.append(b)
		w.state = stEnd
	case stEnd:
		if !isZeroBlock(b) {
			return corruptAt(w.pos, "data after the end-of-archive trailer")
		}
		if err := w.boundary(blockSize); err != nil {
			return err
		}
		w.append(b)
	}
	return nil
}

// data appends member data (and padding) up to the next cut point.
func (w *Writer) data(p []byte) {
	start := len(w.frame.raw)
	w.append(p)
	m := &w.members[w.cur]
	if m.Type != TypeReg || w.fileHash == nil {
		return
	}
	// The part before dataEnd is file content; the rest is padding.
	from, to := w.pos-int64(len(p)), min(w.pos, w.dataEnd)
	if from >= to {
		return
	}
	sp := span{member: w.cur, from: start, to: start + int(to-from), first: from == m.DataOffset, last: to == w.dataEnd}
	if s := w.frame.spans; len(s) > 0 && s[len(s)-1].member == w.cur && s[len(s)-1].to == sp.from {
		s[len(s)-1].to, s[len(s)-1].last = sp.to, sp.last
		return
	}
	w.frame.spans = append(w.frame.spans, sp)
}

// dataCut runs at an in-member cut point or at the end of the member.
func (w *Writer) dataCut() error {
	if w.pos == w.memEnd {
		w.state = stHeader
		return nil
	}
	w.nextCut = min(w.pos+int64(w.cfg.align), w.memEnd)
	return w.boundary(w.nextCut - w.pos)
}

// boundary is called at every point where a frame may end, with the length
// of the segment up to the next such point. It ends the current frame if the
// segment would not fit, so frames never exceed FrameSize (segments never do:
// the alignment is at most half the frame size).
func (w *Writer) boundary(seg int64) error {
	if n := int64(len(w.frame.raw)); n > 0 && n+seg > int64(w.cfg.FrameSize) {
		w.submit()
		w.filled = true
		return w.newFrame()
	}
	return nil
}

// append adds tar bytes to the current frame. Buffers start small and grow
// to at most FrameSize, so a small archive does not cost full frames; they
// grow eightfold (64 KiB, 512 KiB, 4 MiB) because every growth copies the
// frame and faults in fresh memory, which short backups felt. Once a frame
// has filled, newFrame gives the next ones their full size at once.
func (w *Writer) append(p []byte) {
	f := w.frame
	if need := len(f.raw) + len(p); need > cap(f.raw) {
		grown := bigBuffer(len(f.raw), min(max(8*cap(f.raw), need), w.cfg.FrameSize))
		copy(grown, f.raw)
		f.raw = grown
	}
	f.raw = append(f.raw, p...)
	w.pos += int64(len(p))
}

// newFrame takes a free frame, making one while fewer than Concurrency+2
// exist, else waiting for the output goroutine to release one.
func (w *Writer) newFrame() error {
	var f *frame
	select {
	case f = <-w.free:
	default:
		if w.allocated < cap(w.free) {
			w.allocated++
			f = getFrame()
		} else {
			f = <-w.free
		}
	}
	if err := w.outputErr(); err != nil {
		w.free <- f
		return err
	}
	if w.filled && cap(f.raw) < w.cfg.FrameSize {
		// The archive fills frames: growing this one 64 KiB -> 512 KiB ->
		// FrameSize would copy it twice and fault in 576 KiB of 4 KiB
		// pages (not huge ones) that are then thrown away.
		f.raw = bigBuffer(0, w.cfg.FrameSize)
	}
	f.raw, f.out, f.spans = f.raw[:0], f.out[:0], f.spans[:0]
	w.frame = f
	return nil
}

func getFrame() *frame {
	if f, ok := framePool.Get().(*frame); ok {
		return f
	}
	return &frame{raw: make([]byte, 0, 64<<10)}
}

// submit hands the current frame to the pipeline. The channels hold
// Concurrency+2 frames, as many as can exist, so the sends never block.
func (w *Writer) submit() {
	f := w.frame
	w.frame = nil
	if w.work != nil {
		f.done = make(chan struct{})
		w.order <- f
		w.work <- f
		return
	}
	w.order <- f
}

// compress is a compressor goroutine.
func (w *Writer) compress() {
	enc := getEncoder(w.cfg.Level, w.cfg.FrameSize)
	defer putEncoder(enc, w.cfg.Level, w.cfg.FrameSize)
	for f := range w.work {
		f.out = enc.encodeFrame(f.out[:0], f.raw)
		close(f.done)
	}
}

// output is the output goroutine: per-file hashing, then the write, in order.
func (w *Writer) output() {
	for f := range w.order {
		w.hashFrame(f)
		data := f.raw
		if f.done != nil {
			<-f.done
			data = f.out
		}
		if w.outputErr() == nil {
			if _, err := w.dst.Write(data); err != nil {
				w.setOutputErr(fmt.Errorf("archive: write stored data: %w", err))
			}
			w.storedSum.Write(data)
		}
		var rawOff int64
		if n := len(w.frames); n > 0 {
			rawOff = w.frames[n-1].RawOffset + w.frames[n-1].RawSize
		}
		w.frames = append(w.frames, Frame{
			RawOffset: rawOff, RawSize: int64(len(f.raw)),
			StoredOffset: w.storedSize, StoredSize: int64(len(data)),
		})
		w.storedSize += int64(len(data))
		w.free <- f
	}
}

func (w *Writer) hashFrame(f *frame) {
	for _, s := range f.spans {
		if s.first {
			w.fileHash.Reset()
		}
		w.fileHash.Write(f.raw[s.from:s.to])
		if s.last {
			w.sums = append(w.sums, memberSum{s.member, w.fileHash.Sum(nil)})
		}
	}
}

func (w *Writer) outputErr() error {
	w.outMu.Lock()
	defer w.outMu.Unlock()
	return w.outErr
}

func (w *Writer) setOutputErr(err error) {
	w.outMu.Lock()
	defer w.outMu.Unlock()
	if w.outErr == nil {
		w.outErr = err
	}
}

// Result describes a stored archive; see Writer.Close.
type Result struct {
	// Members lists every member in stream order, with checksums.
	Members []Member
	// RawSize counts the tar bytes written to the Writer.
	RawSize int64
	// StoredSize counts the bytes written to the destination.
	StoredSize int64
	// StoredCRC32C is the CRC-32C of the stored bytes: a guard against
	// accidental damage that Scan computes frame by frame on all cores and
	// combines (for an uncompressed archive from the same pass that
	// checksums the files). Content is also covered by the per-file
	// checksums and, in zstd archives, by every frame's own checksum.
	StoredCRC32C uint32
	// Index is the serialized index (the .idx object); ParseIndex reads it.
	Index []byte
}

// Close flushes the last frame, waits for the pipeline and returns the
// result. It fails, wrapping ErrCorrupt, if the tar stream is incomplete: a
// partial header or member, or no end-of-archive trailer. It also returns any
// earlier Write error or the destination's error. Close does not close the
// destination.
func (w *Writer) Close() (*Result, error) {
	if w.closed {
		if w.err != nil {
			return nil, w.err
		}
		return nil, errClosed
	}
	w.closed = true
	err := w.err
	if err == nil {
		err = w.checkComplete()
	}
	if w.frame != nil {
		if err == nil && len(w.frame.raw) > 0 {
			w.submit()
		} else {
			w.free <- w.frame
			w.frame = nil
		}
	}
	close(w.order)
	if w.work != nil {
		close(w.work)
	}
	w.wg.Wait()
	w.recycle()
	if err == nil {
		err = w.outErr
	}
	if err != nil {
		w.err = err
		return nil, err
	}
	for _, s := range w.sums {
		w.members[s.member].Checksum = s.sum
	}
	x := &Index{
		Compression: w.cfg.Compression,
		FrameSize:   w.cfg.FrameSize,
		DataAlign:   w.cfg.align,
		RawSize:     w.pos,
		StoredSize:  w.storedSize,
		Frames:      w.frames,
		Members:     w.members,
	}
	if w.fileHash != nil {
		x.DigestSize = w.fileHash.Size()
	}
	b, err := x.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return &Result{
		Members:      w.members,
		RawSize:      w.pos,
		StoredSize:   w.storedSize,
		StoredCRC32C: w.storedSum.Sum32(),
		Index:        b,
	}, nil
}

// checkComplete reports an incomplete stream at Close.
func (w *Writer) checkComplete() error {
	switch {
	case w.state == stData:
		m := &w.members[w.cur]
		return corruptAt(w.pos, "stream ends inside member %q (%d of %d data bytes)",
			m.Name, min(w.pos, w.dataEnd)-m.DataOffset, m.Size)
	case w.hdrN != 0:
		return corruptAt(w.pos, "stream ends inside a 512-byte block (%d bytes)", w.hdrN)
	case w.state == stHeader:
		return corruptAt(w.pos, "stream ends without the end-of-archive trailer")
	case w.state == stTrailer2:
		return corruptAt(w.pos, "stream ends after one of the two trailer blocks")
	}
	return nil
}

// recycle returns the frames to the shared pool once the pipeline is done.
func (w *Writer) recycle() {
	for {
		select {
		case f := <-w.free:
			f.done = nil
			framePool.Put(f)
		default:
			return
		}
	}
}
