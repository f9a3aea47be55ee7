package config

import (
	"net/netip"
	"time"
)

// Webhooks configures the delivery of webhook events to the tenants'
// subscriptions (docs/webhooks.md): the SSRF policy every subscription URL
// and every connection must pass, and the delivery schedule.
type Webhooks struct {
	// AllowNetworks lists CIDR ranges a webhook may reach although they are
	// private, loopback, link-local or otherwise refused (receivers inside a
	// network the operator trusts). The cloud metadata addresses stay
	// refused whatever this says. Default none.
	AllowNetworks []string `yaml:"allowNetworks"`
	// AllowHTTP permits plain http:// webhook URLs, in dev mode only.
	AllowHTTP bool `yaml:"allowHTTP"`
	// Ports lists the ports a webhook URL may use. Default 80, 443, 8080,
	// 8443.
	Ports []int `yaml:"ports"`
	// Timeout bounds one delivery attempt. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// Backoff is the delay after the first failed attempt, doubled after
	// each further failure. Default 30s.
	Backoff time.Duration `yaml:"backoff"`
	// MaxBackoff caps the delay between attempts. Default 1h.
	MaxBackoff time.Duration `yaml:"maxBackoff"`
	// RetryWindow is how long a delivery is retried before it is marked
	// failed. Default 24h.
	RetryWindow time.Duration `yaml:"retryWindow"`
	// PollInterval is how often due retries are published. Default 5s.
	PollInterval time.Duration `yaml:"pollInterval"`
	// Republish is how long after publishing a delivery it is published
	// again if no attempt settled it (a message lost with a crashed
	// process). Default 1m.
	Republish time.Duration `yaml:"republish"`
	// Concurrency is how many deliveries one process attempts at once.
	// Default 4.
	Concurrency int `yaml:"concurrency"`
}

// maxWebhookConcurrency bounds webhooks.concurrency.
const maxWebhookConcurrency = 256

// AllowPrefixes returns AllowNetworks parsed, each masked to its network.
// An entry that does not parse (which Validate rejects) is left out.
func (w Webhooks) AllowPrefixes() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range w.AllowNetworks {
		if p, err := netip.ParsePrefix(s); err == nil {
			ps = append(ps, p.Masked())
		}
	}
	return ps
}

func baseWebhooks() Webhooks {
	return Webhooks{AllowNetworks: []string{}, Ports: []int{80, 443, 8080, 8443}, Timeout: 10 * time.Second,
		Backoff: 30 * time.Second, MaxBackoff: time.Hour, RetryWindow: 24 * time.Hour, PollInterval: 5 * time.Second,
		Republish: time.Minute, Concurrency: 16}
}

func (c Config) validateWebhooks(ps *problems, prod bool) {
	w := c.Webhooks
	for _, s := range w.AllowNetworks {
		if _, err := netip.ParsePrefix(s); err != nil {
			ps.add("webhooks.allowNetworks", "must be CIDR ranges such as 10.0.0.0/8 or fd00::/8, got %q", s)
		}
	}
	if w.AllowHTTP && prod {
		ps.add("webhooks.allowHTTP", "must be false in production mode")
	}
	if len(w.Ports) == 0 {
		ps.add("webhooks.ports", "must list at least one port")
	}
	for _, p := range w.Ports {
		if p < 1 || p > 65535 {
			ps.add("webhooks.ports", "must be ports from 1 to 65535, got %d", p)
		}
	}
	ps.positive("webhooks.timeout", w.Timeout)
	ps.positive("webhooks.backoff", w.Backoff)
	ps.positive("webhooks.maxBackoff", w.MaxBackoff)
	if w.MaxBackoff < w.Backoff {
		ps.add("webhooks.maxBackoff", "must not be less than webhooks.backoff (%s), got %s", w.Backoff, w.MaxBackoff)
	}
	ps.positive("webhooks.retryWindow", w.RetryWindow)
	ps.positive("webhooks.pollInterval", w.PollInterval)
	ps.positive("webhooks.republish", w.Republish)
	if w.Concurrency < 1 || w.Concurrency > maxWebhookConcurrency {
		ps.add("webhooks.concurrency", "must be 1 to %d, got %d", maxWebhookConcurrency, w.Concurrency)
	}
}
