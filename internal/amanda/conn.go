package amanda

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// Errors of the connection layer.
var (
	ErrStreamClosed   = errors.New("amanda: write on a closed stream")
	ErrStreamOverflow = errors.New("amanda: peer sent more stream data than the buffer holds")
	ErrConnClosed     = errors.New("amanda: connection closed")
)

// maxOutFrame is the largest payload this package writes: amandad relays a
// service's output in reads of at most 32 KiB.
const maxOutFrame = 32 * 1024

// conn multiplexes one bsdtcp connection. A single reader goroutine
// (readLoop) reads frames: those on a registered stream go to that
// stream's bounded buffer, every other frame goes, in order, to packets,
// which the owning state machine must keep draining.
type conn struct {
	nc           net.Conn
	r            *bufio.Reader
	maxFrame     int           // largest payload accepted
	maxBuffered  int           // per stream: unread bytes held before the peer is cut off
	writeTimeout time.Duration // per frame; 0 = none

	wmu sync.Mutex // one frame at a time on the wire
	hdr [FrameHeaderSize]byte

	mu      sync.Mutex
	streams map[uint32]*Stream

	packets chan Frame
	done    chan struct{}
	once    sync.Once
	err     error // why the connection ended; set before done is closed

	ctx        context.Context // cancelled when the connection ends
	cancel     context.CancelCauseFunc
	stopParent func() bool // unregisters the parent's AfterFunc
}

func newConn(parent context.Context, nc net.Conn, maxFrame, maxBuffered int, writeTimeout time.Duration) *conn {
	ctx, cancel := context.WithCancelCause(parent)
	c := &conn{
		nc:           nc,
		r:            bufio.NewReaderSize(nc, 4096),
		maxFrame:     maxFrame,
		maxBuffered:  maxBuffered,
		writeTimeout: writeTimeout,
		streams:      make(map[uint32]*Stream),
		packets:      make(chan Frame, 4),
		done:         make(chan struct{}),
		ctx:          ctx,
		cancel:       cancel,
	}
	c.stopParent = context.AfterFunc(parent, func() { c.fail(context.Cause(parent)) })
	return c
}

// fail ends the connection once; later calls keep the first reason.
func (c *conn) fail(err error) {
	c.once.Do(func() {
		if err == nil {
			err = ErrConnClosed
		}
		c.err = err
		close(c.done)
		c.cancel(err)
		c.nc.Close()
		c.stopParent()
	})
}

// Err returns why the connection ended, or nil while it is up.
func (c *conn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

func (c *conn) readLoop() {
	for {
		f, err := ReadFrame(c.r, c.maxFrame)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w by peer", ErrConnClosed)
			}
			c.fail(err)
			return
		}
		c.mu.Lock()
		s := c.streams[f.Handle]
		c.mu.Unlock()
		if s != nil {
			if err := s.deliver(f.Payload); err != nil {
				c.fail(err)
				return
			}
			continue
		}
		select {
		case c.packets <- f:
		case <-c.done:
			return
		}
	}
}

// writeFrame writes one frame; an error ends the connection.
func (c *conn) writeFrame(handle uint32, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.Err(); err != nil {
		return err
	}
	if c.writeTimeout > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	bufs := net.Buffers{AppendFrameHeader(c.hdr[:0], handle, len(payload))}
	if len(payload) > 0 {
		bufs = append(bufs, payload)
	}
	if _, err := bufs.WriteTo(c.nc); err != nil {
		err = fmt.Errorf("amanda: write frame: %w", err)
		c.fail(err)
		return err
	}
	return nil
}

func (c *conn) writePacket(handle uint32, p Packet) error {
	payload, err := AppendPacket(nil, p)
	if err != nil {
		return err
	}
	return c.writeFrame(handle, payload)
}

// stream registers id; frames on it are buffered from now on.
func (c *conn) stream(id uint32) *Stream {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.streams[id]; s != nil {
		return s
	}
	s := &Stream{
		c:          c,
		id:         id,
		notify:     make(chan struct{}, 1),
		peerClosed: make(chan struct{}),
	}
	c.streams[id] = s
	return s
}

// aLongTimeAgo is a deadline in the past, used to wake a blocked Read.
var aLongTimeAgo = time.Unix(1, 0)

// Stream is one stream of a connection, such as amdumpd's CTL. Read
// returns io.EOF after the peer's zero-length frame; Close sends ours.
// One goroutine may read while others write.
type Stream struct {
	c  *conn
	id uint32

	mu         sync.Mutex
	queue      [][]byte
	buffered   int
	eof        bool
	deadline   time.Time
	notify     chan struct{} // new data, EOF or a new deadline
	peerClosed chan struct{} // closed at the peer's zero-length frame

	closeOnce sync.Once
	closeErr  error
	wclosed   bool
}

// ID returns the stream id, the frame handle used in both directions.
func (s *Stream) ID() uint32 { return s.id }

func (s *Stream) deliver(p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.eof {
		if len(p) == 0 {
			return nil
		}
		return fmt.Errorf("amanda: data on stream %d after its end", s.id)
	}
	if len(p) == 0 {
		s.eof = true
		close(s.peerClosed)
	} else {
		if s.buffered+len(p) > s.c.maxBuffered {
			return fmt.Errorf("%w (stream %d, %d bytes)", ErrStreamOverflow, s.id, s.c.maxBuffered)
		}
		s.queue = append(s.queue, p)
		s.buffered += len(p)
	}
	s.wake()
	return nil
}

func (s *Stream) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Read reads stream data the peer sent. Frame boundaries carry no meaning.
func (s *Stream) Read(p []byte) (int, error) {
	for {
		s.mu.Lock()
		if len(s.queue) > 0 {
			n := copy(p, s.queue[0])
			if n == len(s.queue[0]) {
				s.queue[0] = nil
				s.queue = s.queue[1:]
			} else {
				s.queue[0] = s.queue[0][n:]
			}
			s.buffered -= n
			s.mu.Unlock()
			return n, nil
		}
		if s.eof {
			s.mu.Unlock()
			return 0, io.EOF
		}
		deadline := s.deadline
		s.mu.Unlock()

		if err := s.c.Err(); err != nil {
			return 0, err
		}
		var timer *time.Timer
		var expired <-chan time.Time
		if !deadline.IsZero() {
			d := time.Until(deadline)
			if d <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			timer = time.NewTimer(d)
			expired = timer.C
		}
		select {
		case <-s.notify:
		case <-s.c.done:
		case <-expired:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// SetReadDeadline makes a blocked or future Read fail with
// os.ErrDeadlineExceeded once t has passed; the zero time clears it.
func (s *Stream) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	s.deadline = t
	s.mu.Unlock()
	s.wake()
	return nil
}

// Write sends p as one or more frames on the stream.
func (s *Stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	closed := s.wclosed
	s.mu.Unlock()
	if closed {
		return 0, ErrStreamClosed
	}
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), maxOutFrame)]
		if err := s.c.writeFrame(s.id, chunk); err != nil {
			return n, err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

// Close sends the zero-length frame that ends the stream. Reading stays
// possible until the peer's own end arrives.
func (s *Stream) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.wclosed = true
		s.mu.Unlock()
		s.closeErr = s.c.writeFrame(s.id, nil)
	})
	return s.closeErr
}

// PeerClosed is closed when the peer has ended the stream.
func (s *Stream) PeerClosed() <-chan struct{} { return s.peerClosed }
