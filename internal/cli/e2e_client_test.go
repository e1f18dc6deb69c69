package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdfast-backup/holdfast/internal/amanda"
	"github.com/holdfast-backup/holdfast/internal/amdumpd"
	"github.com/holdfast-backup/holdfast/internal/pgtest"
)

// throttledConfig makes the dumps of e.amandaConfig slow (MAX_RATE), so
// tests can act while one runs.
func (e *env) throttle(kbps int) {
	e.t.Helper()
	p := filepath.Join(e.configDir, "amtest.yaml")
	b, err := os.ReadFile(p)
	if err != nil {
		e.t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "    postgres:", fmt.Sprintf("    max_rate: %d\n    postgres:", kbps))
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

func TestClientAgainstServe(t *testing.T) {
	t.Parallel()
	pgtest.Require(t, 18)
	c := pgtest.Start(t, pgtest.Options{Version: 18})
	e := newEnv(t)
	e.amandaConfig(c)
	port := e.startServe()
	server := fmt.Sprintf("127.0.0.1:%d", port)

	out := e.must("client", "--server", server, "--hostname", "localhost", "amtest", "list")
	if out != "pg main\nsecond\n" {
		t.Errorf("client list: %q", out)
	}
	out = e.must("client", "--server", server, "amtest", "check", "second")
	if !strings.Contains(out, `OK localhost "second": wal_level is replica`) || strings.Contains(out, `"pg main"`) {
		t.Errorf("client check second: %q", out)
	}
	out = e.must("client", "--server", server, "amtest", "dump", "second")
	if !strings.Contains(out, "DONE second 0 ") {
		t.Errorf("client dump: %q", out)
	}
	if bs := e.backups("amtest"); len(bs) != 1 || bs[0].Disk != "second" {
		t.Fatalf("backups after client dump: %+v", bs)
	}
	e.expectFailure(ExitConfig, []string{"nosuch"}, "client", "--server", server, "amtest", "dump", "nosuch")
	e.expectFailure(ExitRefused, nil, "client", "--server", server, "--user", "mallory", "amtest", "list")
	e.expectFailure(ExitRefused, nil, "client", "--server", server, "../etc", "list")
}

func TestClientTLS(t *testing.T) {
	t.Parallel()
	pgtest.Require(t, 18)
	c := pgtest.Start(t, pgtest.Options{Version: 18})
	e := newEnv(t)
	e.amandaConfig(c)
	pki := newPKI(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	tlsPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	e.startServe("--tls-listen", fmt.Sprintf("127.0.0.1:%d", tlsPort), "--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--tls-client-ca", pki.ca)
	server := fmt.Sprintf("127.0.0.1:%d", tlsPort)
	out := e.must("client", "--server", server, "--tls", "--tls-ca", pki.ca, "--tls-cert", pki.clientCert, "--tls-key", pki.clientKey, "amtest", "list")
	if out != "pg main\nsecond\n" {
		t.Errorf("TLS list: %q", out)
	}
	out = e.must("client", "--server", server, "--tls", "--tls-ca", pki.ca, "--tls-cert", pki.clientCert, "--tls-key", pki.clientKey, "amtest", "dump", "pg main")
	if !strings.Contains(out, "DONE") {
		t.Errorf("TLS dump: %q", out)
	}
	e.must("verify", "amtest")
	// Without a client certificate the server refuses the handshake.
	if code, _, _ := e.run("client", "--server", server, "--tls", "--tls-ca", pki.ca, "amtest", "list"); code == 0 {
		t.Error("TLS without a client certificate was served")
	}
}

// TestConcurrentSessionsDuringDump: 50 sessions LIST and CHECK while one DUMP
// runs. Every CHECK is BUSY, every LIST answers, exactly one backup is
// committed, and the server's memory stays bounded.
func TestConcurrentSessionsDuringDump(t *testing.T) {
	t.Parallel()
	e, _ := slowDumps(t, 100000, 4096)
	addr := fmt.Sprintf("127.0.0.1:%d", e.startServe())
	ctx := context.Background()
	dumper := dialAmtest(t, ctx, addr)
	if err := dumper.Select(ctx, "pg main"); err != nil {
		t.Fatal(err)
	}
	dumpDone := make(chan error, 1)
	go func() {
		_, err := dumper.Dump(ctx, nil)
		dumpDone <- err
	}()
	if !e.waitWriting() {
		t.Fatal("the dump did not start writing within 30 s")
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.HeapInuse

	var wg sync.WaitGroup
	var mu sync.Mutex
	busy, listed := 0, 0
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cl := dialAmtest(t, ctx, addr)
			defer cl.Close(ctx)
			if i%2 == 0 {
				disks, err := cl.List(ctx)
				if err != nil || len(disks) != 2 {
					t.Errorf("LIST during DUMP: %v %v", disks, err)
					return
				}
				mu.Lock()
				listed++
				mu.Unlock()
				return
			}
			_, err := cl.Check(ctx)
			if !errors.Is(err, amdumpd.ErrBusy) {
				t.Errorf("CHECK during DUMP: %v, want BUSY", err)
				return
			}
			mu.Lock()
			busy++
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	runtime.ReadMemStats(&ms)
	if err := <-dumpDone; err != nil {
		t.Fatalf("DUMP: %v", err)
	}
	dumper.Close(ctx)
	if busy != 25 || listed != 25 {
		t.Errorf("%d BUSY CHECKs and %d LISTs, want 25 and 25", busy, listed)
	}
	if grew := int64(ms.HeapInuse) - int64(before); grew > 64<<20 {
		t.Errorf("heap grew by %d MiB during 50 sessions", grew>>20)
	}
	if bs := e.backups("amtest"); len(bs) != 1 {
		t.Fatalf("%d backups committed, want exactly 1", len(bs))
	}
	e.must("verify", "amtest")
}

// TestClientVanishesMidDump: the client drops its connection while the dump
// runs; the dump is cancelled and nothing is committed or left behind.
func TestClientVanishesMidDump(t *testing.T) {
	t.Parallel()
	e, c := slowDumps(t, 300000, 1024)
	addr := fmt.Sprintf("127.0.0.1:%d", e.startServe())
	ctx, cancel := context.WithCancel(context.Background())
	cl := dialAmtest(t, ctx, addr)
	writing := make(chan bool, 1)
	go func() {
		// Vanish once the backup is being written.
		writing <- e.waitWriting()
		cancel()
		cl.Close(context.Background())
	}()
	if _, err := cl.Dump(ctx, nil); err == nil {
		t.Fatal("DUMP finished although the client vanished")
	}
	if !<-writing {
		t.Fatal("the dump never started writing: the client did not vanish mid-dump")
	}
	// The server notices, cancels the engine, removes what it wrote.
	deadline := time.Now().Add(30 * time.Second)
	for {
		committed, left := e.repoState()
		if len(committed) == 0 && len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the client vanished: committed %v, leftovers %v", committed, left)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The lock is free again: a new dump runs. The files go before the
	// lock does (the job releases it once the engine has returned), so
	// BUSY may still answer for a moment, as it would to any client.
	e.amandaConfig(c) // unthrottled
	deadline = time.Now().Add(15 * time.Second)
	for {
		code, out, errOut := e.run("client", "--server", addr, "amtest", "dump", "second")
		if code == 0 {
			if !strings.Contains(out, "DONE second") {
				t.Fatalf("dump after the vanished client: %s", out)
			}
			return
		}
		if !strings.Contains(out+errOut, "busy") || time.Now().After(deadline) {
			t.Fatalf("dump after the vanished client: exit %d: %s%s", code, out, errOut)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// slowDumps starts a PostgreSQL 18 cluster with rows rows of data and an
// Amanda config whose dumps are throttled to kbps kB/s, so tests can act
// while one runs.
func slowDumps(t *testing.T, rows, kbps int) (*env, *pgtest.Cluster) {
	t.Helper()
	pgtest.Require(t, 18)
	c := pgtest.Start(t, pgtest.Options{Version: 18})
	c.Exec(t, "postgres", fmt.Sprintf(`CREATE TABLE t AS SELECT g, md5(g::text) FROM generate_series(1, %d) g`, rows))
	e := newEnv(t)
	e.amandaConfig(c)
	e.throttle(kbps)
	return e, c
}

// dialAmtest opens an amdumpd session on addr as this host's user and
// selects config amtest.
func dialAmtest(t *testing.T, ctx context.Context, addr string) *amdumpd.Client {
	t.Helper()
	cl, err := amdumpd.Dial(ctx, &amanda.Dialer{User: currentUser(t)}, addr, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Config(ctx, "amtest"); err != nil {
		t.Fatal(err)
	}
	return cl
}

// waitWriting waits up to 30 s until the repository shows a backup being
// written (the client of a DUMP sees nothing until it ends) and reports
// whether it did. It is safe to call from any goroutine.
func (e *env) waitWriting() bool {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, left := e.repoState(); len(left) > 0 {
			return true
		}
	}
	return false
}

// pki is a throwaway CA with a server certificate for 127.0.0.1 and a
// client certificate for the declared host localhost.
type pki struct{ ca, serverCert, serverKey, clientCert, clientKey string }

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "holdfast test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	issue := func(name string, serial int64, tmpl *x509.Certificate) (string, string) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kd, _ := x509.MarshalECPrivateKey(k)
		return write(name+".pem", "CERTIFICATE", der), write(name+".key", "EC PRIVATE KEY", kd)
	}
	p := pki{ca: write("ca.pem", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = issue("server", 2, &x509.Certificate{Subject: pkix.Name{CommonName: "holdfast"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	p.clientCert, p.clientKey = issue("client", 3, &x509.Certificate{Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return p
}

// TestServeShutdownCancelsDump: SIGTERM while a dump runs; once the
// shutdown timeout passes the dump is cancelled, nothing is committed or
// left behind, and serve exits cleanly.
func TestServeShutdownCancelsDump(t *testing.T) {
	t.Parallel()
	e, _ := slowDumps(t, 300000, 1024)
	port, stop := e.serve("--shutdown-timeout", "1s")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ctx := context.Background()
	cl := dialAmtest(t, ctx, addr)
	defer cl.Close(ctx)
	dumped := make(chan error, 1)
	go func() {
		_, err := cl.Dump(ctx, nil)
		dumped <- err
	}()
	if !e.waitWriting() {
		t.Fatal("the dump did not start writing within 30 s")
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d after SIGTERM", code)
	}
	if err := <-dumped; err == nil {
		t.Fatal("the dump reported success although it was cancelled")
	}
	e.expectCommitted(0)
}
