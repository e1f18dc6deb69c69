package pgrepl

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"testing/iotest"
	"time"
)

// chunks is a reader that returns its pieces one per Read, then err.
type chunks struct {
	pieces [][]byte
	err    error
	reads  int
}

func (c *chunks) Read(p []byte) (int, error) {
	c.reads++
	if len(c.pieces) == 0 {
		return 0, c.err
	}
	n := copy(p, c.pieces[0])
	c.pieces[0] = c.pieces[0][n:]
	if len(c.pieces[0]) == 0 {
		c.pieces = c.pieces[1:]
		if len(c.pieces) == 0 && c.err != nil {
			return n, c.err // data and the error together, as a socket may
		}
	}
	return n, nil
}

func TestStreamReaderBuffers(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	boom := errors.New("boom")
	src := &chunks{pieces: [][]byte{data[:100], data[100:40000], data[40000:]}, err: boom}
	s := newStreamReader(src, 1024)
	var got []byte
	p := make([]byte, 300)
	var err error
	for err == nil {
		var n int
		n, err = s.Read(p)
		got = append(got, p[:n]...)
	}
	if !errors.Is(err, boom) || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes (equal %v), err %v", len(got), bytes.Equal(got, data), err)
	}
	// Small reads were served from the buffer: one fill per 1024 bytes at
	// most, not one per Read.
	if src.reads > len(data)/1024+4 {
		t.Errorf("%d reads of the source for %d bytes through a 1 KiB buffer", src.reads, len(data))
	}

	// A read at least as large as the buffer goes straight to the source,
	// and the reader passes iotest's checks.
	if err := iotest.TestReader(newStreamReader(bytes.NewReader(data), 4096), data); err != nil {
		t.Error(err)
	}
	if n, err := newStreamReader(bytes.NewReader(nil), 16).Read(nil); n != 0 || err != nil {
		t.Errorf("empty read: %d, %v", n, err)
	}
}

// tcpPair is a loopback TCP connection: the client side (read by the test)
// and the server side.
func tcpPair(t *testing.T) (client *net.TCPConn, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.FailNow()
	}
	t.Cleanup(func() { c.Close(); server.Close() })
	return c.(*net.TCPConn), server
}

func rcvlowat(t *testing.T, c *net.TCPConn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	rc.Control(func(fd uintptr) {
		v, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT)
	})
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

// lowatProbe reads c and notes the socket's SO_RCVLOWAT as each read
// starts, the highest in max.
type lowatProbe struct {
	t   *testing.T
	c   *net.TCPConn
	max int
}

func (p *lowatProbe) Read(b []byte) (int, error) {
	p.max = max(p.max, rcvlowat(p.t, p.c))
	return p.c.Read(b)
}

// batchedReader reads c through a streamReader that batches like
// Conn.batchReads does, with a low mark of low bytes.
func batchedReader(t *testing.T, c *net.TCPConn, low int) (*streamReader, *deadlineTimer, *lowatProbe) {
	t.Helper()
	dt := &deadlineTimer{set: c.SetDeadline}
	probe := &lowatProbe{t: t, c: c}
	s := newStreamReader(probe, low)
	s.batch = &batching{sock: tcpSocket(c), dt: dt, low: low, wait: batchWait, cur: 1}
	if s.batch.sock == nil {
		t.Fatal("no TCP socket under a TCP connection")
	}
	return s, dt, probe
}

// A batched stream arrives whole: reads wait for the low mark, and a tail
// shorter than it, after which the sender goes quiet without closing (as
// a walsender does after ReadyForQuery), is still delivered.
func TestStreamReaderBatchesTCP(t *testing.T) {
	client, server := tcpPair(t)
	const low = 256 << 10
	data := make([]byte, 3<<20+100)
	for i := range data {
		data[i] = byte(i * 7)
	}
	tail := len(data) - 100
	go func() {
		// 8 kB writes, as PostgreSQL 15 sends, then a pause and the tail.
		for p := data[:tail]; len(p) > 0; {
			n := min(len(p), 8192)
			if _, err := server.Write(p[:n]); err != nil {
				t.Error(err)
				return
			}
			p = p[n:]
		}
		time.Sleep(100 * time.Millisecond)
		if _, err := server.Write(data[tail:]); err != nil {
			t.Error(err)
		}
	}()
	s, dt, probe := batchedReader(t, client, low)
	defer dt.stop()

	got := make([]byte, 0, len(data))
	p := make([]byte, 32<<10)
	watchdog := time.AfterFunc(30*time.Second, func() { client.Close() }) // a hang fails, not blocks
	defer watchdog.Stop()
	for len(got) < len(data) {
		n, err := s.Read(p)
		got = append(got, p[:n]...)
		if err != nil {
			t.Fatalf("after %d of %d bytes: %v", len(got), len(data), err)
		}
	}
	// Reads waited for the low mark.
	if probe.max != low {
		t.Errorf("SO_RCVLOWAT at most %d as reads started, want %d", probe.max, low)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("stream corrupted")
	}
	// The 100-byte tail came after a wait that ran out: the socket was
	// told to wake for any byte.
	if v := rcvlowat(t, client); v != 1 {
		t.Errorf("SO_RCVLOWAT %d after the tail, want 1", v)
	}
	if dt.interrupted() {
		t.Error("the stream's own waits were taken for an interruption")
	}
}

// An interruption (cancellation) ends a batched read that waits for data
// that never comes, and is not mistaken for the end of a batching wait.
func TestStreamReaderBatchInterrupted(t *testing.T) {
	client, server := tcpPair(t)
	s, dt, _ := batchedReader(t, client, 256<<10)
	defer dt.stop()
	if _, err := server.Write([]byte("short")); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 256<<10)
	n, err := s.Read(p)
	if err != nil || string(p[:n]) != "short" {
		t.Fatalf("first read %q, %v", p[:n], err)
	}
	time.AfterFunc(50*time.Millisecond, dt.interrupt)
	watchdog := time.AfterFunc(30*time.Second, func() { client.Close() })
	defer watchdog.Stop()
	n, err = s.Read(p)
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("interrupted read: %d bytes, %v; want a deadline error", n, err)
	}
	if !dt.interrupted() {
		t.Error("interruption not pending")
	}
	// The interruption stays: the next read fails at once too.
	if _, err := s.Read(p); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read after the interruption: %v", err)
	}
}

// tcpSocket finds the TCP socket under TLS, and none under other
// connections (where SO_RCVLOWAT would not batch anything).
func TestTCPSocket(t *testing.T) {
	client, _ := tcpPair(t)
	if tcpSocket(client) == nil {
		t.Error("no socket under a TCP connection")
	}
	if tcpSocket(tls.Client(client, &tls.Config{})) == nil {
		t.Error("no socket under TLS over TCP")
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if tcpSocket(a) != nil || tcpSocket(tls.Client(a, &tls.Config{})) != nil {
		t.Error("a socket under a pipe")
	}
}
