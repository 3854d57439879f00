package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"

	"github.com/secondopinion/gateway/internal/domain"
)

// maxURLLength bounds an endpoint URL.
const maxURLLength = 2048

// ValidateEndpoint checks an endpoint URL: absolute, no credentials or
// fragment, https; plain http only on a loopback host outside production.
// The host may not be, or spell in any numeric form, an address in an IANA
// special-purpose range (loopback is allowed outside production only, for
// local receivers); in production it may not be a special-use name such as
// localhost either. The dialer checks every resolved address again at every
// connection, since a DNS name can point anywhere.
func ValidateEndpoint(raw string, production bool) (*url.URL, error) {
	bad := func(why string) error {
		return domain.Errorf(domain.CodeBadUserInput, "url: %s", why)
	}
	if len(raw) > maxURLLength {
		return nil, bad(fmt.Sprintf("longer than %d characters", maxURLLength))
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return nil, bad("not an absolute URL")
	}
	if u.User != nil {
		return nil, bad("credentials in the URL are not allowed")
	}
	if u.Fragment != "" {
		return nil, bad("a fragment is not allowed")
	}
	host := u.Hostname()
	ip, numeric, err := hostAddr(host)
	if err != nil {
		return nil, bad(err.Error())
	}
	loopback := (numeric && ip.Unmap().IsLoopback()) || isLocalhostName(host)
	switch u.Scheme {
	case "https":
	case "http":
		if production || !loopback {
			return nil, bad("must be https (http is allowed only on loopback, outside production)")
		}
	default:
		return nil, bad("must be https")
	}
	if numeric && !allowedAddr(ip, !production) {
		return nil, bad("must be a public address")
	}
	if production && specialUseName(host) {
		return nil, bad("must be a public address")
	}
	return u, nil
}

// hostAddr reads host as an IP address the way a resolver would: an IPv6
// literal (zone dropped), or an IPv4 address in any of the forms inet_aton
// and the WHATWG URL standard accept (127.1, 2130706433, 0x7f.1, 0177.0.0.1,
// a trailing dot). numeric is false for a DNS name. A host that ends in a
// number but is no valid address is an error: a resolver might still read
// it as one.
func hostAddr(host string) (ip netip.Addr, numeric bool, err error) {
	if strings.Contains(host, ":") {
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return netip.Addr{}, false, errors.New("not a valid IPv6 address")
		}
		return ip.WithZone(""), true, nil
	}
	h := strings.ToLower(host)
	if strings.HasSuffix(h, ".") && len(h) > 1 {
		h = h[:len(h)-1]
	}
	parts := strings.Split(h, ".")
	if !endsInNumber(parts[len(parts)-1]) {
		return netip.Addr{}, false, nil
	}
	invalid := errors.New("not a valid IPv4 address")
	if len(parts) > 4 {
		return netip.Addr{}, true, invalid
	}
	nums := make([]uint64, len(parts))
	for i, p := range parts {
		n, ok := ipv4Number(p)
		if !ok {
			return netip.Addr{}, true, invalid
		}
		nums[i] = n
	}
	var v uint64
	for i, n := range nums[:len(nums)-1] {
		if n > 255 {
			return netip.Addr{}, true, invalid
		}
		v |= n << (8 * (3 - i))
	}
	last := nums[len(nums)-1]
	if last >= 1<<(8*(5-len(nums))) {
		return netip.Addr{}, true, invalid
	}
	v |= last
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true, nil
}

// endsInNumber is the WHATWG test that makes a host an IPv4 address: its
// last label is decimal digits or a 0x number.
func endsInNumber(label string) bool {
	if label == "" {
		return false
	}
	if strings.Trim(label, "0123456789") == "" {
		return true
	}
	return strings.HasPrefix(label, "0x") && strings.Trim(label[2:], "0123456789abcdef") == ""
}

// ipv4Number reads one part of an IPv4 address: 0x hex, 0 octal, decimal.
func ipv4Number(s string) (uint64, bool) {
	base := 10
	switch {
	case strings.HasPrefix(s, "0x"):
		s, base = s[2:], 16
		if s == "" {
			return 0, true
		}
	case len(s) > 1 && s[0] == '0':
		s, base = s[1:], 8
	case s == "":
		return 0, false
	}
	if strings.ContainsAny(s, "+-_") {
		return 0, false
	}
	n, err := strconv.ParseUint(s, base, 64)
	if err != nil || n > 1<<32 {
		return 0, false
	}
	return n, true
}

func isLocalhostName(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	return h == "localhost" || strings.HasSuffix(h, ".localhost")
}

// specialUseNames are the IANA special-use domain names that never name a
// partner's public endpoint but may resolve inside our own network.
var specialUseNames = []string{"localhost", "local", "internal", "home.arpa", "invalid", "test", "onion", "alt"}

func specialUseName(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	for _, n := range specialUseNames {
		if h == n || strings.HasSuffix(h, "."+n) {
			return true
		}
	}
	return false
}

// specialPurpose is every range of the IANA IPv4 and IPv6 Special-Purpose
// Address Registries, plus multicast, the deprecated IPv4-compatible ::/96
// and site-local fec0::/10: none of them is a partner's public endpoint,
// and several reach the gateway's own network (metadata services at
// 169.254.169.254 and 100.100.100.200, NAT64 and 6to4 gateways, ULAs).
var specialPurpose = mustPrefixes(
	// IPv4 Special-Purpose Address Registry.
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
	"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.31.196.0/24",
	"192.52.193.0/24", "192.88.99.0/24", "192.168.0.0/16", "192.175.48.0/24",
	"198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4",
	"255.255.255.255/32",
	"224.0.0.0/4", // multicast
	// IPv6 Special-Purpose Address Registry.
	"::/128", "::1/128", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48",
	"100::/64", "100:0:0:1::/64", "2001::/23", "2001:db8::/32", "2002::/16",
	"2620:4f:8000::/48", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10",
	"ff00::/8",  // multicast
	"::/96",     // IPv4-compatible (deprecated)
	"fec0::/10", // site-local (deprecated)
)

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// globalUnicast6 is where IANA allocates all global IPv6 unicast: anything
// outside it is reserved and reaches no partner.
var globalUnicast6 = netip.MustParsePrefix("2000::/3")

// forbiddenAddr reports whether ip is in a special-purpose range, itself or
// through the IPv4 address it embeds (mapped, compatible, NAT64, 6to4,
// Teredo).
func forbiddenAddr(ip netip.Addr) bool {
	ip = ip.WithZone("")
	if !ip.IsValid() {
		return true
	}
	for _, p := range specialPurpose {
		if p.Contains(ip) {
			return true
		}
	}
	if ip.Is6() && !globalUnicast6.Contains(ip) {
		return true
	}
	if v4, ok := embeddedIPv4(ip); ok {
		return forbiddenAddr(v4)
	}
	return false
}

var (
	ipv4Compatible = netip.MustParsePrefix("::/96")
	nat64          = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour      = netip.MustParsePrefix("2002::/16")
	teredo         = netip.MustParsePrefix("2001::/32")
)

// embeddedIPv4 returns the IPv4 address an IPv6 address carries, for the
// forms that route to it.
func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	if !ip.Is6() {
		return netip.Addr{}, false
	}
	b := ip.As16()
	last := netip.AddrFrom4([4]byte(b[12:16]))
	switch {
	case ip.Is4In6(), ipv4Compatible.Contains(ip), nat64.Contains(ip):
		return last, true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	case teredo.Contains(ip):
		// Teredo: the client's address, inverted.
		return netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]}), true
	}
	return netip.Addr{}, false
}

// allowedAddr reports whether the gateway may connect to ip: never to a
// special-purpose address, except loopback when allowLoopback (local
// receivers in development).
func allowedAddr(ip netip.Addr, allowLoopback bool) bool {
	if allowLoopback && ip.Unmap().IsLoopback() {
		return true
	}
	return !forbiddenAddr(ip)
}

var errPrivateAddr = errors.New("endpoint resolves to a non-public address")

// Resolver looks a host name up; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// guardedDialer resolves the endpoint's host itself, refuses it if any of
// its addresses is special-purpose (a name that leads into our network at
// all is not a partner's), and dials the checked addresses, so that no
// second lookup can answer differently. The Control hook checks the address
// actually connected to once more.
type guardedDialer struct {
	dialer        *net.Dialer
	resolver      Resolver
	allowLoopback bool
}

func newGuardedDialer(d *net.Dialer, r Resolver, allowLoopback bool) *guardedDialer {
	if r == nil {
		r = net.DefaultResolver
	}
	d.Control = func(_, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		ip, err := netip.ParseAddr(host)
		if err != nil || !allowedAddr(ip, allowLoopback) {
			return errPrivateAddr
		}
		return nil
	}
	return &guardedDialer{dialer: d, resolver: r, allowLoopback: allowLoopback}
}

// DialContext is an http.Transport's DialContext.
func (g *guardedDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	ip, numeric, err := hostAddr(host)
	switch {
	case err != nil:
		return nil, errPrivateAddr
	case numeric:
		addrs = []netip.Addr{ip}
	default:
		ipNet := "ip"
		switch network {
		case "tcp4":
			ipNet = "ip4"
		case "tcp6":
			ipNet = "ip6"
		}
		addrs, err = g.resolver.LookupNetIP(ctx, ipNet, host)
		if err != nil {
			return nil, err
		}
		if len(addrs) == 0 {
			return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
		}
	}
	for i, a := range addrs {
		// Resolvers may answer an A record IPv4-mapped; the embedded
		// address is what gets checked either way.
		a = a.WithZone("").Unmap()
		addrs[i] = a
		if !allowedAddr(a, g.allowLoopback) {
			return nil, errPrivateAddr
		}
	}
	var firstErr error
	for _, a := range addrs {
		c, err := g.dialer.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}
