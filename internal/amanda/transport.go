package amanda

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"sync"
	"time"
)

// CTLStreamID is the stream id amandad gives the first stream of a
// connection (500000 - 1); the server uses it too, to be byte-identical.
const CTLStreamID = 499999

// Errors of the server's per-connection state machine.
var (
	ErrRepNotAcked = errors.New("amanda: REP was never acknowledged")
	ErrReplied     = errors.New("amanda: the request was already answered")
	errGarbage     = errors.New("amanda: peer sent a malformed packet")
)

// Call is one accepted request, handed to the service's Handler.
type Call struct {
	Peer    Peer
	Request Request
	// Auth is the transport's name as amandad's -auth= would say it:
	// "bsdtcp", or "ssl" over TLS. Services compare it with the REQ's
	// auth= option.
	Auth string

	t *transport
}

// Connect answers the request with REP "CONNECT CTL <id>" and returns
// the CTL stream once the client has acknowledged the REP. Data the
// client sends on the stream before its ACK is kept, not lost.
func (c *Call) Connect(ctx context.Context) (*Stream, error) {
	id := uint32(CTLStreamID)
	if c.t.handle == id {
		id--
	}
	st := c.t.c.stream(id)
	body := Reply{Streams: []StreamRef{{Name: "CTL", ID: int64(id)}}}.Encode()
	if err := c.t.reply(ctx, body); err != nil {
		return nil, err
	}
	select {
	case <-c.t.acked:
		c.t.setStream(st)
		return st, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	case <-c.t.c.done:
		return nil, c.t.c.Err()
	}
}

// Reject answers the request with a REP of ERROR lines (no streams), as
// amandad does for a service that refuses its arguments, and waits for
// the client's ACK.
func (c *Call) Reject(ctx context.Context, errs ...string) error {
	if err := c.t.reply(ctx, Reply{Errors: errs}.Encode()); err != nil {
		return err
	}
	select {
	case <-c.t.acked:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-c.t.c.done:
		return c.t.c.Err()
	}
}

// Draining is closed when the server shuts down gracefully: a service
// should finish the command it runs and end the session instead of
// waiting for the next one.
func (c *Call) Draining() <-chan struct{} { return c.t.srv.draining }

// repMsg carries a REP body from the handler to the state machine.
type repMsg struct {
	body string
	sent chan error
}

// transport is the server's state machine for one connection:
//
//	wait REQ --refused--> NAK, close
//	    |
//	    v ACK
//	run handler --REP--> wait ACK (REP resent every RepRetry) --> relay stream
//	    |                                                           |
//	    +--------------------- handler returns --------------------+--> close stream, linger, close
type transport struct {
	srv  *Server
	c    *conn
	peer Peer

	handle   uint32 // the client's packet handle
	replyMu  sync.Mutex
	replied  bool
	rep      chan repMsg
	acked    chan struct{} // closed at the client's ACK of the REP
	streamMu sync.Mutex
	st       *Stream
}

func (t *transport) setStream(st *Stream) {
	t.streamMu.Lock()
	t.st = st
	t.streamMu.Unlock()
}

func (t *transport) stream() *Stream {
	t.streamMu.Lock()
	defer t.streamMu.Unlock()
	return t.st
}

// reply hands the REP body to the state machine; only the first call
// counts.
func (t *transport) reply(ctx context.Context, body string) error {
	t.replyMu.Lock()
	if t.replied {
		t.replyMu.Unlock()
		return ErrReplied
	}
	t.replied = true
	t.replyMu.Unlock()
	m := repMsg{body: body, sent: make(chan error, 1)}
	select {
	case t.rep <- m:
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.c.done:
		return t.c.Err()
	}
	select {
	case err := <-m.sent:
		return err
	case <-t.c.done:
		return t.c.Err()
	}
}

func (t *transport) log(msg string, args ...any) {
	args = append([]any{"remote", t.peer.Addr.String(), "host", t.peer.Host, "user", t.peer.User}, args...)
	t.srv.Logger.Info(msg, args...)
}

func (t *transport) run() {
	s, c := t.srv, t.c
	timer := time.NewTimer(s.HandshakeTimeout)
	var f Frame
	select {
	case f = <-c.packets:
		timer.Stop()
	case <-c.done:
		timer.Stop()
		return
	case <-timer.C:
		t.log("amanda: no request before the handshake timeout")
		return
	case <-s.draining:
		timer.Stop()
		return
	}
	p, err := ParsePacket(f.Payload)
	if err != nil {
		t.log("amanda: garbage instead of a request", "err", err)
		return
	}
	if p.Type != REQ {
		// amandad closes a handle whose first packet is not a REQ.
		c.writeFrame(f.Handle, nil)
		t.log("amanda: first packet is not a REQ", "type", p.Type.String())
		return
	}
	t.handle = f.Handle
	req, handler, nak := t.authorize(p.Body)
	if nak != "" {
		t.log("amanda: request refused", "service", req.Service, "reason", nak)
		c.writePacket(t.handle, Packet{Type: NAK, Body: NAKBody(nak)})
		c.writeFrame(t.handle, nil)
		t.linger(nil)
		return
	}
	if err := c.writePacket(t.handle, Packet{Type: ACK}); err != nil {
		return
	}
	t.serve(req, handler)
}

// authorize applies amandad's checks in its order: source port, SERVICE
// line, SECURITY line, host and user (.amandahosts), arguments, service.
// It returns the NAK text of the first failure.
func (t *transport) authorize(body string) (Request, Handler, string) {
	s := t.srv
	res := s.Resolver
	if res == nil {
		res = net.DefaultResolver
	}
	ctx, cancel := context.WithTimeout(t.c.ctx, s.LookupTimeout)
	host, why := identify(ctx, s.Hosts, res, t.peer.Addr.Addr(), t.peer.TLS)
	cancel()
	name := t.peer.Addr.Addr().Unmap().String()
	if host != nil {
		name = host.Name
		t.peer.Host = host.Name
	}
	if s.RequireReservedPort && t.peer.Addr.Port() >= 1024 {
		return Request{}, nil, fmt.Sprintf("host %s: port %d not secure", name, t.peer.Addr.Port())
	}
	req, err := ParseRequest(body)
	if err != nil {
		return req, nil, "packet as no SERVICE line" // sic, as amandad says it
	}
	if req.User == "" {
		return req, nil, "no bsd SECURITY for P_REQ"
	}
	t.peer.User = req.User
	if host == nil {
		return req, nil, fmt.Sprintf("user %s from %s is not allowed to execute the service %s: %s", req.User, name, req.Service, why)
	}
	if !host.allowsUser(req.User) {
		return req, nil, fmt.Sprintf("user %s from %s is not allowed to execute the service %s: user %s is not among the users of host %s", req.User, name, req.Service, req.User, host.Name)
	}
	if req.Args == "" {
		return req, nil, "invalid REQ"
	}
	h := s.Services[req.Service]
	if h == nil {
		return req, nil, fmt.Sprintf("%s: invalid service", req.Service)
	}
	return req, h, ""
}

func (t *transport) serve(req Request, h Handler) {
	s, c := t.srv, t.c
	t.rep = make(chan repMsg)
	t.acked = make(chan struct{})
	auth := "bsdtcp"
	if t.peer.TLS != nil {
		auth = "ssl"
	}
	call := &Call{Peer: t.peer, Request: req, Auth: auth, t: t}

	handlerDone := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				handlerDone <- fmt.Errorf("amanda: service %s panicked: %v\n%s", req.Service, r, debug.Stack())
			}
		}()
		handlerDone <- h.ServeAmanda(c.ctx, call)
	}()

	var (
		repPayload []byte
		tries      int
		retry      = time.NewTimer(time.Hour)
		retryC     <-chan time.Time
		acked      bool
		finished   bool
	)
	retry.Stop()
	defer retry.Stop()
	sendREP := func() error {
		tries++
		retry.Reset(s.RepRetry)
		retryC = retry.C
		return c.writeFrame(t.handle, repPayload)
	}
	for {
		if finished && repPayload != nil && acked {
			break
		}
		select {
		case f := <-c.packets:
			if err := t.onPacket(f, repPayload, &acked, sendREP); err != nil {
				t.log("amanda: protocol error", "err", err)
				c.fail(err)
			}
			if acked && retryC != nil {
				retry.Stop()
				retryC = nil
			}
		case m := <-t.rep:
			p, err := AppendPacket(nil, Packet{Type: REP, Body: m.body})
			if err == nil {
				repPayload = p
				err = sendREP()
			}
			m.sent <- err
		case <-retryC:
			retryC = nil
			if tries >= s.RepTries {
				c.fail(ErrRepNotAcked)
				continue
			}
			sendREP()
		case err := <-handlerDone:
			finished = true
			handlerDone = nil
			if err != nil {
				t.log("amanda: service ended with an error", "service", req.Service, "err", err)
			}
			t.replyMu.Lock()
			replied := t.replied
			t.replied = true
			t.replyMu.Unlock()
			if !replied {
				p, _ := AppendPacket(nil, Packet{Type: REP, Body: Reply{Errors: []string{"service " + req.Service + " failed"}}.Encode()})
				repPayload = p
				sendREP()
			}
		case <-c.done:
			if handlerDone != nil {
				if err := <-handlerDone; err != nil {
					t.log("amanda: service ended with an error", "service", req.Service, "err", err)
				}
			}
			return
		}
	}
	if st := t.stream(); st != nil {
		st.Close()
		t.linger(st.PeerClosed())
		return
	}
	t.linger(nil)
}

// onPacket handles a frame that is not on the stream while a request is
// served. A duplicate REQ is answered again (ACK before the REP, the REP
// after it); the ACK of the REP enables the stream, and the packet handle
// is then closed as amandad does.
func (t *transport) onPacket(f Frame, rep []byte, acked *bool, resend func() error) error {
	c := t.c
	if f.IsClose() {
		return nil // the client closing its packet handle, or any other
	}
	p, err := ParsePacket(f.Payload)
	if err != nil {
		return fmt.Errorf("%w on handle %d: %v", errGarbage, f.Handle, err)
	}
	if f.Handle != t.handle {
		if p.Type == REQ {
			c.writePacket(f.Handle, Packet{Type: NAK, Body: NAKBody("only one request per connection is served")})
			return c.writeFrame(f.Handle, nil)
		}
		return fmt.Errorf("%w: %s on unknown handle %d", errGarbage, p.Type, f.Handle)
	}
	switch p.Type {
	case REQ:
		if rep == nil {
			return c.writePacket(t.handle, Packet{Type: ACK})
		}
		if !*acked {
			return c.writeFrame(t.handle, rep)
		}
		return nil
	case ACK:
		if rep != nil && !*acked {
			*acked = true
			close(t.acked)
			return c.writeFrame(t.handle, nil)
		}
		return nil
	default:
		c.writePacket(t.handle, Packet{Type: NAK, Body: NAKBody("unexpected packet type " + p.Type.String())})
		return nil
	}
}

// linger waits, up to LingerTimeout, for the peer to close: its end of
// the stream (peerClosed) or the whole connection; a draining server does
// not wait. Packets are drained meanwhile so the reader never blocks.
func (t *transport) linger(peerClosed <-chan struct{}) {
	timer := time.NewTimer(t.srv.LingerTimeout)
	defer timer.Stop()
	for {
		select {
		case <-t.c.packets:
		case <-peerClosed:
			return
		case <-t.c.done:
			return
		case <-timer.C:
			return
		case <-t.srv.draining:
			return
		}
	}
}
