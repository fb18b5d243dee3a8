package webhook

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGuardBlocksEveryNonPublicRange(t *testing.T) {
	t.Parallel()
	g := &destinationGuard{}
	blockedAddrs := []string{
		"0.0.0.0", "0.1.2.3", "10.0.0.1", "10.255.255.255", "100.64.0.1", "100.127.255.254",
		"127.0.0.1", "127.1.2.3", "169.254.169.254", "169.254.0.1", "172.16.0.1", "172.31.255.255",
		"192.0.0.8", "192.0.2.10", "192.88.99.1", "192.168.1.1", "198.18.0.1", "198.19.255.255",
		"198.51.100.7", "203.0.113.9", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
		"::", "::1", "fc00::1", "fd12:3456::1", "fe80::1", "fe80::1%eth0", "fec0::1", "ff02::1",
		"2001:db8::1", "3fff::1", "100::1", "2001::1", "64:ff9b:1::1",
		// IPv6 forms that embed a blocked IPv4 address.
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe",
		"64:ff9b::7f00:1", "2002:7f00:1::1", "2002:a9fe:a9fe::", "::127.0.0.1", "::10.1.2.3",
	}
	for _, s := range blockedAddrs {
		addr := netip.MustParseAddr(s)
		err := g.check(addr)
		if assert.Error(t, err, s) {
			assert.ErrorIs(t, err, ErrDestinationBlocked, s)
			var de *DestinationError
			require.True(t, errors.As(err, &de), s)
			assert.Contains(t, err.Error(), "WithAllowedNetworks", "the error says how to allow it")
		}
	}
	public := []string{"1.1.1.1", "8.8.8.8", "93.184.216.34", "100.63.255.255", "100.128.0.1",
		"172.15.255.255", "172.32.0.1", "192.169.0.1", "2606:4700::1111", "2a00:1450::1",
		"::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"}
	for _, s := range public {
		assert.NoError(t, g.check(netip.MustParseAddr(s)), s)
	}
}

func TestGuardAllowListAndOff(t *testing.T) {
	t.Parallel()
	g := &destinationGuard{allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}}
	assert.NoError(t, g.check(netip.MustParseAddr("127.0.0.1")))
	assert.NoError(t, g.check(netip.MustParseAddr("::ffff:127.0.0.1")), "mapped form of an allowed address")
	assert.NoError(t, g.check(netip.MustParseAddr("fd00::5")))
	assert.Error(t, g.check(netip.MustParseAddr("10.0.0.1")))
	assert.Error(t, g.check(netip.MustParseAddr("::1")), "allowing 127/8 does not allow ::1")
	assert.NoError(t, (&destinationGuard{off: true}).check(netip.MustParseAddr("169.254.169.254")))
}

func TestGuardControlRejectsNonIPAddresses(t *testing.T) {
	t.Parallel()
	g := &destinationGuard{}
	assert.Error(t, g.control(t.Context(), "tcp", "no-port", nil))
	assert.Error(t, g.control(t.Context(), "tcp", "example.com:80", nil))
	assert.ErrorIs(t, g.control(t.Context(), "tcp", "[::1]:443", nil), ErrDestinationBlocked)
	assert.NoError(t, g.control(t.Context(), "tcp", "8.8.8.8:443", nil))
}
