package server

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/config"
	"github.com/idvault/idvault/internal/webhook"
)

// TestWebhookOptionsPolicy checks the SSRF policy webhooks.* builds, as an
// attacker's subscription URLs meet it: the default refuses loopback,
// private and metadata targets; allowNetworks opens exactly its ranges and
// never the metadata addresses; http and ports stay closed unless allowed.
func TestWebhookOptionsPolicy(t *testing.T) {
	open := config.Default().Webhooks
	open.AllowNetworks = []string{"127.0.0.0/8", "169.254.0.0/16"}
	open.AllowHTTP = true
	open.Ports = []int{443, 41234}
	tests := []struct {
		name   string
		config config.Webhooks
		url    string
		ok     bool
	}{
		{"default public https", config.Default().Webhooks, "https://93.184.215.14/hook", true},
		{"default loopback", config.Default().Webhooks, "https://127.0.0.1/hook", false},
		{"default private", config.Default().Webhooks, "https://10.1.2.3/hook", false},
		{"default http", config.Default().Webhooks, "http://93.184.215.14/hook", false},
		{"default port outside the list", config.Default().Webhooks, "https://93.184.215.14:41234/hook", false},
		{"allowed loopback", open, "http://127.0.0.1:41234/hook", true},
		{"allowed link-local", open, "https://169.254.1.1/hook", true},
		{"metadata inside an allowed range", open, "http://169.254.169.254:41234/latest/meta-data", false},
		{"private outside the allowed ranges", open, "https://10.1.2.3/hook", false},
		{"port outside the list", open, "https://127.0.0.1:8443/hook", false},
		{"IPv6 loopback not allowed", open, "https://[::1]/hook", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := webhookOptions(tt.config)
			_, err := o.Policy.ValidateURL(t.Context(), net.DefaultResolver, tt.url)
			if tt.ok && err != nil {
				t.Errorf("ValidateURL(%q) = %v, want nil", tt.url, err)
			}
			if !tt.ok && !errors.Is(err, webhook.ErrForbiddenTarget) {
				t.Errorf("ValidateURL(%q) = %v, want ErrForbiddenTarget", tt.url, err)
			}
		})
	}
}

func TestWebhookOptionsSchedule(t *testing.T) {
	c := config.Default().Webhooks
	c.Timeout, c.Backoff, c.MaxBackoff, c.RetryWindow = 2*time.Second, time.Second, time.Minute, time.Hour
	c.PollInterval, c.Republish, c.Concurrency = 500*time.Millisecond, 5*time.Second, 8
	o := webhookOptions(c)
	if o.Timeout != c.Timeout || o.Backoff != c.Backoff || o.MaxBackoff != c.MaxBackoff || o.RetryWindow != c.RetryWindow ||
		o.PollInterval != c.PollInterval || o.Republish != c.Republish || o.Concurrency != c.Concurrency {
		t.Errorf("webhookOptions(%+v) = %+v, want the same schedule", c, o)
	}
	if len(o.Policy.Ports) != 4 || o.Policy.AnyPort || o.Policy.AllowHTTP || len(o.Policy.Allow) != 0 {
		t.Errorf("webhookOptions(default).Policy = %+v, want the strict default with ports 80, 443, 8080, 8443", o.Policy)
	}
}
