package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// ErrDestinationBlocked is wrapped by every *DestinationError.
var ErrDestinationBlocked = errors.New("webhook: destination address blocked")

// DestinationError reports a connection the destination guard refused: the endpoint's
// host resolved to an address in a blocked range. Deliveries that hit it fail
// permanently. It names the address and the range, never the URL's credentials or query.
type DestinationError struct {
	Addr  netip.Addr   // the refused address, after DNS resolution
	Range netip.Prefix // the blocked range it falls in
	Kind  string       // what the range is, e.g. "private (RFC 1918)"
}

func (e *DestinationError) Error() string {
	return fmt.Sprintf("webhook: refusing to connect to %s: %s address (%s); if this endpoint is trusted, allow the range with WithAllowedNetworks(netip.MustParsePrefix(%q))",
		e.Addr, e.Kind, e.Range, e.Range.String())
}

// Is makes errors.Is(err, ErrDestinationBlocked) true.
func (e *DestinationError) Is(target error) bool { return target == ErrDestinationBlocked }

type blockedRange struct {
	prefix netip.Prefix
	kind   string
}

// blockedRanges are the networks a webhook must not reach unless allowed: everything that
// is not the public internet. IPv4-mapped, IPv4-compatible, NAT64 and 6to4 IPv6 addresses
// are checked again as the IPv4 address they embed.
var blockedRanges = func() []blockedRange {
	list := []struct{ cidr, kind string }{
		{"0.0.0.0/8", "unspecified (this network)"},
		{"10.0.0.0/8", "private (RFC 1918)"},
		{"100.64.0.0/10", "carrier-grade NAT (RFC 6598)"},
		{"127.0.0.0/8", "loopback"},
		{"169.254.0.0/16", "link-local (cloud metadata)"},
		{"172.16.0.0/12", "private (RFC 1918)"},
		{"192.0.0.0/24", "IETF protocol assignments"},
		{"192.0.2.0/24", "documentation (TEST-NET-1)"},
		{"192.88.99.0/24", "6to4 relay anycast"},
		{"192.168.0.0/16", "private (RFC 1918)"},
		{"198.18.0.0/15", "benchmarking (RFC 2544)"},
		{"198.51.100.0/24", "documentation (TEST-NET-2)"},
		{"203.0.113.0/24", "documentation (TEST-NET-3)"},
		{"224.0.0.0/4", "multicast"},
		{"240.0.0.0/4", "reserved"},
		{"255.255.255.255/32", "broadcast"},
		{"::/128", "unspecified"},
		{"::1/128", "loopback"},
		{"64:ff9b:1::/48", "local-use NAT64"},
		{"100::/64", "discard-only"},
		{"2001::/23", "IETF protocol assignments"},
		{"2001:db8::/32", "documentation"},
		{"3fff::/20", "documentation"},
		{"fc00::/7", "unique local (private)"},
		{"fe80::/10", "link-local"},
		{"fec0::/10", "site-local (deprecated)"},
		{"ff00::/8", "multicast"},
	}
	out := make([]blockedRange, len(list))
	for i, r := range list {
		out[i] = blockedRange{netip.MustParsePrefix(r.cidr), r.kind}
	}
	return out
}()

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
	v4compat  = netip.MustParsePrefix("::/96")
)

// destinationGuard decides which addresses may be dialled.
type destinationGuard struct {
	allowed []netip.Prefix
	off     bool
}

// check returns a *DestinationError if addr may not be dialled.
func (g *destinationGuard) check(addr netip.Addr) error {
	if g == nil || g.off {
		return nil
	}
	addr = addr.WithZone("")
	for _, p := range g.allowed {
		if p.Contains(addr) || p.Contains(addr.Unmap()) {
			return nil
		}
	}
	if r, ok := blocked(addr); ok {
		return &DestinationError{Addr: addr, Range: r.prefix, Kind: r.kind}
	}
	return nil
}

// blocked reports the blocked range addr falls in, looking through IPv6 forms that
// embed an IPv4 address.
func blocked(addr netip.Addr) (blockedRange, bool) {
	if addr.Is4In6() {
		return blocked(addr.Unmap())
	}
	if addr.Is6() {
		b := addr.As16()
		switch {
		case nat64.Contains(addr):
			return blocked(netip.AddrFrom4([4]byte(b[12:16])))
		case sixToFour.Contains(addr):
			return blocked(netip.AddrFrom4([4]byte(b[2:6])))
		case v4compat.Contains(addr) && addr != netip.IPv6Unspecified() && addr != netip.IPv6Loopback():
			return blocked(netip.AddrFrom4([4]byte(b[12:16])))
		}
	}
	for _, r := range blockedRanges {
		if r.prefix.Contains(addr) {
			return r, true
		}
	}
	return blockedRange{}, false
}

// control is a net.Dialer.ControlContext: it runs after DNS resolution, on the address
// actually being connected to, so DNS rebinding cannot slip past it.
func (g *destinationGuard) control(_ context.Context, network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return &PermanentError{Err: fmt.Errorf("webhook: unexpected dial address: %w", err)}
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return &PermanentError{Err: fmt.Errorf("webhook: dial address %q is not an IP address", host)}
	}
	return g.check(addr)
}
