package archive

import (
	"errors"
	"io"
	"runtime"
	"sync"
)

// NewParallelDecoder returns the raw tar bytes of a stored zstd archive
// read sequentially from r, decompressing its frames on several goroutines.
// frames is the index's frame table (from an index whose integrity the
// caller checked); the stored bytes must be exactly those frames in order.
// At most workers+2 frames are in flight, so memory stays at about
// (workers+2) × 2 × FrameSize whatever the archive's size.
//
// Wrap the result in NewStreamReader(…, None) to walk the tar. The reader
// must be closed to release its goroutines.
func NewParallelDecoder(r io.Reader, frames []Frame, workers int) io.ReadCloser {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	d := &parallelDecoder{
		order: make(chan chan decoded, workers+2), // the bound on frames in flight
		jobs:  make(chan decodeJob),
		done:  make(chan struct{}),
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.work()
		}()
	}
	go func() {
		d.produce(r, frames)
		close(d.jobs)
		wg.Wait()
	}()
	return d
}

type decodeJob struct {
	i     int
	f     Frame
	src   []byte
	reply chan decoded
}

type decoded struct {
	buf []byte
	err error
}

type parallelDecoder struct {
	order chan chan decoded
	jobs  chan decodeJob
	done  chan struct{}
	once  sync.Once

	cur  []byte // what is left of the current frame
	back []byte // the current frame's whole buffer, recycled when done
	err  error  // sticky
}

// produce reads each frame's stored bytes in turn and hands them to the
// workers, queueing the reply channels in frame order.
func (d *parallelDecoder) produce(r io.Reader, frames []Frame) {
	defer close(d.order)
	for i, f := range frames {
		if f.StoredSize < 0 || f.StoredSize > MaxFrameSize*2 || f.RawSize < 0 || f.RawSize > MaxFrameSize {
			d.fail(corruptf("frame %d: sizes out of range", i))
			return
		}
		src := getBuf(int(f.StoredSize))
		if _, err := io.ReadFull(r, src); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				err = corruptf("stored archive ends inside frame %d of %d", i, len(frames))
			}
			d.fail(err)
			return
		}
		reply := make(chan decoded, 1)
		select {
		case d.order <- reply:
		case <-d.done:
			return
		}
		select {
		case d.jobs <- decodeJob{i: i, f: f, src: src, reply: reply}:
		case <-d.done:
			// Queued but never sent: answer it, or Close's drain would
			// wait for it forever.
			putBuf(src)
			reply <- decoded{err: errClosedDecoder}
			return
		}
	}
}

func (d *parallelDecoder) fail(err error) {
	reply := make(chan decoded, 1)
	reply <- decoded{err: err}
	select {
	case d.order <- reply:
	case <-d.done:
	}
}

func (d *parallelDecoder) work() {
	for j := range d.jobs {
		out, err := decodeIndexed(getBuf(int(j.f.RawSize)), j.src, j.i, &j.f, true)
		putBuf(j.src)
		if err != nil {
			putBuf(out)
			j.reply <- decoded{err: err}
			continue
		}
		j.reply <- decoded{buf: out}
	}
}

// Read returns decompressed bytes in archive order.
func (d *parallelDecoder) Read(p []byte) (int, error) {
	for len(d.cur) == 0 {
		if d.back != nil {
			putBuf(d.back)
			d.back = nil
		}
		if d.err != nil {
			return 0, d.err
		}
		reply, ok := <-d.order
		if !ok {
			d.err = io.EOF
			return 0, io.EOF
		}
		res := <-reply
		if res.err != nil {
			d.err = res.err
			return 0, d.err
		}
		d.cur, d.back = res.buf, res.buf
	}
	n := copy(p, d.cur)
	d.cur = d.cur[n:]
	return n, nil
}

var errClosedDecoder = errors.New("archive: parallel decoder closed")

// Close stops the producer and the workers.
func (d *parallelDecoder) Close() error {
	d.once.Do(func() {
		d.cur = nil
		close(d.done)
		if d.err == nil {
			d.err = errClosedDecoder
		}
		// Drain so blocked workers can finish, and take their buffers back.
		go func() {
			for reply := range d.order {
				if r := <-reply; r.buf != nil {
					putBuf(r.buf)
				}
			}
		}()
	})
	return nil
}

// OpenStream walks a stored archive read sequentially from r. With the
// archive's index (nil if unknown or not trusted), a zstd archive's frames
// are decompressed in parallel; without it, on one goroutine. close
// releases the decoder's goroutines.
func OpenStream(r io.Reader, c Compression, idx *Index) (sr *StreamReader, close func()) {
	if c == Zstd && idx != nil && idx.Compression == Zstd {
		d := NewParallelDecoder(r, idx.Frames, 0)
		return NewStreamReader(d, None), func() { d.Close() }
	}
	s := NewStreamReader(r, c)
	return s, func() { s.Close() }
}

// frameBufs recycles frame-sized buffers between frames and decoders, so a
// long archive does not allocate (and zero) a fresh buffer per frame.
var frameBufs sync.Pool

// hugePage is the size of a transparent huge page on x86-64 and arm64:
// buffers of at least this size come from bigBuffer.
const hugePage = 2 << 20

// getBuf returns a buffer of length n, reused when one is large enough.
func getBuf(n int) []byte {
	if b, ok := frameBufs.Get().(*[]byte); ok && cap(*b) >= n {
		return (*b)[:n]
	}
	if n < hugePage {
		// A stored (compressed) frame is a twentieth of its raw size: huge
		// pages would make all of a buffer resident for the little used.
		return make([]byte, n, max(n, DefaultFrameSize))
	}
	return bigBuffer(n, max(n, DefaultFrameSize))
}

func putBuf(b []byte) {
	if cap(b) > 2*MaxFrameSize {
		return
	}
	b = b[:0]
	frameBufs.Put(&b)
}
