package amanda_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/holdfast-backup/holdfast/internal/amanda"
)

// testCA issues certificates for the TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "holdfast test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

func (ca *testCA) issue(t *testing.T, client bool, dns ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	usage := x509.ExtKeyUsageServerAuth
	if client {
		usage = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: dns[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: dns, ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if !client {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestTLS(t *testing.T) {
	ca := newCA(t)
	hosts := []amanda.Host{
		{Name: "localhost", Addresses: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Users: []string{"backup"}},
		{Name: "db1", Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, Users: []string{"backup"}},
	}
	who := amanda.HandlerFunc(func(ctx context.Context, call *amanda.Call) error {
		st, err := call.Connect(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(st, "%s %s\n", call.Peer.Host, call.Auth)
		return nil
	})
	srv := &amanda.Server{
		Hosts:    hosts,
		Services: map[string]amanda.Handler{"amdumpd": who},
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{ca.issue(t, false, "localhost")},
			ClientAuth:   tls.VerifyClientCertIfGiven,
			ClientCAs:    ca.pool,
		},
	}
	addr := startServer(t, srv)
	ask := func(certs ...tls.Certificate) (string, error) {
		d := &amanda.Dialer{User: "backup", TLSConfig: &tls.Config{RootCAs: ca.pool, Certificates: certs}}
		cc, err := d.Dial(context.Background(), addr, amanda.NewRequest("", "amdumpd", amanda.Options{{Key: "auth", Value: "ssl"}}))
		if err != nil {
			return "", err
		}
		defer cc.Close()
		st, err := cc.Stream("CTL")
		if err != nil {
			return "", err
		}
		return bufio.NewReader(st).ReadString('\n')
	}
	if got, err := ask(); err != nil || got != "localhost ssl\n" {
		t.Errorf("without a client certificate: %q, %v", got, err)
	}
	if got, err := ask(ca.issue(t, true, "db1")); err != nil || got != "db1 ssl\n" {
		t.Errorf("with db1's certificate: %q, %v", got, err)
	}
	_, err := ask(ca.issue(t, true, "stranger"))
	var re *amanda.RefusedError
	if !errors.As(err, &re) || !strings.Contains(re.Lines[0], "no declared host is named in the client certificate (stranger)") {
		t.Errorf("with an unknown certificate: %v", err)
	}
	// A plain bsdtcp client cannot talk to a TLS server.
	_, err = (&amanda.Dialer{User: "backup", AckTimeout: 200 * time.Millisecond, ReqTries: 1}).Dial(context.Background(), addr, amanda.NewRequest("", "amdumpd", nil))
	if err == nil {
		t.Error("plain client accepted by the TLS server")
	}
}
