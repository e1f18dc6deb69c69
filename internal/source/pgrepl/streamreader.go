package pgrepl

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// readBuffer is the receive buffer in front of each replication
// connection's socket: pgproto3 reads at least 8 kB at a time, and a larger
// buffer fetches many messages per read system call.
const readBuffer = 1 << 20

// A batched read waits for batchLow bytes (SO_RCVLOWAT) for at most
// batchWait, then takes what has come.
//
// Over TCP the kernel otherwise wakes the reader for every segment the
// walsender sends (8 kB writes on PostgreSQL 15 and 16): in the lab (PG 18,
// 1.3 GiB, loopback, a client that discards the stream) reads that wait
// for 1 MiB took the client's CPU from 1.31 to 0.41 s and the walsender's
// from 1.50 to 1.20-1.27 s, and the stream ended 15-20% sooner, since
// every wake-up and window update costs both sides on two shared cores.
// batchWait bounds what a tail shorter than batchLow, or a pause of the
// server, delays a read.
const (
	batchLow  = readBuffer
	batchWait = 2 * time.Millisecond
)

// streamReader buffers a replication connection for pgproto3 as a
// bufio.Reader would, and batches the reads of a bulk stream (batch).
type streamReader struct {
	r      io.Reader // pgconn's reader of the socket
	buf    []byte
	rp, wp int
	err    error // from the read that filled buf, returned once buf is empty
	batch  *batching
	waited int // reads that waited for the low mark, for the tests
}

func newStreamReader(r io.Reader, size int) *streamReader {
	return &streamReader{r: r, buf: make([]byte, size)}
}

// Read returns buffered bytes, or reads the socket once: into p when p is
// at least as large as the buffer, else into the buffer.
func (s *streamReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if s.rp == s.wp {
		if err := s.err; err != nil {
			s.err = nil
			return 0, err
		}
		if len(p) >= len(s.buf) {
			return s.read(p)
		}
		n, err := s.read(s.buf)
		s.rp, s.wp = 0, n
		if n == 0 {
			return 0, err
		}
		s.err = err
	}
	n := copy(p, s.buf[s.rp:s.wp])
	s.rp += n
	return n, nil
}

func (s *streamReader) read(p []byte) (int, error) {
	b := s.batch
	if b == nil || len(p) < b.low {
		return s.r.Read(p)
	}
	s.waited++
	b.lowat(b.low)
	b.dt.arm(time.Now().Add(b.wait))
	n, err := s.r.Read(p)
	if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) && !b.dt.interrupted() {
		// Fewer than low bytes within wait: take what there is. An
		// interruption that comes now still ends the read (arm leaves its
		// deadline in place).
		b.lowat(1)
		b.dt.arm(time.Time{})
		n, err = s.r.Read(p)
	}
	return n, err
}

// batching is the state of batched reads on one TCP socket.
type batching struct {
	sock syscall.RawConn
	dt   *deadlineTimer // the stream's deadline, shared with its interruption
	low  int
	wait time.Duration
	cur  int // the socket's SO_RCVLOWAT as last set
}

// lowat sets the socket's SO_RCVLOWAT to v if it is not already v. A
// failure leaves the socket waking for every byte, as without batching.
func (b *batching) lowat(v int) {
	if v == b.cur {
		return
	}
	b.cur = v
	b.sock.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, v)
	})
}

// batchReads batches the connection's reads until end is called, when it
// is a TCP connection (under TLS too); dt must be the stream's deadline
// timer, which end leaves to its owner. On other connections, or when c was
// not built by Connect, it does nothing.
func (c *Conn) batchReads(dt *deadlineTimer) (end func()) {
	sock := tcpSocket(c.pg.Conn())
	if c.rd == nil || sock == nil {
		return func() {}
	}
	c.rd.batch = &batching{sock: sock, dt: dt, low: batchLow, wait: batchWait, cur: 1}
	return func() {
		c.rd.batch.lowat(1)
		c.rd.batch = nil
	}
}

// tcpSocket is the TCP socket under nc (through TLS), or nil.
func tcpSocket(nc net.Conn) syscall.RawConn {
	for {
		switch t := nc.(type) {
		case *net.TCPConn:
			rc, err := t.SyscallConn()
			if err != nil {
				return nil
			}
			return rc
		case interface{ NetConn() net.Conn }:
			nc = t.NetConn()
		default:
			return nil
		}
	}
}
