package amanda

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("amanda: server closed")

// Defaults of the Server's limits.
const (
	DefaultMaxSessions      = 64
	DefaultMaxFrameSize     = 64 * 1024
	DefaultHandshakeTimeout = 30 * time.Second
	DefaultWriteTimeout     = 2 * time.Minute
	DefaultRepRetry         = 10 * time.Second
	DefaultRepTries         = 5
	DefaultLingerTimeout    = 5 * time.Second
	DefaultLookupTimeout    = 5 * time.Second
)

// Handler serves the requests for one service.
type Handler interface {
	// ServeAmanda is called once the REQ was acknowledged and the peer
	// authorised. It answers with exactly one of call.Connect or
	// call.Reject; if it returns without doing either, the client gets
	// "ERROR service <name> failed". ctx ends when the connection does
	// (the peer vanished, or a forced shutdown).
	ServeAmanda(ctx context.Context, call *Call) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, call *Call) error

// ServeAmanda calls f.
func (f HandlerFunc) ServeAmanda(ctx context.Context, call *Call) error { return f(ctx, call) }

// Server is an amandad replacement: it accepts bsdtcp connections (plain
// TCP, or TLS when TLSConfig is set), answers one REQ per connection for
// the services it has, and relays the service's stream. The zero value of
// every limit means its default. Fields must not change after Serve.
type Server struct {
	Hosts    []Host             // the peers served; anyone else is refused
	Services map[string]Handler // by service name, e.g. "amdumpd"

	// RequireReservedPort refuses requests from source ports >= 1024, as
	// bsdtcp does. Over TLS it applies to the TCP port too.
	RequireReservedPort bool
	// TLSConfig, when set, makes the server speak TLS. Set ClientAuth and
	// ClientCAs to accept client certificates: a verified certificate
	// identifies the peer by its names (see Host.Name).
	TLSConfig *tls.Config
	// Resolver identifies hosts declared without addresses; nil means
	// net.DefaultResolver.
	Resolver Resolver

	MaxSessions      int           // concurrent connections served (DefaultMaxSessions)
	MaxFrameSize     int           // largest frame payload accepted (DefaultMaxFrameSize; at most MaxFrameSize)
	MaxStreamBuffer  int           // unread bytes buffered per stream (MaxFrameSize)
	HandshakeTimeout time.Duration // TLS handshake and arrival of the REQ
	WriteTimeout     time.Duration // one frame write
	RepRetry         time.Duration // REP resent when not acknowledged after this long
	RepTries         int           // REP sends before giving up
	LingerTimeout    time.Duration // wait for the peer's close after ours
	LookupTimeout    time.Duration // DNS lookups of one identification

	// Logger receives one record per refused request and per failed
	// session; nil discards.
	Logger *slog.Logger

	initOnce sync.Once
	sem      chan struct{} // session slots
	rejects  chan struct{} // slots for answering "too many sessions"
	base     context.Context
	cancel   context.CancelCauseFunc
	draining chan struct{}

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	closed    bool
	drainOnce sync.Once
	wg        sync.WaitGroup
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		if s.MaxSessions <= 0 {
			s.MaxSessions = DefaultMaxSessions
		}
		if s.MaxFrameSize <= 0 {
			s.MaxFrameSize = DefaultMaxFrameSize
		}
		s.MaxFrameSize = min(s.MaxFrameSize, MaxFrameSize)
		if s.MaxStreamBuffer < s.MaxFrameSize {
			s.MaxStreamBuffer = s.MaxFrameSize
		}
		setDefault(&s.HandshakeTimeout, DefaultHandshakeTimeout)
		setDefault(&s.WriteTimeout, DefaultWriteTimeout)
		setDefault(&s.RepRetry, DefaultRepRetry)
		setDefault(&s.LingerTimeout, DefaultLingerTimeout)
		setDefault(&s.LookupTimeout, DefaultLookupTimeout)
		if s.RepTries <= 0 {
			s.RepTries = DefaultRepTries
		}
		if s.Logger == nil {
			s.Logger = slog.New(slog.DiscardHandler)
		}
		s.sem = make(chan struct{}, s.MaxSessions)
		s.rejects = make(chan struct{}, 8)
		s.base, s.cancel = context.WithCancelCause(context.Background())
		s.draining = make(chan struct{})
		s.listeners = make(map[net.Listener]struct{})
	})
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}

// Serve accepts connections on ln until Shutdown or Close, and returns
// ErrServerClosed then. ln is closed when Serve returns.
func (s *Server) Serve(ln net.Listener) error {
	s.init()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			if retryableAccept(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("amanda: accept: %w", err)
		}
		backoff = 0
		select {
		case s.sem <- struct{}{}:
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() { <-s.sem }()
				s.serveConn(nc)
			}()
		default:
			s.refuseBusy(nc)
		}
	}
}

// retryableAccept keeps Serve running on errors that a busy machine
// produces (out of file descriptors, an aborted connection).
func retryableAccept(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Shutdown stops accepting, ends connections that have no running
// service, tells running services to finish (Call.Draining) and waits
// for them. When ctx ends first, the remaining connections are cut
// (their services' contexts are cancelled) and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.stopListening()
	s.drainOnce.Do(func() { close(s.draining) })
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.cancel(ErrServerClosed)
		<-done
		return ctx.Err()
	}
}

// Close cuts every connection at once and waits for the sessions to end.
func (s *Server) Close() error {
	s.init()
	s.stopListening()
	s.drainOnce.Do(func() { close(s.draining) })
	s.cancel(ErrServerClosed)
	s.wg.Wait()
	return nil
}

func (s *Server) stopListening() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
}

// refuseBusy answers a connection beyond MaxSessions with a NAK, if a
// REQ arrives quickly and a reject slot is free; otherwise it just closes.
func (s *Server) refuseBusy(nc net.Conn) {
	select {
	case s.rejects <- struct{}{}:
	default:
		nc.Close()
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { <-s.rejects }()
		defer nc.Close()
		s.Logger.Warn("amanda: too many sessions", "remote", nc.RemoteAddr().String())
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		if s.TLSConfig != nil {
			tc := tls.Server(nc, s.TLSConfig)
			if tc.Handshake() != nil {
				return
			}
			nc = tc
		}
		f, err := ReadFrame(nc, s.MaxFrameSize)
		if err != nil {
			return
		}
		if p, err := ParsePacket(f.Payload); err != nil || p.Type != REQ {
			return
		}
		nak, _ := AppendPacket(nil, Packet{Type: NAK, Body: NAKBody("too many sessions on the server; retry later")})
		nc.Write(AppendFrame(AppendFrame(nil, f.Handle, nak), f.Handle, nil))
	}()
}

func remoteAddrPort(nc net.Conn) netip.AddrPort {
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(nc.RemoteAddr().String())
	return ap
}

func (s *Server) serveConn(nc net.Conn) {
	remote := remoteAddrPort(nc)
	var cs *tls.ConnectionState
	if s.TLSConfig != nil {
		tc := tls.Server(nc, s.TLSConfig)
		hctx, cancel := context.WithTimeout(s.base, s.HandshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			s.Logger.Info("amanda: TLS handshake failed", "remote", remote.String(), "err", err)
			return
		}
		st := tc.ConnectionState()
		cs = &st
		nc = tc
	}
	c := newConn(s.base, nc, s.MaxFrameSize, s.MaxStreamBuffer, s.WriteTimeout)
	defer c.fail(ErrConnClosed)
	go c.readLoop()
	t := &transport{srv: s, c: c, peer: Peer{Addr: remote, TLS: cs}}
	t.run()
}
