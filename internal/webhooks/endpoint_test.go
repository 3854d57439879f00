package webhooks_test

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/webhooks"
)

// ianaSpecialPurpose is written out here, apart from the code's list, from
// the IANA IPv4 and IPv6 Special-Purpose Address Registries, with multicast,
// IPv4-compatible ::/96 and site-local fec0::/10.
var ianaSpecialPurpose = []string{
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
	"172.16.0.0/12", "192.0.0.0/24", "192.0.0.0/29", "192.0.0.8/32", "192.0.0.9/32",
	"192.0.0.10/32", "192.0.0.170/32", "192.0.0.171/32", "192.0.2.0/24",
	"192.31.196.0/24", "192.52.193.0/24", "192.88.99.0/24", "192.168.0.0/16",
	"192.175.48.0/24", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
	"240.0.0.0/4", "255.255.255.255/32", "224.0.0.0/4",
	"::/128", "::1/128", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48",
	"100::/64", "100:0:0:1::/64", "2001::/23", "2001::/32", "2001:1::1/128",
	"2001:1::2/128", "2001:1::3/128", "2001:2::/48", "2001:3::/32", "2001:4:112::/48",
	"2001:10::/28", "2001:20::/28", "2001:30::/28", "2001:db8::/32", "2002::/16",
	"2620:4f:8000::/48", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10",
	"ff00::/8", "::/96", "fec0::/10",
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func literal(a netip.Addr) string {
	if a.Is4() {
		return a.String()
	}
	return "[" + a.String() + "]"
}

func TestWebhookURLsInSpecialPurposeRangesAreRefused(t *testing.T) {
	for _, s := range ianaSpecialPurpose {
		p := netip.MustParsePrefix(s)
		mid := p.Addr().Next()
		if !p.Contains(mid) {
			mid = p.Addr()
		}
		for _, a := range []netip.Addr{p.Addr(), mid, lastAddr(p)} {
			url := "https://" + literal(a) + "/hook"
			t.Run(s+" "+a.String()+" is refused", func(t *testing.T) {
				_, err := webhooks.ValidateEndpoint(url, true)
				require.Error(t, err, url)
				assert.Equal(t, domain.CodeBadUserInput, domain.ErrorCode(err))
			})
		}
	}
	t.Run("public neighbours of the ranges are accepted", func(t *testing.T) {
		for _, h := range []string{
			"8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.0", "198.17.255.255", "198.20.0.0",
			"172.32.0.1", "223.255.255.254", "[2606:4700:4700::1111]", "[2001:200::1]", "[2a00:1450:4001::1]",
		} {
			_, err := webhooks.ValidateEndpoint("https://"+h+"/hook", true)
			assert.NoError(t, err, h)
		}
	})
}

func TestWebhookURLsSpellingAForbiddenAddressNumericallyAreRefused(t *testing.T) {
	for _, h := range []string{
		"0", "0.0.0.0", "127.1", "127.0.0.1.", "2130706433", "0x7f.1", "0x7F000001", "0177.0.0.1",
		"017700000001", "localhost", "localhost.", "LOCALHOST", "hooks.localhost",
		"100.100.100.200", "1684301000", "0x64.0x64.0x64.0xc8", "2852039166", "169.254.169.254",
		"[::7f00:1]", "[::1]", "[64:ff9b::a9fe:a9fe]", "[::ffff:169.254.169.254]", "[::ffff:a9fe:a9fe]",
		"[::ffff:7f00:1]", "[fe80::1%25eth0]", "[2002:a9fe:a9fe::1]",
		// Numbers no resolver should be left to guess at.
		"256.1.1.1", "1.2.3.4.5", "0x100000000", "4294967296", "09.1.1.1", "127.0.0.0x",
		"metadata.google.internal", "router.home.arpa", "printer.local",
	} {
		url := "https://" + h + "/hook"
		_, err := webhooks.ValidateEndpoint(url, true)
		assert.Error(t, err, url)
		assert.Equal(t, domain.CodeBadUserInput, domain.ErrorCode(err), url)
	}
	t.Run("development still reaches a local receiver, and only that", func(t *testing.T) {
		for _, h := range []string{"127.0.0.1:8081", "127.1:8081", "[::1]:8081", "localhost:8081"} {
			_, err := webhooks.ValidateEndpoint("http://"+h+"/hook", false)
			assert.NoError(t, err, h)
		}
		for _, h := range []string{"10.1.2.3", "100.100.100.200", "[64:ff9b::a9fe:a9fe]", "2852039166"} {
			_, err := webhooks.ValidateEndpoint("https://"+h+"/hook", false)
			assert.Error(t, err, h)
		}
	})
	t.Run("names that look numeric but are not stay names", func(t *testing.T) {
		for _, h := range []string{"0x7f.example.com", "1.2.3.example", "hooks.example.com", "0xg"} {
			_, err := webhooks.ValidateEndpoint("https://"+h+"/hook", true)
			assert.NoError(t, err, h)
		}
	})
}
