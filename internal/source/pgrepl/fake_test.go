package pgrepl_test

import (
	"crypto/tls"
	"errors"
	"fmt"

	"net"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// fakeServer is a scripted walsender on a loopback TCP port: it does the
// startup exchange, then hands each Query to a handler. It serves failure
// paths and timing that a real server cannot be made to produce on demand.
type fakeServer struct {
	t  *testing.T
	ln net.Listener

	// startupError, if set, is sent (FATAL) instead of AuthenticationOk.
	startupError *pgproto3.ErrorResponse
	// serverVersion is the server_version parameter status.
	serverVersion string
	// versionNum answers SHOW server_version_num; empty: an ERROR.
	versionNum string
	// handle answers one query; returning an error ends the session.
	handle func(s *session, query string) error

	// tlsConfig, if set, makes the server accept TLS (answer 'S' to an
	// SSLRequest); breakTLS makes it answer 'S' on the first connection
	// and then hang up instead of the handshake.
	tlsConfig *tls.Config
	breakTLS  bool

	mu          sync.Mutex
	startups    []map[string]string
	accepted    int // connections accepted
	sslRequests int // SSLRequests received
	tlsStartups int // startup messages that came over TLS
	wg          sync.WaitGroup
}

// session is one client connection on the fake server.
type session struct {
	be   *pgproto3.Backend
	conn net.Conn
}

func (s *session) send(msgs ...pgproto3.BackendMessage) error {
	for _, m := range msgs {
		s.be.Send(m)
	}
	return s.be.Flush()
}

func (s *session) receive() (pgproto3.FrontendMessage, error) { return s.be.Receive() }

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{t: t, ln: ln, serverVersion: "15.18 (Debian 15.18-0+deb12u1)", versionNum: "150018"}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(func() {
		ln.Close()
		f.wg.Wait()
	})
	return f
}

// conninfo is a connection string for the fake server, with a password
// that must never show up in an error.
func (f *fakeServer) conninfo() string {
	addr := f.ln.Addr().(*net.TCPAddr)
	return fmt.Sprintf("host=127.0.0.1 port=%d user=backup password=hunter2-secret sslmode=disable connect_timeout=5", addr.Port)
}

func (f *fakeServer) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.accepted++
		first := f.accepted == 1
		f.mu.Unlock()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer c.Close()
			f.serve(c, first)
		}()
	}
}

func (f *fakeServer) serve(c net.Conn, first bool) {
	s := &session{be: pgproto3.NewBackend(c, c), conn: c}
	overTLS := false
	for {
		sm, err := s.be.ReceiveStartupMessage()
		if err != nil {
			return
		}
		if _, ok := sm.(*pgproto3.SSLRequest); ok {
			f.mu.Lock()
			f.sslRequests++
			f.mu.Unlock()
			switch {
			case f.breakTLS && first:
				c.Write([]byte("S"))
				return
			case f.tlsConfig != nil && !overTLS:
				if _, err := c.Write([]byte("S")); err != nil {
					return
				}
				tc := tls.Server(c, f.tlsConfig)
				if err := tc.Handshake(); err != nil {
					f.t.Errorf("fake server: TLS handshake: %v", err)
					return
				}
				c, overTLS = tc, true
				s = &session{be: pgproto3.NewBackend(tc, tc), conn: tc}
			default:
				if _, err := c.Write([]byte("N")); err != nil {
					return
				}
			}
			continue
		}
		st, ok := sm.(*pgproto3.StartupMessage)
		if !ok {
			return
		}
		f.mu.Lock()
		f.startups = append(f.startups, st.Parameters)
		if overTLS {
			f.tlsStartups++
		}
		f.mu.Unlock()
		break
	}
	if f.startupError != nil {
		s.send(f.startupError)
		return
	}
	if err := s.send(&pgproto3.AuthenticationOk{},
		&pgproto3.ParameterStatus{Name: "server_version", Value: f.serverVersion},
		&pgproto3.BackendKeyData{ProcessID: 4242, SecretKey: []byte{1, 2, 3, 4}},
		&pgproto3.ReadyForQuery{TxStatus: 'I'}); err != nil {
		return
	}
	for {
		m, err := s.receive()
		if err != nil {
			return
		}
		switch m := m.(type) {
		case *pgproto3.Terminate:
			return
		case *pgproto3.Query:
			if err := f.answer(s, m.String); err != nil {
				return
			}
		default:
			f.t.Errorf("fake server: unexpected %T", m)
			return
		}
	}
}

func (f *fakeServer) answer(s *session, q string) error {
	if q == "SHOW server_version_num" {
		if f.versionNum == "" {
			return s.send(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42601", Message: "syntax error"},
				&pgproto3.ReadyForQuery{TxStatus: 'I'})
		}
		return s.send(showResult("server_version_num", f.versionNum)...)
	}
	if f.handle == nil {
		return s.send(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42601", Message: "unexpected " + q},
			&pgproto3.ReadyForQuery{TxStatus: 'I'})
	}
	return f.handle(s, q)
}

func showResult(name, value string) []pgproto3.BackendMessage {
	return []pgproto3.BackendMessage{
		&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte(name), DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1}}},
		&pgproto3.DataRow{Values: [][]byte{[]byte(value)}},
		&pgproto3.CommandComplete{CommandTag: []byte("SHOW")},
		&pgproto3.ReadyForQuery{TxStatus: 'I'},
	}
}

func identifySystem(sysid string) []pgproto3.BackendMessage {
	return []pgproto3.BackendMessage{
		&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{
			{Name: []byte("systemid"), DataTypeOID: 25}, {Name: []byte("timeline"), DataTypeOID: 23},
			{Name: []byte("xlogpos"), DataTypeOID: 25}, {Name: []byte("dbname"), DataTypeOID: 25}}},
		&pgproto3.DataRow{Values: [][]byte{[]byte(sysid), []byte("1"), []byte("0/50000D8"), nil}},
		&pgproto3.CommandComplete{CommandTag: []byte("IDENTIFY_SYSTEM")},
		&pgproto3.ReadyForQuery{TxStatus: 'I'},
	}
}

// errDone ends a fake session on purpose.
var errDone = errors.New("done")

// drainCopyIn reads CopyData until CopyDone or CopyFail and returns the
// bytes.
func (s *session) drainCopyIn() ([]byte, bool, error) {
	var b strings.Builder
	for {
		m, err := s.receive()
		if err != nil {
			return nil, false, err
		}
		switch m := m.(type) {
		case *pgproto3.CopyData:
			b.Write(m.Data)
		case *pgproto3.CopyDone:
			return []byte(b.String()), true, nil
		case *pgproto3.CopyFail:
			return []byte(b.String()), false, nil
		default:
			return nil, false, fmt.Errorf("unexpected %T in COPY IN", m)
		}
	}
}
