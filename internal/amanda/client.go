package amanda

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os/user"
	"strings"
	"syscall"
	"time"
)

// ErrRefused is matched (errors.Is) by every *RefusedError.
var ErrRefused = errors.New("amanda: request refused")

// ErrNoReservedPort means every reserved source port was busy or could
// not be bound (binding one needs root or CAP_NET_BIND_SERVICE).
var ErrNoReservedPort = errors.New("amanda: no reserved source port available")

// RefusedError is a server's refusal: a NAK, or a REP of ERROR lines.
type RefusedError struct {
	Type  PacketType // NAK or REP
	Lines []string   // the ERROR texts, without "ERROR "
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("amanda: request refused (%s): %s", e.Type, strings.Join(e.Lines, "; "))
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// Defaults of the Dialer, from amservice's own.
const (
	DefaultConnectTimeout = 20 * time.Second
	DefaultAckTimeout     = 10 * time.Second
	DefaultReqTries       = 3
	DefaultRepTimeout     = 60 * time.Second
)

// Dialer opens client connections to an amandad (or Holdfast) server and
// sends one REQ. The zero value dials plain bsdtcp from any source port
// and claims the current user's login name.
type Dialer struct {
	// User is the SECURITY USER claim; empty means the current user.
	User string
	// ReservedPort binds a source port in 512..1023, as bsdtcp servers
	// demand; it needs root or CAP_NET_BIND_SERVICE.
	ReservedPort bool
	// TLSConfig, when set, wraps the connection in TLS.
	TLSConfig *tls.Config

	ConnectTimeout time.Duration // TCP connect and TLS handshake
	AckTimeout     time.Duration // the REQ is resent when not acknowledged after this long
	ReqTries       int           // REQ sends before giving up
	RepTimeout     time.Duration // wait for the REP after the ACK
	MaxFrameSize   int           // largest frame accepted (MaxFrameSize)
	WriteTimeout   time.Duration // one frame write (none)
}

// ClientConn is a client connection whose request was answered with a
// CONNECT REP: its streams are open.
type ClientConn struct {
	c     *conn
	reply Reply
}

// Reply returns the REP the server sent.
func (cc *ClientConn) Reply() Reply { return cc.reply }

// Stream returns the stream the REP announced under name (e.g. "CTL").
func (cc *ClientConn) Stream(name string) (*Stream, error) {
	id, ok := cc.reply.Stream(name)
	if !ok || id <= 0 || id > 1<<32-1 {
		return nil, fmt.Errorf("amanda: REP has no valid stream %s", name)
	}
	return cc.c.stream(uint32(id)), nil
}

// Done is closed when the connection has ended.
func (cc *ClientConn) Done() <-chan struct{} { return cc.c.done }

// Close closes the TCP connection.
func (cc *ClientConn) Close() error {
	cc.c.fail(ErrConnClosed)
	return nil
}

// packetHandle is the handle the client's REQ goes on, as amservice's first.
const packetHandle = 1

// Dial connects to addr, sends req (with d.User, or the current user, when
// req.User is empty) and waits for the reply, following
// amservice: the REQ is resent every AckTimeout until ACKed (ReqTries
// sends), the REP is ACKed before any stream is used. A NAK or an ERROR
// REP is returned as *RefusedError.
func (d *Dialer) Dial(ctx context.Context, addr string, req Request) (*ClientConn, error) {
	if req.User == "" {
		req.User = d.User
	}
	if req.User == "" {
		u, err := user.Current()
		if err != nil {
			return nil, fmt.Errorf("amanda: current user: %w", err)
		}
		req.User = u.Username
	}
	body, err := req.Encode()
	if err != nil {
		return nil, err
	}
	nc, err := d.dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	maxFrame := d.MaxFrameSize
	if maxFrame <= 0 || maxFrame > MaxFrameSize {
		maxFrame = MaxFrameSize
	}
	c := newConn(context.Background(), nc, maxFrame, maxFrame, d.WriteTimeout)
	go c.readLoop()
	stop := context.AfterFunc(ctx, func() { c.fail(context.Cause(ctx)) })
	defer stop()

	reply, err := d.handshake(c, body)
	if err != nil {
		c.fail(err)
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, err
	}
	cc := &ClientConn{c: c, reply: reply}
	go cc.drainPackets()
	return cc, nil
}

func (d *Dialer) handshake(c *conn, body string) (Reply, error) {
	ackTimeout := orDefault(d.AckTimeout, DefaultAckTimeout)
	repTimeout := orDefault(d.RepTimeout, DefaultRepTimeout)
	tries := d.ReqTries
	if tries <= 0 {
		tries = DefaultReqTries
	}
	if err := c.writePacket(packetHandle, Packet{Type: REQ, Body: body}); err != nil {
		return Reply{}, err
	}
	sent := 1
	timer := time.NewTimer(ackTimeout)
	defer timer.Stop()
	acked := false
	for {
		select {
		case f := <-c.packets:
			if f.Handle != packetHandle || f.IsClose() {
				continue // amservice drops frames nobody reads
			}
			p, err := ParsePacket(f.Payload)
			if err != nil {
				return Reply{}, fmt.Errorf("amanda: reply: %w", err)
			}
			switch p.Type {
			case ACK:
				if !acked {
					acked = true
					timer.Reset(repTimeout)
				}
			case NAK:
				r := ParseReply(p.Body)
				return Reply{}, &RefusedError{Type: NAK, Lines: append(r.Errors, r.Lines...)}
			case REP:
				r := ParseReply(p.Body)
				// Streams are registered before the ACK, which lets the
				// server send on them. The ACK goes out before any stream
				// data of ours: amandad would take early stream data for a
				// new packet and kill the stream.
				if len(r.Errors) == 0 {
					for _, s := range r.Streams {
						if s.ID > 0 && s.ID <= 1<<32-1 {
							c.stream(uint32(s.ID))
						}
					}
				}
				if err := c.writePacket(packetHandle, Packet{Type: ACK}); err != nil {
					return Reply{}, err
				}
				if len(r.Errors) > 0 {
					return Reply{}, &RefusedError{Type: REP, Lines: r.Errors}
				}
				return r, nil
			}
		case <-timer.C:
			if acked {
				return Reply{}, errors.New("amanda: timeout waiting for REP")
			}
			if sent >= tries {
				return Reply{}, errors.New("amanda: timeout waiting for ACK")
			}
			if err := c.writePacket(packetHandle, Packet{Type: REQ, Body: body}); err != nil {
				return Reply{}, err
			}
			sent++
			timer.Reset(ackTimeout)
		case <-c.done:
			return Reply{}, c.Err()
		}
	}
}

// drainPackets keeps the reader going after the handshake: a repeated REP
// (our ACK was slow) is ACKed again, everything else is dropped.
func (cc *ClientConn) drainPackets() {
	for {
		select {
		case f := <-cc.c.packets:
			if f.Handle != packetHandle || f.IsClose() {
				continue
			}
			if p, err := ParsePacket(f.Payload); err == nil && p.Type == REP {
				cc.c.writePacket(packetHandle, Packet{Type: ACK})
			}
		case <-cc.c.done:
			return
		}
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func (d *Dialer) dial(ctx context.Context, addr string) (net.Conn, error) {
	timeout := orDefault(d.ConnectTimeout, DefaultConnectTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var nc net.Conn
	var err error
	if d.ReservedPort {
		nc, err = dialReserved(ctx, addr)
	} else {
		var nd net.Dialer
		nc, err = nd.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("amanda: connect %s: %w", addr, err)
	}
	if d.TLSConfig != nil {
		cfg := d.TLSConfig.Clone()
		if cfg.ServerName == "" {
			if host, _, err := net.SplitHostPort(addr); err == nil {
				cfg.ServerName = host
			}
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("amanda: TLS handshake with %s: %w", addr, err)
		}
		nc = tc
	}
	return nc, nil
}

// dialReserved connects from the first free port of 1023 down to 512.
func dialReserved(ctx context.Context, addr string) (net.Conn, error) {
	var last error
	for port := 1023; port >= 512; port-- {
		nd := net.Dialer{
			LocalAddr: &net.TCPAddr{Port: port},
			Control: func(network, address string, rc syscall.RawConn) error {
				var serr error
				err := rc.Control(func(fd uintptr) {
					serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
				})
				if err != nil {
					return err
				}
				return serr
			},
		}
		nc, err := nd.DialContext(ctx, "tcp", addr)
		if err == nil {
			return nc, nil
		}
		last = err
		if ctx.Err() != nil {
			return nil, err
		}
		if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
			return nil, fmt.Errorf("%w: %v", ErrNoReservedPort, err)
		}
		if !errors.Is(err, syscall.EADDRINUSE) && !errors.Is(err, syscall.EADDRNOTAVAIL) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%w: %v", ErrNoReservedPort, last)
}
