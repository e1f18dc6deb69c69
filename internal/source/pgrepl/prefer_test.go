package pgrepl_test

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdfast-backup/holdfast/internal/source/pgrepl"
)

// withSSLMode is the fake server's connection string with sslmode
// replaced (the last keyword wins).
func (f *fakeServer) withSSLMode(mode string) string {
	return f.conninfo() + " sslmode=" + mode
}

func (f *fakeServer) counts() (accepted, sslRequests, tlsStartups int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.accepted, f.sslRequests, f.tlsStartups
}

func fakeTLSConfig(t *testing.T) *tls.Config {
	t.Helper()
	certFile, keyFile := writeCert(t, t.TempDir())
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}
}

// A server without TLS answers the SSLRequest with N: sslmode=prefer (and
// no sslmode at all) goes on in plaintext on the same connection, as libpq
// does, instead of dialing a second time.
func TestPreferWithoutTLSUsesOneConnection(t *testing.T) {
	for _, ci := range []func(*fakeServer) string{
		func(f *fakeServer) string { return f.withSSLMode("prefer") },
		func(f *fakeServer) string { return strings.Replace(f.conninfo(), " sslmode=disable", "", 1) },
	} {
		f := newFakeServer(t)
		c, err := pgrepl.Connect(context.Background(), ci(f))
		if err != nil {
			t.Fatal(err)
		}
		c.Close(context.Background())
		accepted, sslRequests, tlsStartups := f.counts()
		if accepted != 1 || sslRequests != 1 || tlsStartups != 0 {
			t.Errorf("%s: %d connections, %d SSLRequests, %d startups over TLS; want 1, 1, 0", ci(f), accepted, sslRequests, tlsStartups)
		}
		if pgrepl.UsesTLS(c) {
			t.Errorf("%s: connection uses TLS; the server has none", ci(f))
		}
	}
}

// A server with TLS gets it under prefer, on the first connection.
func TestPreferWithTLSUsesIt(t *testing.T) {
	f := newFakeServer(t)
	f.tlsConfig = fakeTLSConfig(t)
	c, err := pgrepl.Connect(context.Background(), f.withSSLMode("prefer"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	accepted, sslRequests, tlsStartups := f.counts()
	if accepted != 1 || sslRequests != 1 || tlsStartups != 1 || !pgrepl.UsesTLS(c) {
		t.Errorf("%d connections, %d SSLRequests, %d startups over TLS, TLS %v; want 1, 1, 1, true", accepted, sslRequests, tlsStartups, pgrepl.UsesTLS(c))
	}
}

// A server that says yes to TLS and then fails the handshake gets a second
// connection in plaintext, without a second SSLRequest: prefer's fallback,
// as in libpq and pgconn.
func TestPreferFallsBackAfterFailedHandshake(t *testing.T) {
	f := newFakeServer(t)
	f.breakTLS = true
	c, err := pgrepl.Connect(context.Background(), f.withSSLMode("prefer"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close(context.Background())
	accepted, sslRequests, tlsStartups := f.counts()
	if accepted != 2 || sslRequests != 1 || tlsStartups != 0 || pgrepl.UsesTLS(c) {
		t.Errorf("%d connections, %d SSLRequests, %d startups over TLS, TLS %v; want 2, 1, 0, false", accepted, sslRequests, tlsStartups, pgrepl.UsesTLS(c))
	}
}

// The other modes keep pgconn's behaviour: require refuses a server
// without TLS, disable never asks.
func TestOtherSSLModesUnchanged(t *testing.T) {
	f := newFakeServer(t)
	_, err := pgrepl.Connect(context.Background(), f.withSSLMode("require"))
	if err == nil {
		t.Fatal("sslmode=require connected to a server without TLS")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error shows the password: %v", err)
	}
	f2 := newFakeServer(t)
	c, err := pgrepl.Connect(context.Background(), f2.withSSLMode("disable"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close(context.Background())
	if accepted, sslRequests, _ := f2.counts(); accepted != 1 || sslRequests != 0 {
		t.Errorf("sslmode=disable: %d connections, %d SSLRequests; want 1, 0", accepted, sslRequests)
	}
}

// A server that never answers the SSLRequest does not hold Connect past
// its context.
func TestPreferAskHonoursContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var held []net.Conn // read nothing, answer nothing
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	accepted := make(chan struct{}, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_, err = pgrepl.Connect(ctx, "host=127.0.0.1 port="+portOf(ln)+" user=backup sslmode=prefer")
	if err == nil {
		t.Fatal("connected to a server that never answered")
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("Connect took %v with a 300 ms context", d)
	}
	select {
	case <-accepted: // the wait was in the TLS request, not in the dial
	default:
		t.Error("the server never saw the connection")
	}
	t.Logf("error: %v", err)
}

func portOf(ln net.Listener) string {
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}
