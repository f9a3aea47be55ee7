package ratelimit

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// ErrInvalidPrefix is wrapped by ParsePrefixes for an entry that is neither
// a CIDR prefix nor an address.
var ErrInvalidPrefix = errors.New("invalid trusted proxy prefix")

// ClientIP returns the address of the client that sent r.
//
// It is the connection's peer (r.RemoteAddr) unless the peer lies in one of
// trustedProxies. Only then is X-Forwarded-For read: its entries (over all
// header lines, in order) are walked from the right, skipping addresses in
// trustedProxies, and the first address outside them is the client. If every
// entry is trusted, the left-most is returned; if an entry that must be read
// does not parse, the last trusted address read is returned (the proxy,
// which limits more rather than less). Entries may carry a port and IPv6
// entries brackets. A client can therefore never choose the result by
// sending the header itself: what it writes stays left of the first address
// a trusted proxy appended, and is never reached.
//
// The result is unmapped (an IPv4-mapped IPv6 address becomes IPv4) and has
// no zone. It is the zero Addr when RemoteAddr holds no address (a Unix
// socket peer); AddrKey maps that to one shared key.
func ClientIP(r *http.Request, trustedProxies []netip.Prefix) netip.Addr {
	peer := parseAddr(r.RemoteAddr, true)
	if !peer.IsValid() || !contains(trustedProxies, peer) {
		return peer
	}
	last := peer
	values := r.Header.Values("X-Forwarded-For")
	for i := len(values) - 1; i >= 0; i-- {
		rest := values[i]
		for rest != "" {
			entry := rest
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				entry, rest = rest[j+1:], rest[:j]
			} else {
				rest = ""
			}
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			a := parseAddr(entry, false)
			if !a.IsValid() {
				return last
			}
			if !contains(trustedProxies, a) {
				return a
			}
			last = a
		}
	}
	return last
}

// parseAddr parses an address written as "addr", "addr:port", "[addr]" or
// "[addr]:port", and returns it unmapped and without zone, or the zero Addr.
// withPort says which form to try first (a failed parse allocates its
// error): RemoteAddr has a port, X-Forwarded-For entries usually do not.
func parseAddr(s string, withPort bool) netip.Addr {
	if withPort {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			return ap.Addr().Unmap().WithZone("")
		}
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("")
	}
	if !withPort {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			return ap.Addr().Unmap().WithZone("")
		}
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && a.Is6() {
			return a.Unmap().WithZone("")
		}
	}
	return netip.Addr{}
}

func contains(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParsePrefixes parses trusted proxy entries, each a CIDR prefix
// ("10.0.0.0/8", "2001:db8::/48") or a single address (a /32 or /128). The
// results are masked, and IPv4-mapped IPv6 prefixes become IPv4 ones, so
// that they match the unmapped addresses ClientIP compares. Every invalid
// entry is reported, joined, each wrapping ErrInvalidPrefix.
func ParsePrefixes(entries []string) ([]netip.Prefix, error) {
	var (
		out  []netip.Prefix
		errs []error
	)
	for _, e := range entries {
		p, ok := parsePrefix(e)
		if !ok {
			errs = append(errs, fmt.Errorf("%w %q", ErrInvalidPrefix, e))
			continue
		}
		out = append(out, p)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// parsePrefix parses one ParsePrefixes entry; ok is false if it is invalid.
func parsePrefix(s string) (p netip.Prefix, ok bool) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, false
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, false
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), true
}
