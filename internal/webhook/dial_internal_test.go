package webhook

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

type fixedResolver []netip.Addr

func (r fixedResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return r, nil
}

// TestDialerRefusesAtConnect checks the last line of the SSRF guard on a
// real listener: the socket's Control hook refuses a refused address even
// when the dialer's own pre-check is bypassed (a literal address dialled
// directly), and the whole dialer refuses a name that resolves to one.
// With the allow-list, the same listener is reached.
func TestDialerRefusesAtConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	target := ln.Addr().String()
	_, port, _ := net.SplitHostPort(target)
	ctx := context.Background()

	d := newDialer(Policy{AnyPort: true}, fixedResolver{netip.MustParseAddr("127.0.0.1")}, time.Second)
	if c, err := d.net.DialContext(ctx, "tcp", target); !errors.Is(err, ErrForbiddenTarget) {
		if c != nil {
			c.Close()
		}
		t.Errorf("Control hook: dial %s = %v, want ErrForbiddenTarget", target, err)
	}
	if c, err := d.DialContext(ctx, "tcp", "hooks.example:"+port); !errors.Is(err, ErrForbiddenTarget) {
		if c != nil {
			c.Close()
		}
		t.Errorf("dial name resolving to loopback = %v, want ErrForbiddenTarget", err)
	}
	if c, err := d.DialContext(ctx, "tcp", target); !errors.Is(err, ErrForbiddenTarget) {
		if c != nil {
			c.Close()
		}
		t.Errorf("dial literal loopback = %v, want ErrForbiddenTarget", err)
	}
	strictPort := newDialer(Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, fixedResolver{}, time.Second)
	if c, err := strictPort.net.DialContext(ctx, "tcp", target); !errors.Is(err, ErrForbiddenTarget) {
		if c != nil {
			c.Close()
		}
		t.Errorf("Control hook: dial port %s outside DefaultPorts = %v, want ErrForbiddenTarget", port, err)
	}

	allowed := newDialer(Policy{AnyPort: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		fixedResolver{netip.MustParseAddr("127.0.0.1")}, time.Second)
	c, err := allowed.DialContext(ctx, "tcp", "hooks.example:"+port)
	if err != nil {
		t.Fatalf("dial allowed loopback = %v", err)
	}
	c.Close()
}
