package amanda_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/holdfast-backup/holdfast/internal/amanda"
)

// rawPeer is a hand-driven bsdtcp client: it sends exactly the frames a
// test wants and checks the server's frames one by one.
type rawPeer struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawPeer {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawPeer{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (p *rawPeer) send(handle uint32, payload string) {
	p.t.Helper()
	if _, err := p.nc.Write(amanda.AppendFrame(nil, handle, []byte(payload))); err != nil {
		p.t.Fatalf("send: %v", err)
	}
}

func (p *rawPeer) sendPacket(handle uint32, typ amanda.PacketType, body string) {
	p.t.Helper()
	b, err := amanda.AppendPacket(nil, amanda.Packet{Type: typ, Body: body})
	if err != nil {
		p.t.Fatal(err)
	}
	p.send(handle, string(b))
}

func (p *rawPeer) frame(timeout time.Duration) (amanda.Frame, error) {
	p.nc.SetReadDeadline(time.Now().Add(timeout))
	return amanda.ReadFrame(p.r, 0)
}

func (p *rawPeer) expect(handle uint32, payload string) {
	p.t.Helper()
	f, err := p.frame(5 * time.Second)
	if err != nil {
		p.t.Fatalf("waiting for %q on %d: %v", payload, handle, err)
	}
	if f.Handle != handle || string(f.Payload) != payload {
		p.t.Fatalf("got %q on %d, want %q on %d", f.Payload, f.Handle, payload, handle)
	}
}

// expectAnyOrder reads one frame for each handle of want, in any order.
func (p *rawPeer) expectAnyOrder(want map[uint32]string) {
	p.t.Helper()
	left := maps.Clone(want)
	for len(left) > 0 {
		f, err := p.frame(5 * time.Second)
		if err != nil {
			p.t.Fatalf("waiting for %v: %v", left, err)
		}
		payload, ok := left[f.Handle]
		if !ok || string(f.Payload) != payload {
			p.t.Fatalf("got %q on %d, want one of %v", f.Payload, f.Handle, left)
		}
		delete(left, f.Handle)
	}
}

func (p *rawPeer) expectPacket(handle uint32, typ amanda.PacketType, body string) {
	p.t.Helper()
	b, _ := amanda.AppendPacket(nil, amanda.Packet{Type: typ, Body: body})
	p.expect(handle, string(b))
}

// expectEOF waits for the server to close the connection.
func (p *rawPeer) expectEOF(timeout time.Duration) {
	p.t.Helper()
	for {
		f, err := p.frame(timeout)
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
			return
		}
		if err != nil {
			p.t.Fatalf("waiting for the server to close: %v", err)
		}
		_ = f
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

const reqBody = "SECURITY USER backup\nSERVICE amdumpd\nOPTIONS features=ffffffff9efefbfffffffffffffff3fffbf71f;hostname=localhost;\n"

func loopbackHosts() []amanda.Host {
	return []amanda.Host{{
		Name:      "localhost",
		Addresses: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		Users:     []string{"backup"},
	}}
}

// echoHandler connects, then answers each line with its upper-case form
// until "END" or the client's end of stream.
var echoHandler = amanda.HandlerFunc(func(ctx context.Context, call *amanda.Call) error {
	st, err := call.Connect(ctx)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(st)
	for sc.Scan() {
		if sc.Text() == "END" {
			return nil
		}
		fmt.Fprintf(st, "%s %s\n", strings.ToUpper(sc.Text()), call.Peer.Host)
	}
	return sc.Err()
})

func startServer(t testing.TB, s *amanda.Server) string {
	t.Helper()
	if s.Services == nil {
		s.Services = map[string]amanda.Handler{"amdumpd": echoHandler}
	}
	if s.Hosts == nil {
		s.Hosts = loopbackHosts()
	}
	if s.LingerTimeout == 0 {
		s.LingerTimeout = 200 * time.Millisecond
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-served; !errors.Is(err, amanda.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// handshake drives the spec's preamble (§10.1) and returns after the
// server closed the packet handle.
func (p *rawPeer) handshake() {
	p.t.Helper()
	p.sendPacket(1, amanda.REQ, reqBody)
	p.expectPacket(1, amanda.ACK, "")
	p.expectPacket(1, amanda.REP, "CONNECT CTL 499999\n\n")
	p.sendPacket(1, amanda.ACK, "")
	p.expect(1, "")
	p.send(1, "")
}

func TestSessionPreamble(t *testing.T) {
	addr := startServer(t, &amanda.Server{})
	p := dialRaw(t, addr)
	p.handshake()
	p.send(499999, "hello\nwor")
	p.send(499999, "ld\n")
	p.expect(499999, "HELLO localhost\n")
	p.expect(499999, "WORLD localhost\n")
	p.send(499999, "END\n")
	p.expect(499999, "")
	p.send(499999, "")
	p.expectEOF(5 * time.Second)
}

func TestClientEOFIsHalfClose(t *testing.T) {
	addr := startServer(t, &amanda.Server{})
	p := dialRaw(t, addr)
	p.handshake()
	// Everything at once and the end of stream, as amservice does with a
	// regular file on stdin (spec §10.4): the replies still come.
	p.send(499999, "a\nb\n")
	p.send(499999, "")
	p.expect(499999, "A localhost\n")
	p.expect(499999, "B localhost\n")
	p.expect(499999, "")
	p.expectEOF(5 * time.Second)
}

func TestEarlyStreamDataIsKept(t *testing.T) {
	addr := startServer(t, &amanda.Server{})
	p := dialRaw(t, addr)
	p.sendPacket(1, amanda.REQ, reqBody)
	p.expectPacket(1, amanda.ACK, "")
	p.expectPacket(1, amanda.REP, "CONNECT CTL 499999\n\n")
	p.send(499999, "early\n") // before the ACK: amandad would kill the stream
	p.sendPacket(1, amanda.ACK, "")
	// The request handle's close and the stream's reply are on different
	// handles: either may come first.
	p.expectAnyOrder(map[uint32]string{1: "", 499999: "EARLY localhost\n"})
}

func TestDuplicateREQ(t *testing.T) {
	release := make(chan struct{})
	slow := amanda.HandlerFunc(func(ctx context.Context, call *amanda.Call) error {
		<-release
		return echoHandler(ctx, call)
	})
	addr := startServer(t, &amanda.Server{Services: map[string]amanda.Handler{"amdumpd": slow}, RepRetry: time.Hour})
	p := dialRaw(t, addr)
	p.sendPacket(1, amanda.REQ, reqBody)
	p.expectPacket(1, amanda.ACK, "")
	p.sendPacket(1, amanda.REQ, reqBody) // before the REP: ACK again
	p.expectPacket(1, amanda.ACK, "")
	close(release)
	p.expectPacket(1, amanda.REP, "CONNECT CTL 499999\n\n")
	p.sendPacket(1, amanda.REQ, reqBody) // after the REP: the REP again
	p.expectPacket(1, amanda.REP, "CONNECT CTL 499999\n\n")
	p.sendPacket(2, amanda.REQ, reqBody) // a second request on the connection
	p.expectPacket(2, amanda.NAK, "ERROR only one request per connection is served\n")
	p.expect(2, "")
	p.sendPacket(1, amanda.ACK, "")
	p.expect(1, "")
	p.send(499999, "x\n")
	p.expect(499999, "X localhost\n")
}

func TestREPRetransmission(t *testing.T) {
	addr := startServer(t, &amanda.Server{RepRetry: 50 * time.Millisecond, RepTries: 3})
	p := dialRaw(t, addr)
	p.sendPacket(1, amanda.REQ, reqBody)
	p.expectPacket(1, amanda.ACK, "")
	for range 3 {
		p.expectPacket(1, amanda.REP, "CONNECT CTL 499999\n\n")
	}
	p.expectEOF(5 * time.Second) // never ACKed: the service is torn down
}

func TestRefusals(t *testing.T) {
	other := []amanda.Host{{Name: "db1", Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, Users: []string{"backup"}}}
	tests := []struct {
		name string
		srv  func() *amanda.Server
		body string
		nak  string
		port bool // the NAK names the client's port
	}{
		{name: "port not secure", srv: func() *amanda.Server { return &amanda.Server{RequireReservedPort: true} }, body: reqBody, nak: "ERROR host localhost: port %d not secure\n", port: true},
		{name: "no SECURITY", body: "SERVICE amdumpd\nOPTIONS ;\n", nak: "ERROR no bsd SECURITY for P_REQ\n"},
		{name: "no SERVICE", body: "SECURITY USER backup\nOPTIONS ;\n", nak: "ERROR packet as no SERVICE line\n"},
		{name: "user not allowed", body: strings.Replace(reqBody, "USER backup", "USER nobody", 1),
			nak: "ERROR user nobody from localhost is not allowed to execute the service amdumpd: user nobody is not among the users of host localhost\n"},
		{name: "host not declared", srv: func() *amanda.Server { return &amanda.Server{Hosts: other} }, body: reqBody,
			nak: "ERROR user backup from 127.0.0.1 is not allowed to execute the service amdumpd: no declared host has address 127.0.0.1\n"},
		{name: "no host at all", srv: func() *amanda.Server { return &amanda.Server{Hosts: []amanda.Host{}} }, body: reqBody,
			nak: "ERROR user backup from 127.0.0.1 is not allowed to execute the service amdumpd: no declared host has address 127.0.0.1\n"},
		{name: "nothing after SERVICE", body: "SECURITY USER backup\nSERVICE amdumpd\n", nak: "ERROR invalid REQ\n"},
		{name: "unknown service", body: "SECURITY USER backup\nSERVICE noop\nOPTIONS ;\n", nak: "ERROR noop: invalid service\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := &amanda.Server{}
			if tc.srv != nil {
				srv = tc.srv()
			}
			addr := startServer(t, srv)
			p := dialRaw(t, addr)
			p.sendPacket(1, amanda.REQ, tc.body)
			nak := tc.nak
			if tc.port {
				nak = fmt.Sprintf(nak, p.nc.LocalAddr().(*net.TCPAddr).Port)
			}
			p.expectPacket(1, amanda.NAK, nak)
			p.expect(1, "")
			p.expectEOF(10 * time.Second)
		})
	}
}

func TestREPErrorWhenHandlerFails(t *testing.T) {
	failing := amanda.HandlerFunc(func(ctx context.Context, call *amanda.Call) error {
		return errors.New("boom")
	})
	panicking := amanda.HandlerFunc(func(ctx context.Context, call *amanda.Call) error {
		panic("oops")
	})
	rejecting := amanda.HandlerFunc(func(ctx context.Context, call *amanda.Call) error {
		return call.Reject(ctx, "recover program requested auth 'local', but amandad is using auth 'bsdtcp'")
	})
	for name, h := range map[string]amanda.Handler{"fails": failing, "panics": panicking} {
		t.Run(name, func(t *testing.T) {
			addr := startServer(t, &amanda.Server{Services: map[string]amanda.Handler{"amdumpd": h}})
			p := dialRaw(t, addr)
			p.sendPacket(1, amanda.REQ, reqBody)
			p.expectPacket(1, amanda.ACK, "")
			p.expectPacket(1, amanda.REP, "ERROR service amdumpd failed\n\n")
			p.sendPacket(1, amanda.ACK, "")
			p.expect(1, "")
			p.expectEOF(10 * time.Second)
		})
	}
	t.Run("rejects", func(t *testing.T) {
		addr := startServer(t, &amanda.Server{Services: map[string]amanda.Handler{"amdumpd": rejecting}})
		p := dialRaw(t, addr)
		p.sendPacket(1, amanda.REQ, reqBody)
		p.expectPacket(1, amanda.ACK, "")
		p.expectPacket(1, amanda.REP, "ERROR recover program requested auth 'local', but amandad is using auth 'bsdtcp'\n\n")
		p.sendPacket(1, amanda.ACK, "")
		p.expect(1, "")
		p.expectEOF(10 * time.Second)
	})
}

// Misbehaving peers are cut off without harm to a session that runs.
func TestBadPeers(t *testing.T) {
	addr := startServer(t, &amanda.Server{HandshakeTimeout: 300 * time.Millisecond, MaxFrameSize: 1024})
	good := dialRaw(t, addr)
	good.handshake()

	tests := []struct {
		name string
		do   func(p *rawPeer)
	}{
		{"silent", func(p *rawPeer) {}},
		{"line protocol", func(p *rawPeer) { p.nc.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) }},
		{"huge frame", func(p *rawPeer) { p.nc.Write([]byte{0, 0x10, 0, 0, 0, 0, 0, 1}) }},
		{"bad packet type", func(p *rawPeer) { p.send(1, "\x09x\x00") }},
		{"empty first frame", func(p *rawPeer) { p.send(1, "") }},
		{"first packet not a REQ", func(p *rawPeer) { p.sendPacket(1, amanda.ACK, "") }},
		{"garbage after the handshake", func(p *rawPeer) {
			p.handshake()
			p.send(77, "\x09garbage")
		}},
		{"stream overflow", func(p *rawPeer) {
			p.sendPacket(1, amanda.REQ, reqBody)
			p.expectPacket(1, amanda.ACK, "")
			p.expectPacket(1, amanda.REP, "CONNECT CTL 499999\n\n")
			// never ACKed, so the handler never reads: the buffer fills
			for range 3 {
				p.send(499999, strings.Repeat("x", 1000))
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := dialRaw(t, addr)
			tc.do(p)
			p.expectEOF(5 * time.Second)
		})
	}
	good.send(499999, "still here\n")
	good.expect(499999, "STILL HERE localhost\n")
}

func TestMaxSessions(t *testing.T) {
	addr := startServer(t, &amanda.Server{MaxSessions: 1})
	first := dialRaw(t, addr)
	first.handshake()
	second := dialRaw(t, addr)
	second.sendPacket(1, amanda.REQ, reqBody)
	second.expectPacket(1, amanda.NAK, "ERROR too many sessions on the server; retry later\n")
	second.expect(1, "")
	first.send(499999, "END\n")
	first.expect(499999, "")
	first.send(499999, "")
	first.expectEOF(5 * time.Second)
	// The slot is free again.
	var third *rawPeer
	deadline := time.Now().Add(5 * time.Second)
	for {
		third = dialRaw(t, addr)
		third.sendPacket(1, amanda.REQ, reqBody)
		f, err := third.frame(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if string(f.Payload) == "\x03\x00" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not released: %q", f.Payload)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestShutdownDrains(t *testing.T) {
	var ended atomic.Bool
	waiter := amanda.HandlerFunc(func(ctx context.Context, call *amanda.Call) error {
		st, err := call.Connect(ctx)
		if err != nil {
			return err
		}
		<-call.Draining()
		time.Sleep(50 * time.Millisecond) // finishing a command
		fmt.Fprintf(st, "bye\n")
		ended.Store(true)
		return nil
	})
	s := &amanda.Server{Hosts: loopbackHosts(), Services: map[string]amanda.Handler{"amdumpd": waiter}}
	addr := startServer(t, s)
	p := dialRaw(t, addr)
	p.handshake()
	idle := dialRaw(t, addr) // connected, no request yet

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if !ended.Load() {
		t.Fatal("Shutdown returned before the session ended")
	}
	p.expect(499999, "bye\n")
	p.expect(499999, "")
	idle.expectEOF(time.Second)
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("still accepting after Shutdown")
	}
}

func TestShutdownTimeoutCancels(t *testing.T) {
	cancelled := make(chan struct{})
	stuck := amanda.HandlerFunc(func(ctx context.Context, call *amanda.Call) error {
		if _, err := call.Connect(ctx); err != nil {
			return err
		}
		<-ctx.Done()
		close(cancelled)
		return ctx.Err()
	})
	s := &amanda.Server{Hosts: loopbackHosts(), Services: map[string]amanda.Handler{"amdumpd": stuck}}
	addr := startServer(t, s)
	p := dialRaw(t, addr)
	p.handshake()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v", err)
	}
	select {
	case <-cancelled:
	default:
		t.Fatal("the service's context was not cancelled")
	}
}

func TestPeerVanishingCancelsService(t *testing.T) {
	cancelled := make(chan struct{})
	stuck := amanda.HandlerFunc(func(ctx context.Context, call *amanda.Call) error {
		if _, err := call.Connect(ctx); err != nil {
			return err
		}
		<-ctx.Done()
		close(cancelled)
		return nil
	})
	addr := startServer(t, &amanda.Server{Services: map[string]amanda.Handler{"amdumpd": stuck}})
	p := dialRaw(t, addr)
	p.handshake()
	p.nc.Close()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the service's context was not cancelled")
	}
}

func TestClientServer(t *testing.T) {
	addr := startServer(t, &amanda.Server{})
	d := &amanda.Dialer{User: "backup"}
	ctx := context.Background()
	cc, err := d.Dial(ctx, addr, amanda.NewRequest("", "amdumpd", amanda.Options{{Key: "features", Value: amanda.Amanda351Features}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if id, _ := cc.Reply().Stream("CTL"); id != amanda.CTLStreamID {
		t.Errorf("CTL = %d", id)
	}
	st, err := cc.Stream("CTL")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(st, "ping\n")
	line, err := bufio.NewReader(st).ReadString('\n')
	if err != nil || line != "PING localhost\n" {
		t.Fatalf("got %q, %v", line, err)
	}
	st.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := st.Read(make([]byte, 1)); !errors.Is(err, errDeadline()) {
		t.Errorf("read past the deadline: %v", err)
	}
	st.SetReadDeadline(time.Time{})
	fmt.Fprintf(st, "END\n")
	select {
	case <-st.PeerClosed():
	case <-time.After(5 * time.Second):
		t.Fatal("server did not close the stream")
	}
	if _, err := st.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read after the server's end: %v", err)
	}

	_, err = (&amanda.Dialer{User: "nobody"}).Dial(ctx, addr, amanda.NewRequest("", "amdumpd", nil))
	var re *amanda.RefusedError
	if !errors.As(err, &re) || !errors.Is(err, amanda.ErrRefused) || re.Type != amanda.NAK {
		t.Fatalf("Dial as nobody: %v", err)
	}
}

// A server that never ACKs: the client resends the REQ on the same
// handle, then gives up, as amservice does.
func TestClientResendsREQ(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		n := 0
		for {
			f, err := amanda.ReadFrame(nc, 0)
			if err != nil {
				got <- n
				return
			}
			if p, err := amanda.ParsePacket(f.Payload); err == nil && p.Type == amanda.REQ && f.Handle == 1 {
				n++
			}
		}
	}()
	d := &amanda.Dialer{User: "backup", AckTimeout: 30 * time.Millisecond, ReqTries: 3}
	_, err = d.Dial(context.Background(), ln.Addr().String(), amanda.NewRequest("", "amdumpd", nil))
	if err == nil || !strings.Contains(err.Error(), "timeout waiting for ACK") {
		t.Fatalf("Dial = %v", err)
	}
	if n := <-got; n != 3 {
		t.Errorf("server saw %d REQs, want 3", n)
	}
}

func TestDialContextCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err == nil {
			defer nc.Close()
			io.Copy(io.Discard, nc)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = (&amanda.Dialer{User: "backup"}).Dial(ctx, ln.Addr().String(), amanda.NewRequest("", "amdumpd", nil))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial = %v", err)
	}
}

// Many sessions at once, each with its own stream, and no goroutine left
// behind.
func TestConcurrentSessions(t *testing.T) {
	before := runtime.NumGoroutine()
	s := &amanda.Server{MaxSessions: 100}
	addr := startServer(t, s)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc, err := (&amanda.Dialer{User: "backup"}).Dial(context.Background(), addr, amanda.NewRequest("", "amdumpd", amanda.Options{{Key: "n", Value: fmt.Sprint(i)}}))
			if err != nil {
				errs <- err
				return
			}
			defer cc.Close()
			st, _ := cc.Stream("CTL")
			fmt.Fprintf(st, "n%d\nEND\n", i)
			b, err := io.ReadAll(st)
			if err != nil || string(b) != fmt.Sprintf("N%d localhost\n", i) {
				errs <- fmt.Errorf("session %d: %q %v", i, b, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines left (before: %d)\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

func errDeadline() error { return os.ErrDeadlineExceeded }
