package ratelimit

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

var trusted = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("2001:db8:ffff::/48"),
}

func TestClientIP(t *testing.T) {
	tests := []struct {
		name   string
		remote string
		xff    []string // header lines, in order
		want   string   // "" is the invalid address
	}{
		{"untrusted peer, no header", "203.0.113.5:4000", nil, "203.0.113.5"},
		{"untrusted peer spoofs header", "203.0.113.5:4000", []string{"198.51.100.1"}, "203.0.113.5"},
		{"untrusted peer spoofs a trusted address", "203.0.113.5:4000", []string{"10.0.0.1"}, "203.0.113.5"},
		{"untrusted v6 peer", "[2001:db8::5]:443", []string{"198.51.100.1"}, "2001:db8::5"},
		{"trusted peer, no header", "10.1.2.3:4000", nil, "10.1.2.3"},
		{"trusted peer, one client", "10.1.2.3:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"client spoof left of real address", "10.1.2.3:4000", []string{"192.0.2.66, 198.51.100.1"}, "198.51.100.1"},
		{"client spoofs trusted address left", "10.1.2.3:4000", []string{"10.9.9.9, 198.51.100.1"}, "198.51.100.1"},
		{"two proxies", "10.1.2.3:4000", []string{"192.0.2.66, 198.51.100.1, 10.4.5.6"}, "198.51.100.1"},
		{"spoof in earlier header line", "10.1.2.3:4000", []string{"192.0.2.66", "198.51.100.1"}, "198.51.100.1"},
		{"proxy chain over lines", "10.1.2.3:4000", []string{"192.0.2.66, 198.51.100.1", "10.4.5.6"}, "198.51.100.1"},
		{"all trusted", "10.1.2.3:4000", []string{"10.7.7.7, 10.4.5.6"}, "10.7.7.7"},
		{"garbage from client stays left", "10.1.2.3:4000", []string{"not-an-ip, 198.51.100.1"}, "198.51.100.1"},
		{"garbage where client should be", "10.1.2.3:4000", []string{"198.51.100.1, bogus"}, "10.1.2.3"},
		{"garbage after a trusted hop", "10.1.2.3:4000", []string{"bogus, 10.4.5.6"}, "10.4.5.6"},
		{"empty entries skipped", "10.1.2.3:4000", []string{" , 198.51.100.1 ,, "}, "198.51.100.1"},
		{"empty header", "10.1.2.3:4000", []string{""}, "10.1.2.3"},
		{"entry with port", "10.1.2.3:4000", []string{"198.51.100.1:5555"}, "198.51.100.1"},
		{"bracketed v6 with port", "10.1.2.3:4000", []string{"[2001:db8::7]:5555"}, "2001:db8::7"},
		{"bracketed v6", "10.1.2.3:4000", []string{"[2001:db8::7]"}, "2001:db8::7"},
		{"bracketed v4 rejected", "10.1.2.3:4000", []string{"[198.51.100.1]"}, "10.1.2.3"},
		{"v6 with zone", "10.1.2.3:4000", []string{"fe80::1%eth0"}, "fe80::1"},
		{"mapped client unmapped", "10.1.2.3:4000", []string{"::ffff:198.51.100.1"}, "198.51.100.1"},
		{"mapped trusted peer", "[::ffff:10.1.2.3]:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"trusted v6 proxy", "[2001:db8:ffff:1::1]:443", []string{"2001:db8:1::9"}, "2001:db8:1::9"},
		{"tabs around entry", "10.1.2.3:4000", []string{"\t198.51.100.1\t"}, "198.51.100.1"},
		{"no remote address", "", []string{"198.51.100.1"}, ""},
		{"unix socket peer", "@", []string{"198.51.100.1"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			want := netip.Addr{}
			if tt.want != "" {
				want = netip.MustParseAddr(tt.want)
			}
			if got := ClientIP(r, trusted); got != want {
				t.Errorf("ClientIP(remote %q, XFF %q) = %v, want %v", tt.remote, tt.xff, got, want)
			}
		})
	}
}

// TestClientIPNoTrust checks that with no trusted proxies the header is
// never read, even from loopback or private peers.
func TestClientIPNoTrust(t *testing.T) {
	for _, remote := range []string{"127.0.0.1:1", "10.0.0.1:1", "[::1]:1"} {
		t.Run(remote, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = remote
			r.Header.Set("X-Forwarded-For", "198.51.100.1")
			want := netip.MustParseAddrPort(remote).Addr()
			if got := ClientIP(r, nil); got != want {
				t.Errorf("ClientIP(remote %q, no trusted proxies) = %v, want %v", remote, got, want)
			}
		})
	}
}

func TestParsePrefixes(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    []string
		wantErr []string // entries the error must name
	}{
		{"empty", nil, nil, nil},
		{"cidrs and addresses", []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/48", "2001:db8::1"},
			[]string{"10.0.0.0/8", "192.0.2.7/32", "2001:db8::/48", "2001:db8::1/128"}, nil},
		{"masked", []string{"10.1.2.3/8"}, []string{"10.0.0.0/8"}, nil},
		{"mapped", []string{"::ffff:10.0.0.0/104", "::ffff:192.0.2.7"}, []string{"10.0.0.0/8", "192.0.2.7/32"}, nil},
		{"all errors", []string{"10.0.0.0/33", "nope", "fe80::1%eth0", "::ffff:0.0.0.0/90", "10.0.0.0/8"}, nil,
			[]string{`"10.0.0.0/33"`, `"nope"`, `"fe80::1%eth0"`, `"::ffff:0.0.0.0/90"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePrefixes(tt.in)
			if len(tt.wantErr) > 0 {
				if !errors.Is(err, ErrInvalidPrefix) {
					t.Fatalf("ParsePrefixes(%q) = %v, want ErrInvalidPrefix", tt.in, err)
				}
				for _, e := range tt.wantErr {
					if !strings.Contains(err.Error(), e) {
						t.Errorf("ParsePrefixes(%q) = %q, want it to name %s", tt.in, err, e)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePrefixes(%q) = %v", tt.in, err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("ParsePrefixes(%q) = %v, want %v", tt.in, got, tt.want)
			}
			for i := range got {
				if got[i].String() != tt.want[i] {
					t.Errorf("ParsePrefixes(%q)[%d] = %v, want %v", tt.in, i, got[i], tt.want[i])
				}
			}
		})
	}
}

// referenceClientIP is ClientIP written the obvious way, to compare against.
func referenceClientIP(remote string, xff []string, trustedProxies []netip.Prefix) netip.Addr {
	peer := parseAddr(remote, true)
	if !peer.IsValid() || !contains(trustedProxies, peer) {
		return peer
	}
	entries := strings.Split(strings.Join(xff, ","), ",")
	last := peer
	for i := len(entries) - 1; i >= 0; i-- {
		e := strings.TrimSpace(entries[i])
		if e == "" {
			continue
		}
		a := parseAddr(e, false)
		if !a.IsValid() {
			return last
		}
		if !contains(trustedProxies, a) {
			return a
		}
		last = a
	}
	return last
}

// FuzzClientIP checks ClientIP against the reference on arbitrary peers and
// headers, and the spoofing invariants: an untrusted peer is always the
// answer, and the answer is the peer or an address from the header.
func FuzzClientIP(f *testing.F) {
	f.Add("10.1.2.3:4000", "192.0.2.66, 198.51.100.1", "10.4.5.6")
	f.Add("203.0.113.5:4000", "198.51.100.1", "")
	f.Add("[2001:db8:ffff::1]:443", "[2001:db8::7]:5555,fe80::1%eth0", "::ffff:10.0.0.1")
	f.Add("10.0.0.1:1", ",,, ,", "bogus")
	f.Add("[::ffff:10.0.0.1]:1", "1.2.3.4:99999", "[::1]")
	f.Fuzz(func(t *testing.T, remote, xff1, xff2 string) {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{}}
		var lines []string
		for _, v := range []string{xff1, xff2} {
			if v != "" {
				lines = append(lines, v)
				r.Header.Add("X-Forwarded-For", v)
			}
		}
		got := ClientIP(r, trusted)
		if want := referenceClientIP(remote, lines, trusted); got != want {
			t.Fatalf("ClientIP(remote %q, XFF %q) = %v, reference %v", remote, lines, got, want)
		}
		peer := parseAddr(remote, true)
		if !peer.IsValid() || !contains(trusted, peer) {
			if got != peer {
				t.Fatalf("ClientIP(untrusted remote %q, XFF %q) = %v, want the peer %v", remote, lines, got, peer)
			}
			return
		}
		if got == peer {
			return
		}
		found := false
		for _, e := range strings.Split(strings.Join(lines, ","), ",") {
			if parseAddr(strings.TrimSpace(e), false) == got {
				found = true
			}
		}
		if !found {
			t.Fatalf("ClientIP(remote %q, XFF %q) = %v, neither the peer nor a header entry", remote, lines, got)
		}
		if got.Zone() != "" || got.Is4In6() {
			t.Fatalf("ClientIP(remote %q, XFF %q) = %v, want no zone and unmapped", remote, lines, got)
		}
	})
}

func BenchmarkClientIP(b *testing.B) {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.1.2.3:4000"
	r.Header.Set("X-Forwarded-For", "192.0.2.66, 198.51.100.1, 10.4.5.6")
	for b.Loop() {
		ClientIP(r, trusted)
	}
}
