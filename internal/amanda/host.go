package amanda

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Host is a client host the server serves: the equivalent of a
// .amandahosts entry, as plain values.
type Host struct {
	// Name is the host's name in the configuration. It is the peer name
	// services see (amdumpd matches it against its disklist), the name a
	// client certificate must carry, and, for a host without Addresses,
	// the name its address must forward-confirm to.
	Name string
	// Addresses are the networks the host connects from. Empty means:
	// identify the host by forward-confirmed reverse DNS instead.
	Addresses []netip.Prefix
	// Users are the client users (the REQ's SECURITY USER) allowed to use
	// the services. Empty allows nobody.
	Users []string
}

// ParsePrefixes parses addresses ("192.0.2.7", "::1") and networks
// ("10.0.0.0/8") as a Host's Addresses; a bare address is a single-host
// prefix.
func ParsePrefixes(addrs []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(addrs))
	for _, a := range addrs {
		if strings.Contains(a, "/") {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				return nil, fmt.Errorf("amanda: address %q: %w", a, err)
			}
			out = append(out, p.Masked())
			continue
		}
		ip, err := netip.ParseAddr(a)
		if err != nil {
			return nil, fmt.Errorf("amanda: address %q: %w", a, err)
		}
		ip = ip.Unmap()
		out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return out, nil
}

// Resolver is what peer identification needs of DNS; *net.Resolver has it.
type Resolver interface {
	LookupAddr(ctx context.Context, addr string) ([]string, error)
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Peer is who sent a request.
type Peer struct {
	Addr netip.AddrPort // remote address of the connection
	Host string         // Name of the declared host it was identified as
	User string         // the SECURITY USER it claimed
	// TLS is the connection's TLS state, nil on plain bsdtcp.
	TLS *tls.ConnectionState
}

func (h *Host) allowsUser(user string) bool {
	return slices.ContainsFunc(h.Users, func(u string) bool { return strings.EqualFold(u, user) })
}

// identify finds the declared host of a peer. With a verified client
// certificate the certificate's names decide; otherwise the first host
// with an address prefix containing ip; otherwise a host without
// addresses whose name is a reverse-DNS name of ip that resolves back to
// ip (exact, case-insensitive comparison). reason says why nothing
// matched.
func identify(ctx context.Context, hosts []Host, res Resolver, ip netip.Addr, cs *tls.ConnectionState) (h *Host, reason string) {
	ip = ip.Unmap()
	if cs != nil && len(cs.VerifiedChains) > 0 && len(cs.PeerCertificates) > 0 {
		cert := cs.PeerCertificates[0]
		names := cert.DNSNames
		if len(names) == 0 && cert.Subject.CommonName != "" {
			names = []string{cert.Subject.CommonName}
		}
		for i := range hosts {
			if slices.ContainsFunc(names, func(n string) bool { return sameName(n, hosts[i].Name) }) {
				return &hosts[i], ""
			}
		}
		return nil, fmt.Sprintf("no declared host is named in the client certificate (%s)", strings.Join(names, ", "))
	}
	for i := range hosts {
		for _, p := range hosts[i].Addresses {
			if p.Contains(ip) {
				return &hosts[i], ""
			}
		}
	}
	var byName []int
	for i := range hosts {
		if len(hosts[i].Addresses) == 0 {
			byName = append(byName, i)
		}
	}
	if len(byName) == 0 || res == nil || !ip.IsValid() {
		return nil, fmt.Sprintf("no declared host has address %s", ip)
	}
	names, err := res.LookupAddr(ctx, ip.String())
	if err != nil {
		return nil, fmt.Sprintf("no declared host has address %s, and its reverse lookup failed", ip)
	}
	for _, n := range names {
		for _, i := range byName {
			if !sameName(n, hosts[i].Name) {
				continue
			}
			addrs, err := res.LookupNetIP(ctx, "ip", hosts[i].Name)
			if err != nil {
				continue
			}
			if slices.ContainsFunc(addrs, func(a netip.Addr) bool { return a.Unmap() == ip }) {
				return &hosts[i], ""
			}
		}
	}
	return nil, fmt.Sprintf("no declared host has address %s or a name that resolves to it", ip)
}

func sameName(a, b string) bool {
	return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}
