package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Policy says which targets a webhook may reach (the SSRF guard). The zero
// Policy is the production default: https only, ports DefaultPorts, and no
// address in a refused range.
type Policy struct {
	// Allow lists address ranges that are otherwise refused, for
	// receivers inside a network the operator trusts (and loopback in
	// tests). The cloud metadata addresses stay refused even when a
	// range here covers them.
	Allow []netip.Prefix
	// AllowHTTP permits plain http:// targets.
	AllowHTTP bool
	// Ports lists the ports a target may use; empty means DefaultPorts.
	Ports []uint16
	// AnyPort permits every port (tests, whose receivers listen on random
	// ports).
	AnyPort bool
}

// DefaultPorts are the ports a target may use unless Policy.Ports says
// otherwise.
var DefaultPorts = []uint16{80, 443, 8080, 8443}

// MaxURLLen is the longest subscription URL.
const MaxURLLen = 2048

// refused lists the ranges no webhook may reach unless Policy.Allow covers
// them: everything that is not a public unicast address.
var refused = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),          // "this network", unspecified
	netip.MustParsePrefix("10.0.0.0/8"),         // RFC 1918
	netip.MustParsePrefix("100.64.0.0/10"),      // carrier-grade NAT (RFC 6598)
	netip.MustParsePrefix("127.0.0.0/8"),        // loopback
	netip.MustParsePrefix("169.254.0.0/16"),     // link-local
	netip.MustParsePrefix("172.16.0.0/12"),      // RFC 1918
	netip.MustParsePrefix("192.0.0.0/24"),       // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),       // documentation
	netip.MustParsePrefix("192.88.99.0/24"),     // 6to4 relay anycast
	netip.MustParsePrefix("192.168.0.0/16"),     // RFC 1918
	netip.MustParsePrefix("198.18.0.0/15"),      // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"),    // documentation
	netip.MustParsePrefix("203.0.113.0/24"),     // documentation
	netip.MustParsePrefix("224.0.0.0/4"),        // multicast
	netip.MustParsePrefix("240.0.0.0/4"),        // reserved, broadcast
	netip.MustParsePrefix("::/128"),             // unspecified
	netip.MustParsePrefix("::1/128"),            // loopback
	netip.MustParsePrefix("::ffff:0:0/96"),      // IPv4-mapped (checked as IPv4 first)
	netip.MustParsePrefix("64:ff9b::/96"),       // NAT64, reaches IPv4 through a gateway
	netip.MustParsePrefix("64:ff9b:1::/48"),     // local-use NAT64
	netip.MustParsePrefix("100::/64"),           // discard
	netip.MustParsePrefix("2001::/23"),          // IETF protocol assignments (Teredo, ORCHID, …)
	netip.MustParsePrefix("2001:db8::/32"),      // documentation
	netip.MustParsePrefix("2002::/16"),          // 6to4, embeds an IPv4 address
	netip.MustParsePrefix("fc00::/7"),           // unique local (RFC 4193)
	netip.MustParsePrefix("fe80::/10"),          // link-local
	netip.MustParsePrefix("fec0::/10"),          // site-local (deprecated)
	netip.MustParsePrefix("ff00::/8"),           // multicast
	netip.MustParsePrefix("3fff::/20"),          // documentation (RFC 9637)
	netip.MustParsePrefix("5f00::/16"),          // segment routing SIDs
	netip.MustParsePrefix("255.255.255.255/32"), // limited broadcast (inside 240/4; named for clarity)
}

// metadata lists the cloud instance-metadata and platform service
// addresses. They are refused even when Policy.Allow covers them: no
// webhook receiver lives there, and reaching one hands out credentials.
var metadata = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, OCI, DigitalOcean, OpenStack
	netip.MustParseAddr("169.254.170.2"),   // AWS ECS task metadata
	netip.MustParseAddr("169.254.170.23"),  // AWS EKS pod identity
	netip.MustParseAddr("fd00:ec2::254"),   // AWS IMDS over IPv6
	netip.MustParseAddr("fd00:ec2::23"),    // AWS EKS pod identity over IPv6
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
	netip.MustParseAddr("168.63.129.16"),   // Azure wire server
	netip.MustParseAddr("192.0.0.192"),     // Oracle Cloud Classic
}

// ErrForbiddenTarget means a target URL, or an address it resolved to, is
// refused by the Policy. It wraps ErrInvalid.
var ErrForbiddenTarget = fmt.Errorf("webhook: target not allowed: %w", ErrInvalid)

// AddressError is the error of a refused address: which one, and why.
// It matches ErrForbiddenTarget.
type AddressError struct {
	Addr   netip.Addr
	Reason string
}

func (e *AddressError) Error() string {
	return fmt.Sprintf("webhook: address %s refused: %s", e.Addr, e.Reason)
}

// Unwrap returns ErrForbiddenTarget.
func (e *AddressError) Unwrap() error { return ErrForbiddenTarget }

// CheckAddr returns nil if a webhook may connect to addr, and an
// *AddressError otherwise. IPv4-mapped IPv6 addresses are judged as the
// IPv4 address they carry; addresses with a zone are refused.
func (p Policy) CheckAddr(addr netip.Addr) error {
	if !addr.IsValid() {
		return &AddressError{Addr: addr, Reason: "invalid address"}
	}
	if addr.Zone() != "" {
		return &AddressError{Addr: addr, Reason: "address with a zone"}
	}
	a := addr.Unmap()
	if slices.Contains(metadata, a) {
		return &AddressError{Addr: addr, Reason: "cloud metadata address"}
	}
	for _, allowed := range p.Allow {
		if allowed.Contains(a) {
			return nil
		}
	}
	for _, r := range refused {
		if r.Contains(a) {
			return &AddressError{Addr: addr, Reason: "address in refused range " + r.String()}
		}
	}
	return nil
}

// checkPort reports whether a target may use port.
func (p Policy) checkPort(port uint16) error {
	if p.AnyPort {
		return nil
	}
	ports := p.Ports
	if len(ports) == 0 {
		ports = DefaultPorts
	}
	if !slices.Contains(ports, port) {
		return fmt.Errorf("port %d not allowed (allowed: %v): %w", port, ports, ErrForbiddenTarget)
	}
	return nil
}

// Resolver looks up the addresses of a host name. *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// ValidateURL checks a subscription URL: absolute, https (or http when
// AllowHTTP), no user info, no fragment, an allowed port, a host that is
// not an ambiguous number, and an address the Policy allows. A host name is
// resolved with r and refused if any address it has is refused; a name that
// does not resolve yet is accepted, since the check that counts is made
// again on every connection (DialContext). It returns the URL parsed.
func (p Policy) ValidateURL(ctx context.Context, r Resolver, raw string) (*url.URL, error) {
	u, err := p.checkURL(raw)
	if err != nil {
		return nil, err
	}
	host := u.Hostname()
	if addr, err := netip.ParseAddr(host); err == nil {
		return u, p.CheckAddr(addr)
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := r.LookupNetIP(lctx, "ip", host)
	if err != nil {
		return u, nil
	}
	for _, a := range addrs {
		if err := p.CheckAddr(a); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// checkURL makes every check of ValidateURL that needs no resolution; the
// worker repeats it before each attempt, so a policy tightened after a
// subscription was made applies to it.
func (p Policy) checkURL(raw string) (*url.URL, error) {
	if len(raw) > MaxURLLen {
		return nil, fmt.Errorf("url longer than %d bytes: %w", MaxURLLen, ErrInvalid)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("url does not parse: %w", ErrInvalid)
	}
	switch {
	case u.Scheme == "http" && !p.AllowHTTP:
		return nil, fmt.Errorf("url must use https: %w", ErrForbiddenTarget)
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("url scheme must be https: %w", ErrInvalid)
	case u.Opaque != "" || u.Host == "":
		return nil, fmt.Errorf("url must be absolute with a host: %w", ErrInvalid)
	case u.User != nil:
		return nil, fmt.Errorf("url must not carry user info: %w", ErrInvalid)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, fmt.Errorf("url must not carry a fragment: %w", ErrInvalid)
	}
	host := u.Hostname()
	port, err := urlPort(u)
	if err != nil {
		return nil, err
	}
	if err := p.checkPort(port); err != nil {
		return nil, err
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		return u, p.CheckAddr(addr)
	}
	if strings.Contains(host, "%") {
		return nil, fmt.Errorf("url host with a zone: %w", ErrForbiddenTarget)
	}
	if numericHost(host) {
		return nil, fmt.Errorf("url host is an ambiguous number: %w", ErrForbiddenTarget)
	}
	return u, nil
}

func urlPort(u *url.URL) (uint16, error) {
	ps := u.Port()
	if ps == "" {
		if u.Scheme == "http" {
			return 80, nil
		}
		return 443, nil
	}
	n, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("url port %q: %w", ps, ErrInvalid)
	}
	return uint16(n), nil
}

// numericHost reports whether host looks like a number some resolvers
// read as an IPv4 address ("2130706433", "0x7f.1", "127.1") although it is
// not a dotted quad.
func numericHost(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	last := h[strings.LastIndexByte(h, '.')+1:]
	if last == "" {
		return false
	}
	if strings.HasPrefix(last, "0x") {
		return true
	}
	for _, c := range last {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// dialer connects only to addresses the policy allows. It resolves the
// host itself, refuses the target when any address is refused, dials the
// chosen address as a literal, and checks it once more in the socket's
// Control hook, right before connect: the address connected to is the
// address checked, so a DNS answer that changes between a check and the
// connection (DNS rebinding) cannot slip through.
type dialer struct {
	policy   Policy
	resolver Resolver
	net      net.Dialer
}

func newDialer(p Policy, r Resolver, timeout time.Duration) *dialer {
	d := &dialer{policy: p, resolver: r}
	d.net = net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: d.control}
	return d
}

// control runs after the socket is made and before it connects.
func (d *dialer) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, ErrForbiddenTarget)
	}
	if err := d.policy.checkPort(ap.Port()); err != nil {
		return err
	}
	return d.policy.CheckAddr(ap.Addr())
}

// DialContext is the transport's dial function.
func (d *dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("dial: port %q: %w", portStr, ErrInvalid)
	}
	if err := d.policy.checkPort(uint16(port)); err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else if addrs, err = d.resolver.LookupNetIP(ctx, "ip", host); err != nil {
		return nil, fmt.Errorf("dial: resolve: %w", err)
	}
	if len(addrs) == 0 {
		return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
	}
	for _, a := range addrs {
		if err := d.policy.CheckAddr(a); err != nil {
			return nil, err
		}
	}
	var errs []error
	for _, a := range addrs {
		c, err := d.net.DialContext(ctx, network, netip.AddrPortFrom(a.Unmap(), uint16(port)).String())
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}
