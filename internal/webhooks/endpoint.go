package webhooks

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"

	"github.com/secondopinion/gateway/internal/domain"
)

// maxURLLength bounds an endpoint URL.
const maxURLLength = 2048

// ValidateEndpoint checks an endpoint URL: absolute, no credentials or
// fragment, https; plain http only on a loopback host outside production.
// In production a literal IP must be a public one (the dialer checks the
// resolved address again at every connection).
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
	switch u.Scheme {
	case "https":
	case "http":
		if production || !isLoopbackHost(host) {
			return nil, bad("must be https (http is allowed only on loopback, outside production)")
		}
	default:
		return nil, bad("must be https")
	}
	if production {
		if ip, err := netip.ParseAddr(host); err == nil && !publicAddr(ip) {
			return nil, bad("must be a public address")
		}
		if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
			return nil, bad("must be a public address")
		}
	}
	return u, nil
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func publicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsValid() && ip.IsGlobalUnicast() && !ip.IsPrivate() && !ip.IsLoopback() &&
		!ip.IsLinkLocalUnicast() && !ip.IsUnspecified() && !ip.IsMulticast()
}

var errPrivateAddr = errors.New("endpoint resolves to a non-public address")

// publicOnly is a net.Dialer Control refusing connections to non-public
// addresses (production: a DNS name must not lead the gateway into its own
// network).
func publicOnly(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !publicAddr(ip) {
		return errPrivateAddr
	}
	return nil
}
