package amanda

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

type fakeResolver struct {
	ptr  map[string][]string
	addr map[string][]netip.Addr
}

func (r fakeResolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	if n, ok := r.ptr[addr]; ok {
		return n, nil
	}
	return nil, errors.New("no PTR")
}

func (r fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if a, ok := r.addr[host]; ok {
		return a, nil
	}
	return nil, errors.New("no A")
}

func TestIdentify(t *testing.T) {
	prefixes := func(s ...string) []netip.Prefix {
		p, err := ParsePrefixes(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	hosts := []Host{
		{Name: "db1", Addresses: prefixes("192.0.2.7", "2001:db8::/64")},
		{Name: "db2.example.net", Addresses: nil},
		{Name: "db3", Addresses: nil},
		{Name: "lan", Addresses: prefixes("10.0.0.0/8")},
	}
	res := fakeResolver{
		ptr: map[string][]string{
			"198.51.100.2": {"DB2.example.net."},
			"198.51.100.3": {"db3"},
			"198.51.100.4": {"db2.example.net.evil.org"},
		},
		addr: map[string][]netip.Addr{
			"db2.example.net": {netip.MustParseAddr("198.51.100.2")},
			"db3":             {netip.MustParseAddr("203.0.113.9")}, // does not confirm
		},
	}
	cert := func(cn string, dns ...string) *tls.ConnectionState {
		c := &x509.Certificate{Subject: pkix.Name{CommonName: cn}, DNSNames: dns}
		return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}, VerifiedChains: [][]*x509.Certificate{{c}}}
	}
	tests := []struct {
		ip   string
		cs   *tls.ConnectionState
		want string
		why  string
	}{
		{ip: "192.0.2.7", want: "db1"},
		{ip: "::ffff:192.0.2.7", want: "db1"},
		{ip: "2001:db8::5", want: "db1"},
		{ip: "10.1.2.3", want: "lan"},
		{ip: "192.0.2.8", why: "no declared host has address 192.0.2.8"},
		{ip: "198.51.100.2", want: "db2.example.net"},
		{ip: "198.51.100.3", why: "or a name that resolves to it"},
		{ip: "198.51.100.4", why: "or a name that resolves to it"}, // prefix match is not enough
		{ip: "198.51.100.9", why: "reverse lookup failed"},
		{ip: "10.1.2.3", cs: cert("", "db1"), want: "db1"}, // the certificate decides
		{ip: "10.1.2.3", cs: cert("db3"), want: "db3"},
		{ip: "10.1.2.3", cs: cert("x", "other"), why: "no declared host is named in the client certificate (other)"},
		{ip: "10.1.2.3", cs: &tls.ConnectionState{}, want: "lan"}, // TLS without a client certificate
	}
	for _, tc := range tests {
		h, why := identify(context.Background(), hosts, res, netip.MustParseAddr(tc.ip), tc.cs)
		got := ""
		if h != nil {
			got = h.Name
		}
		if got != tc.want || !strings.Contains(why, tc.why) || (tc.why == "") != (why == "") {
			t.Errorf("identify(%s) = %q, %q; want %q, %q", tc.ip, got, why, tc.want, tc.why)
		}
	}
}

func TestParsePrefixes(t *testing.T) {
	p, err := ParsePrefixes([]string{"127.0.0.1", "::1", "10.1.2.3/8", "::ffff:192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.1/32", "::1/128", "10.0.0.0/8", "192.0.2.1/32"}
	for i, w := range want {
		if p[i].String() != w {
			t.Errorf("prefix %d = %s, want %s", i, p[i], w)
		}
	}
	for _, bad := range []string{"", "localhost", "10.0.0.0/33"} {
		if _, err := ParsePrefixes([]string{bad}); err == nil {
			t.Errorf("ParsePrefixes(%q) worked", bad)
		}
	}
	h := Host{Users: []string{"Backup"}}
	if !h.allowsUser("backup") || h.allowsUser("root") || (&Host{}).allowsUser("backup") {
		t.Error("allowsUser")
	}
}
