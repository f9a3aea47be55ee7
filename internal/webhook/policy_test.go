package webhook_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/webhook"
)

// TestCheckAddr is the SSRF decision table: every refused range is
// refused by default, public addresses pass, the allow-list lifts a
// range, and metadata addresses stay refused whatever the allow-list says.
func TestCheckAddr(t *testing.T) {
	allowAll := webhook.Policy{Allow: []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"),
	}}
	tests := []struct {
		addr    string
		policy  webhook.Policy
		allowed bool
	}{
		{"93.184.215.14", webhook.Policy{}, true},
		{"8.8.8.8", webhook.Policy{}, true},
		{"2606:4700:4700::1111", webhook.Policy{}, true},
		{"127.0.0.1", webhook.Policy{}, false},
		{"127.255.255.254", webhook.Policy{}, false},
		{"::1", webhook.Policy{}, false},
		{"10.0.0.1", webhook.Policy{}, false},
		{"172.16.0.1", webhook.Policy{}, false},
		{"172.31.255.255", webhook.Policy{}, false},
		{"192.168.1.1", webhook.Policy{}, false},
		{"fd12:3456::1", webhook.Policy{}, false},
		{"fc00::1", webhook.Policy{}, false},
		{"169.254.1.1", webhook.Policy{}, false},
		{"fe80::1", webhook.Policy{}, false},
		{"0.0.0.0", webhook.Policy{}, false},
		{"::", webhook.Policy{}, false},
		{"224.0.0.1", webhook.Policy{}, false},
		{"ff02::1", webhook.Policy{}, false},
		{"255.255.255.255", webhook.Policy{}, false},
		{"100.64.0.1", webhook.Policy{}, false},
		{"100.127.255.254", webhook.Policy{}, false},
		{"198.18.0.1", webhook.Policy{}, false},
		{"::ffff:127.0.0.1", webhook.Policy{}, false},
		{"::ffff:10.1.2.3", webhook.Policy{}, false},
		{"64:ff9b::a00:1", webhook.Policy{}, false},
		{"2002:7f00:1::", webhook.Policy{}, false},
		{"169.254.169.254", webhook.Policy{}, false},
		{"fd00:ec2::254", webhook.Policy{}, false},
		{"100.100.100.200", webhook.Policy{}, false},
		{"168.63.129.16", webhook.Policy{}, false},
		{"127.0.0.1", loopback, true},
		{"::1", loopback, true},
		{"::ffff:127.0.0.1", loopback, true},
		{"10.0.0.1", loopback, false},
		{"10.0.0.1", webhook.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}}, true},
		{"10.0.1.1", webhook.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}}, false},
		{"169.254.169.254", allowAll, false},
		{"169.254.170.2", allowAll, false},
		{"fd00:ec2::254", allowAll, false},
		{"::ffff:169.254.169.254", allowAll, false},
		{"100.100.100.200", allowAll, false},
		{"168.63.129.16", allowAll, false},
		{"10.0.0.1", allowAll, true},
		{"fe80::1%eth0", allowAll, false},
	}
	for _, tt := range tests {
		err := tt.policy.CheckAddr(netip.MustParseAddr(tt.addr))
		if (err == nil) != tt.allowed {
			t.Errorf("CheckAddr(%s) with allow %v = %v, want allowed %v", tt.addr, tt.policy.Allow, err, tt.allowed)
		}
		if err != nil && (!errors.Is(err, webhook.ErrForbiddenTarget) || !errors.Is(err, store.ErrInvalid)) {
			t.Errorf("CheckAddr(%s) = %v, want ErrForbiddenTarget wrapping store.ErrInvalid", tt.addr, err)
		}
	}
}

// TestValidateURL checks the subscription-time rules: scheme, user info,
// fragment, ports, numeric hosts and the addresses a name resolves to.
func TestValidateURL(t *testing.T) {
	public := resolverOf(addrs("93.184.215.14"))
	toLoopback := resolverOf(addrs("127.0.0.1"))
	mixed := resolverOf(addrs("93.184.215.14", "10.0.0.7"))
	unresolvable := resolverOf(nil)
	tests := []struct {
		name     string
		url      string
		policy   webhook.Policy
		resolver webhook.Resolver
		want     error // nil, ErrForbiddenTarget or ErrInvalid
	}{
		{"https public name", "https://hooks.example.com/idvault", webhook.Policy{}, public, nil},
		{"https public ip", "https://93.184.215.14/x", webhook.Policy{}, public, nil},
		{"https port 8443", "https://hooks.example.com:8443/x", webhook.Policy{}, public, nil},
		{"name not resolvable yet", "https://hooks.example.com/x", webhook.Policy{}, unresolvable, nil},
		{"http refused", "http://hooks.example.com/x", webhook.Policy{}, public, webhook.ErrForbiddenTarget},
		{"http allowed", "http://hooks.example.com/x", webhook.Policy{AllowHTTP: true}, public, nil},
		{"ftp", "ftp://hooks.example.com/x", webhook.Policy{}, public, webhook.ErrInvalid},
		{"relative", "/hooks", webhook.Policy{}, public, webhook.ErrInvalid},
		{"opaque", "https:hooks.example.com", webhook.Policy{}, public, webhook.ErrInvalid},
		{"user info", "https://user:pass@hooks.example.com/x", webhook.Policy{}, public, webhook.ErrInvalid},
		{"user only", "https://user@hooks.example.com/x", webhook.Policy{}, public, webhook.ErrInvalid},
		{"fragment", "https://hooks.example.com/x#frag", webhook.Policy{}, public, webhook.ErrInvalid},
		{"port 22", "https://hooks.example.com:22/x", webhook.Policy{}, public, webhook.ErrForbiddenTarget},
		{"port 6379", "https://hooks.example.com:6379/x", webhook.Policy{}, public, webhook.ErrForbiddenTarget},
		{"port 0", "https://hooks.example.com:0/x", webhook.Policy{}, public, webhook.ErrInvalid},
		{"port too big", "https://hooks.example.com:70000/x", webhook.Policy{}, public, webhook.ErrInvalid},
		{"listed port", "https://hooks.example.com:9443/x", webhook.Policy{Ports: []uint16{9443}}, public, nil},
		{"any port", "https://hooks.example.com:6379/x", webhook.Policy{AnyPort: true}, public, nil},
		{"loopback ip", "https://127.0.0.1/x", webhook.Policy{}, public, webhook.ErrForbiddenTarget},
		{"loopback ip allowed", "https://127.0.0.1/x", loopback, public, nil},
		{"private ip", "https://10.0.0.5/x", webhook.Policy{}, public, webhook.ErrForbiddenTarget},
		{"metadata ip", "https://169.254.169.254/latest/meta-data/", webhook.Policy{}, public, webhook.ErrForbiddenTarget},
		{"metadata ip, allow-list covering it", "http://169.254.169.254/", webhook.Policy{AllowHTTP: true, Allow: []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16")}}, public, webhook.ErrForbiddenTarget},
		{"ipv6 loopback", "https://[::1]/x", webhook.Policy{}, public, webhook.ErrForbiddenTarget},
		{"ipv6 loopback allowed", "https://[::1]/x", loopback, public, nil},
		{"ipv6 ula", "https://[fd00::1]/x", webhook.Policy{}, public, webhook.ErrForbiddenTarget},
		{"ipv6 metadata", "https://[fd00:ec2::254]/x", webhook.Policy{}, public, webhook.ErrForbiddenTarget},
		{"ipv4-mapped loopback", "https://[::ffff:127.0.0.1]/x", webhook.Policy{}, public, webhook.ErrForbiddenTarget},
		{"ipv6 zone", "https://[fe80::1%25eth0]/x", webhook.Policy{}, public, webhook.ErrForbiddenTarget},
		{"cgnat", "https://100.64.0.1/x", webhook.Policy{}, public, webhook.ErrForbiddenTarget},
		{"unspecified", "https://0.0.0.0/x", webhook.Policy{}, public, webhook.ErrForbiddenTarget},
		{"decimal host", "https://2130706433/x", webhook.Policy{}, public, webhook.ErrForbiddenTarget},
		{"hex host", "https://0x7f000001/x", webhook.Policy{}, public, webhook.ErrForbiddenTarget},
		{"short dotted host", "https://127.1/x", webhook.Policy{}, public, webhook.ErrForbiddenTarget},
		{"name resolving to loopback", "https://localtest.example/x", webhook.Policy{}, toLoopback, webhook.ErrForbiddenTarget},
		{"name resolving to loopback, allowed", "https://localtest.example/x", loopback, toLoopback, nil},
		{"name resolving to public and private", "https://mixed.example/x", webhook.Policy{}, mixed, webhook.ErrForbiddenTarget},
		{"too long", "https://hooks.example.com/" + string(make([]byte, webhook.MaxURLLen)), webhook.Policy{}, public, webhook.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.policy.ValidateURL(context.Background(), tt.resolver, tt.url)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("ValidateURL(%q) = %v, want %v", tt.url, err, tt.want)
			}
			if err != nil && !errors.Is(err, webhook.ErrInvalid) {
				t.Errorf("ValidateURL(%q) = %v, want it to wrap ErrInvalid", tt.url, err)
			}
		})
	}
}

// TestCreateRefusesInternalTargets attacks subscription creation with the
// classic SSRF targets; each is refused and nothing is stored.
func TestCreateRefusesInternalTargets(t *testing.T) {
	f := newFixture(t, setup{resolver: resolverOf(addrs("127.0.0.1"))})
	ctx := context.Background()
	for _, u := range []string{
		"https://127.0.0.1/hook",
		"https://10.1.2.3/hook",
		"https://169.254.169.254/latest/meta-data/iam/security-credentials/",
		"https://[::1]/hook",
		"https://localhost.rebind.example/hook",
		"http://93.184.215.14/hook",
	} {
		if _, _, err := f.svc.Create(ctx, "acme", webhook.Params{URL: u, EventTypes: webhook.EventTypes}); !errors.Is(err, webhook.ErrInvalid) {
			t.Errorf("Create(%q) = %v, want ErrInvalid", u, err)
		}
	}
	subs, err := f.svc.List(ctx, "acme")
	if err != nil || len(subs) != 0 {
		t.Fatalf("List() = %v, %v, want none", subs, err)
	}
	secrets, err := f.keys.Secrets(ctx, "acme")
	if err != nil || len(secrets) != 0 {
		t.Fatalf("keyring secrets = %v, %v, want none", secrets, err)
	}
}
