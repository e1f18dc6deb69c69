package pgrepl

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
)

// sslRequest is the 8-byte message that asks a server for TLS: length 8,
// then the code 80877103.
var sslRequest = []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}

// preferOnOneSocket makes sslmode=prefer (libpq's default, and so the
// default of a connection string without sslmode) cost one connection, as
// it does with libpq.
//
// pgconn implements prefer as two attempts: one with TLS and, when the
// server refuses TLS, a second dial without it. Against a server that has
// no TLS every connection then costs a second TCP handshake and a second
// backend fork: 10-20 ms on the project's VM, two or three times per dump.
// libpq asks for TLS on the socket it has and goes on in plaintext on the
// same socket when the server says no.
//
// When cfg is exactly that pair (one host, TLS then plaintext, default
// certificate mode, no direct TLS negotiation), the TLS attempt is changed
// to do the asking itself after the dial (AfterNetConnect): TLS when the
// server says yes, the same socket in plaintext when it says no. The
// plaintext attempt stays behind it for a server that says yes and then
// fails the handshake, where pgconn (and libpq) try again without TLS;
// that attempt is told apart by its address having been dialed before.
// Any other shape of config is left to pgconn.
func preferOnOneSocket(cfg *pgconn.Config) {
	if cfg.TLSConfig == nil || len(cfg.Fallbacks) != 1 || cfg.SSLNegotiation == "direct" {
		return
	}
	if fb := cfg.Fallbacks[0]; fb.TLSConfig != nil || fb.Host != cfg.Host || fb.Port != cfg.Port {
		return
	}
	if m := cfg.SSLCertMode; m != "" && m != "allow" {
		return // "require" and "disable" change the TLS config per attempt, in pgconn
	}
	tlsConfig := cfg.TLSConfig
	cfg.TLSConfig = nil
	dialed := map[string]bool{} // pgconn makes its attempts one after another
	next := cfg.AfterNetConnect
	cfg.AfterNetConnect = func(ctx context.Context, c *pgconn.Config, conn net.Conn) (net.Conn, error) {
		addr := conn.RemoteAddr().String()
		if !dialed[addr] {
			dialed[addr] = true
			var err error
			if conn, err = askForTLS(ctx, conn, tlsConfig); err != nil {
				return conn, err // pgconn closes it; never nil
			}
		}
		if next != nil {
			return next(ctx, c, conn)
		}
		return conn, nil
	}
}

// askForTLS sends the SSLRequest on conn and returns a TLS connection
// over it (handshake done) if the server agrees, conn itself if it
// refuses. ctx bounds the exchange. On error the returned connection is
// the one to close.
func askForTLS(ctx context.Context, conn net.Conn, config *tls.Config) (net.Conn, error) {
	dt, release := watchDeadline(ctx, conn.SetDeadline) // ctx's deadline ends it too
	answer := make([]byte, 1)
	_, err := conn.Write(sslRequest)
	if err == nil {
		_, err = io.ReadFull(conn, answer)
	}
	var tconn *tls.Conn
	if err == nil && answer[0] == 'S' {
		tconn = tls.Client(conn, config)
		err = tconn.HandshakeContext(ctx)
	}
	release()
	if dt.interrupted() {
		return conn, fmt.Errorf("ask for TLS: %w", context.Cause(ctx))
	}
	switch {
	case err != nil:
		return conn, fmt.Errorf("ask for TLS: %w", err)
	case tconn != nil:
		return tconn, nil
	case answer[0] == 'N':
		return conn, nil
	}
	return conn, errors.New("ask for TLS: the server answered neither yes nor no")
}
